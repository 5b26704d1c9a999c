"""The `syncd` command line's grammar: every command, every option, one place.

Each command's work lives in its own module (`syncd.cli.<command>`), imported only when that
command runs (see `main.py`), so `--help` and `status` pay for no HTTP client, engine or server.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from syncd.errors import ConfigError

#: Log levels from quietest to most verbose; `-v`/`-q` move one step each way.
LEVELS = ("error", "warning", "info", "debug")


class UsageError(Exception):
    """Options that cannot be used together: exit 2."""


def build_parser() -> argparse.ArgumentParser:
    from syncd import __version__

    parser = argparse.ArgumentParser(prog="syncd",
                                     description="Keep local folders in sync with remote file collections.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    _verbosity(parser, 0)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", help="config file (default: $SYNCD_CONFIG, "
                        "$XDG_CONFIG_HOME/syncd/config.toml, /etc/syncd/config.toml)")
    _verbosity(common, argparse.SUPPRESS)  # after the command too; not given there, the top level's stays
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", parents=[common], help="the daemon, in the foreground (systemd runs it like this)",
                   description="Run the daemon in the foreground until SIGTERM or Ctrl-C.")
    rec = sub.add_parser("reconcile", parents=[common], help="one full pass over the folders, then exit",
                         description="One full pass over the folders; waits until its work is done. Next to a "
                                     "running daemon, the daemon does the work and this command reports it.")
    _folder_option(rec)
    rec.add_argument("--dry-run", action="store_true",
                     help="show what would be done; change nothing (works while a daemon runs)")
    rec.add_argument("--json", action="store_true", help="print the summary as JSON")
    rec.add_argument("--max-delete", type=_percent, metavar="PERCENT",
                     help="for this pass only, let deletions reach PERCENT of a folder's tracked files "
                          "(the way past a held-back mass deletion once you have checked it)")
    rec.add_argument("--rebuild-journal", action="store_true",
                     help="set the state database aside (kept, renamed) and rebuild the journal from this pass; "
                          "differing files become conflicts, nothing is deleted")
    status = sub.add_parser("status", parents=[common],
                            help="per folder: files, jobs, last pass, last error, trash size",
                            description="Per folder: tracked files, pending, running and failed jobs, last pass, "
                                        "last error and trash size. Works while the daemon runs.")
    _folder_option(status)
    status.add_argument("--files", action="store_true",
                        help="also list every file that is not in sync, with its state, reason and next try")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    retry = sub.add_parser("retry", parents=[common], help="put failed jobs back in the queue",
                           description="Put failed jobs back in the queue; a running daemon takes them at once.")
    _folder_option(retry)
    events = sub.add_parser("events", parents=[common], help="follow what the running daemon does",
                            description="Follow what the running daemon does: transfers, conflicts, errors, "
                                        "passes, one line each, until Ctrl-C.")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    init = sub.add_parser("init", parents=[common], help="write a commented starter config (never overwrites)",
                          description="Write a commented starter config (the quickstart's) to FILE, or to the "
                                      "default config path. An existing file is never overwritten.")
    init.add_argument("file", nargs="?", metavar="FILE", help="where to write it (default: the default config path)")
    check = sub.add_parser("check", parents=[common], help="validate the config and probe each remote",
                           description="Validate the config, then probe each folder's remote: reachable, "
                                       "authorised, can list.")
    check.add_argument("--json", action="store_true", help="print the checks as JSON")
    link = sub.add_parser("link", parents=[common],
                          help="print a URL that downloads a synced file without credentials")
    link.add_argument("path", metavar="PATH", help="a synced file, inside a configured folder")
    link.add_argument("--expires", type=_positive_int, metavar="SECONDS",
                      help="how long the URL works (default: the remote's own default)")
    _serve_parser(sub, common)
    return parser


def _verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="log more (one step per -v)")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="log less (one step per -q)")


def _folder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", action="append", metavar="NAME",
                        help="only the folder called NAME (repeatable; default: every folder)")


def log_level(args: argparse.Namespace, default: str) -> str:
    """`default` moved one step per `-v` (more) and per `-q` (less), within `LEVELS`."""
    step = (getattr(args, "verbose", 0) or 0) - (getattr(args, "quiet", 0) or 0)
    at = LEVELS.index(default) if default in LEVELS else LEVELS.index("info")
    return LEVELS[max(0, min(len(LEVELS) - 1, at + step))]


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _whole(text: str, *, at_least: int, what: str, at_most: int | None = None) -> int:
    """A whole-number option value, or the argparse error saying what was expected."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if value < at_least:
        raise argparse.ArgumentTypeError(f"must be at least {at_least}: {text!r}")
    if at_most is not None and value > at_most:
        raise argparse.ArgumentTypeError(f"must be at most {at_most}: {text!r}")
    return value


def _whole_seconds(text: str) -> int:
    return _whole(text, at_least=0, what="a whole number of seconds")


def _positive_int(text: str) -> int:
    return _whole(text, at_least=1, what="a whole number")


def _percent(text: str) -> int:
    return _whole(text.strip().removesuffix("%"), at_least=0, at_most=100, what="a percentage from 0 to 100")


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


def public_url(text: str | None) -> str | None:
    if text is None:
        return None
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise ConfigError(f"--public-url: expected http(s)://host[:port][/path], got {text!r}")
    return text.rstrip("/")
