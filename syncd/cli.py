"""The `syncd` command line: argument parsing, exit codes, output.

Exit codes (SPEC): 0 all good, 1 some files could not be synced, 2 usage or
config error, 3 another syncd process holds the state dir.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from syncd import __version__
from syncd.errors import ConfigError, StateLocked

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

log = structlog.get_logger("syncd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Keep local folders in sync with chat file lists.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", help="config file (default: $SYNCD_CONFIG, "
                        "$XDG_CONFIG_HOME/syncd/config.toml, /etc/syncd/config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the reference file service in the foreground")
    serve.add_argument("--data", default="./syncd-data", metavar="DIR", help="data directory (default ./syncd-data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--api-key-env", metavar="VAR", help="require the API key held in this environment variable")
    serve.add_argument("--max-upload-size", type=_size, metavar="BYTES",
                       help="refuse files larger than this (suffixes K, M, G allowed)")
    serve.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    return parser


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from syncd.logs import configure
    from syncd.server.app import build_app
    from syncd.server.runner import serve_forever

    configure(args.log_format)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    data = Path(args.data).expanduser()
    app = build_app(data, api_key=api_key, max_upload_size=args.max_upload_size)
    log.info("serving", url=f"http://{args.host}:{args.port}", data=str(data), api_key=bool(api_key))
    serve_forever(app, args.host, args.port)
    return EXIT_OK


COMMANDS = {"serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `syncd` console script."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StateLocked as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        return EXIT_OK
