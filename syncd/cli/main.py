"""The `syncd` command line: argument parsing, exit codes, output.

Exit codes (SPEC): 0 all good, 1 some files could not be synced, 2 usage or
config error, 3 another syncd process holds the state dir.

At the top this module imports only what every command uses (argument parsing, the config,
the state database); each command imports the rest itself: the sync engine and the remotes'
clients for `reconcile` and `run`, the reference service for `serve`. So `status` and
`--help` pay for no HTTP client, engine or server.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from syncd import __version__
from syncd.cli.logs import configure as configure_logs
from syncd.cli.output import Progress, print_report, print_status, probe_remotes, read_status
from syncd.config import Config, FolderConfig, find_config_path, load_config
from syncd.errors import ConfigError, StateDamaged, StateLocked
from syncd.state.db import StateVersionError, damaged, is_damage, open_state
from syncd.state.queue import Queue

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

log = structlog.get_logger("syncd")


class UsageError(Exception):
    """Options that cannot be used together: exit 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Keep local folders in sync with chat file lists.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", help="config file (default: $SYNCD_CONFIG, "
                        "$XDG_CONFIG_HOME/syncd/config.toml, /etc/syncd/config.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", parents=[common], help="the daemon, in the foreground (systemd runs it like this)")
    rec = sub.add_parser("reconcile", parents=[common], help="one full pass over the folders, then exit")
    rec.add_argument("--folder", action="append", metavar="NAME", help="only this folder (repeatable)")
    rec.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    rec.add_argument("--json", action="store_true", help="print the summary as JSON")
    rec.add_argument("--rebuild-journal", action="store_true",
                     help="set the state database aside (kept, renamed) and rebuild the journal from this pass; "
                          "differing files become conflicts, nothing is deleted")
    status = sub.add_parser("status", parents=[common], help="per folder: files, jobs, last pass, last error")
    status.add_argument("--json", action="store_true")
    retry = sub.add_parser("retry", parents=[common], help="put failed jobs back in the queue")
    retry.add_argument("--folder", action="append", metavar="NAME")
    sub.add_parser("check", parents=[common], help="validate the config and probe each remote")
    link = sub.add_parser("link", parents=[common],
                          help="print a URL that downloads a synced file without credentials")
    link.add_argument("path", metavar="PATH", help="a synced file, inside a configured folder")
    link.add_argument("--expires", type=_positive_int, metavar="SECONDS",
                      help="how long the URL works (default: the remote's own default)")

    serve = sub.add_parser("serve", parents=[common], help="run the reference file service in the foreground")
    serve.add_argument("--data", default="./syncd-data", metavar="DIR", help="data directory (default ./syncd-data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--api-key-env", metavar="VAR", help="require the API key held in this environment variable")
    serve.add_argument("--max-upload-size", type=_size, metavar="BYTES", default=10 * 1024**3,
                       help="refuse files larger than this (suffixes K, M, G allowed; 0 = no limit; default 10G)")
    serve.add_argument("--max-parts", type=_positive_int, metavar="N", default=10_000,
                       help="most parts one multipart upload may have (default 10000)")
    serve.add_argument("--upload-ttl", type=_seconds, metavar="SECONDS", default=24 * 3600.0,
                       help="delete an unfinished upload idle this long, with its parts (default 86400)")
    serve.add_argument("--public-url", metavar="URL",
                       help="the URL clients reach this service at, for signed download links"
                            " (default: from each request's Host header)")
    serve.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    limits = serve.add_argument_group(
        "limits on clients", "slow, silent or greedy clients must not hold the service (see README, syncd serve)"
    )
    limits.add_argument("--header-timeout", type=_seconds, default=20.0, metavar="SECONDS",
                        help="time to send the request headers, plus 1 s per 500 bytes, at most twice this "
                             "(default 20)")
    limits.add_argument("--body-timeout", type=_seconds, default=20.0, metavar="SECONDS",
                        help="time for the request body after the headers, plus 1 s per 500 bytes; also the "
                             "longest pause within it (default 20)")
    limits.add_argument("--send-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                        help="abort a connection whose client takes none of the response for this long "
                             "(default 60)")
    limits.add_argument("--keep-alive-timeout", type=_whole_seconds, default=30, metavar="SECONDS",
                        help="close an idle kept-alive connection after this long (default 30)")
    limits.add_argument("--max-connections", type=_max_connections, default=None, metavar="N|auto",
                        help="open connections at most; more are answered 503 and closed at once (default "
                             "auto: from the open-files limit, (soft limit - 64) / 3, between 16 and 1000)")
    limits.add_argument("--shutdown-timeout", type=_whole_seconds, default=10, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, wait this long for requests in flight, then cut them (default 10)")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _whole(text: str, *, at_least: int, what: str) -> int:
    """A whole-number option value, or the argparse error saying what was expected."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if value < at_least:
        raise argparse.ArgumentTypeError(f"must be at least {at_least}: {text!r}")
    return value


def _whole_seconds(text: str) -> int:
    return _whole(text, at_least=0, what="a whole number of seconds")


def _positive_int(text: str) -> int:
    return _whole(text, at_least=1, what="a whole number")


def _max_connections(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    return _whole(text, at_least=1, what="a number of connections (or auto)")


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def _public_url(text: str | None) -> str | None:
    if text is None:
        return None
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise ConfigError(f"--public-url: expected http(s)://host[:port][/path], got {text!r}")
    return text.rstrip("/")


def cmd_serve(args: argparse.Namespace) -> int:
    from syncd.server.app import build_app
    from syncd.server.runner import serve_forever
    from syncd.server.servelimits import ServeLimits
    from syncd.server.service import Limits

    configure_logs(args.log_format)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    data = Path(args.data).expanduser()
    try:
        guard = ServeLimits(
            header_timeout=args.header_timeout, body_timeout=args.body_timeout, send_timeout=args.send_timeout,
            keep_alive_timeout=args.keep_alive_timeout, max_connections=args.max_connections,
            shutdown_timeout=args.shutdown_timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    limits = Limits(
        max_upload_size=args.max_upload_size or None, max_parts=args.max_parts,
        upload_ttl=args.upload_ttl, public_url=_public_url(args.public_url),
    )
    app = build_app(data, api_key=api_key, limits=limits)
    log.info("serving", url=f"http://{args.host}:{args.port}", data=str(data), api_key=bool(api_key),
             max_connections=guard.connection_limit())
    serve_forever(app, args.host, args.port, guard)
    return EXIT_OK


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config_path(args.config))


def _folders(config: Config, names: list[str] | None) -> list[FolderConfig]:
    return [config.folder(n) for n in names] if names else list(config.folders)


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.daemon.service import Daemon

    path = find_config_path(args.config)
    config = load_config(path)
    configure_logs(config.daemon.log_format, config.daemon.log_level)
    return Daemon(path, config).run()


def cmd_reconcile(args: argparse.Namespace) -> int:
    # Here, not at the top: the sync engine and the remotes' clients are for the syncing commands.
    from syncd.app import open_app

    config = _config(args)
    if args.rebuild_journal and args.dry_run:
        raise UsageError("--rebuild-journal changes the state database; it cannot be combined with --dry-run")
    configure_logs(config.daemon.log_format, "warning" if not args.json else "error")
    folders = _folders(config, args.folder)
    with open_app(config, rebuild_journal=args.rebuild_journal) as app:
        if app.state.set_aside_as is not None:
            print(f"syncd: the old state database is kept as {app.state.set_aside_as}; "
                  "this pass rebuilds the journal", file=sys.stderr)
        reports = [app.engine.pass_folder(f, dry_run=args.dry_run, urgent=True) for f in folders]
        if not args.dry_run:
            progress = Progress(app, [f.name for f in folders], enabled=sys.stdout.isatty() and not args.json)
            with progress:
                app.engine.drain([f.name for f in folders], config.daemon.workers,
                                 small_transfers=config.daemon.small_transfers)
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "folders": [r.as_json() for r in reports]}, ensure_ascii=False))
    else:
        for report in reports:
            print_report(report)
    return EXIT_OK if ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    doc = read_status(config)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        print_status(doc)
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    config = _config(args)
    folders = _folders(config, args.folder)
    state = open_state(config.daemon.state_dir, writer=False)
    try:
        queue = Queue(state)
        count = sum(queue.retry(f.name) for f in folders)
    finally:
        state.close()
    print(f"requeued {count} failed job{'s' if count != 1 else ''}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logs(config.daemon.log_format, "warning")  # stdout is the probe's report
    print(f"config {config.path}: ok ({len(config.folders)} folders, {len(config.remotes)} remotes)")
    with ExitStack() as stack:
        problems = probe_remotes(config, stack)
    for line in problems.lines:
        print(line)
    return EXIT_OK if problems.ok else EXIT_FAILED


def cmd_link(args: argparse.Namespace) -> int:
    from syncd.cli.link import NotLinkable, link
    from syncd.errors import RemoteError

    config = _config(args)
    configure_logs(config.daemon.log_format, "warning")
    try:
        print(link(config, Path(args.path), args.expires))
    except NotLinkable as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RemoteError as exc:
        print(f"syncd: link failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


COMMANDS = {
    "run": cmd_run, "serve": cmd_serve, "reconcile": cmd_reconcile, "status": cmd_status, "retry": cmd_retry,
    "check": cmd_check, "link": cmd_link,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `syncd` console script."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, UsageError, StateDamaged, StateVersionError) as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # damage found mid-run, past the check at open
        if not is_damage(exc):
            raise
        print(f"syncd: {damaged(None, exc)}", file=sys.stderr)
        return EXIT_USAGE
    except StateLocked as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        return EXIT_OK
