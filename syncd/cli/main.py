"""The `syncd` command line: dispatch and exit codes.

Exit codes (SPEC): 0 all good, 1 some files could not be synced, 2 usage or config error,
3 another syncd process holds the state dir.

The grammar is `parser.py`; each command is a module of its own (`syncd.cli.<command>`, with a
`command(args) -> int`), imported only when it runs.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence

from syncd.cli.exits import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE
from syncd.cli.parser import UsageError, build_parser
from syncd.errors import ConfigError, DaemonRefused, StateDamaged, StateLocked
from syncd.state.db import StateVersionError, damaged, is_damage

#: Each command's module, under `syncd.cli`.
COMMANDS = {
    "run": "run", "serve": "serve", "reconcile": "reconcile", "status": "status", "retry": "retry",
    "events": "events", "init": "init", "check": "check", "link": "link",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `syncd` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    module = importlib.import_module(f"syncd.cli.{COMMANDS[args.command]}")
    try:
        code: int = module.command(args)
        return code
    except (ConfigError, UsageError, StateDamaged, StateVersionError) as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # damage found mid-run, past the check at open
        if not is_damage(exc):
            raise
        print(f"syncd: {damaged(None, exc)}", file=sys.stderr)
        return EXIT_USAGE
    except DaemonRefused as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except StateLocked as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `syncd status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
