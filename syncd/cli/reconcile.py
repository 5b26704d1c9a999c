"""`syncd reconcile`: one full pass over the folders, waiting until its work is done."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from syncd.cli.common import config_of, folders_of
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.output import print_report
from syncd.cli.parser import UsageError, log_level

#: What the workers and passes log per file that this command's report prints as well: a
#: person sees each failure once, in the report (`-v` logs every file's outcome anyway).
REPORTED_EVENTS = ("transfer", "not synced", "max_delete", "remote place gone")


def command(args: argparse.Namespace) -> int:
    # Here, not at the top: the sync engine and the remotes' clients are for the syncing commands.
    from syncd.app import open_app

    config = config_of(args)
    if args.rebuild_journal and args.dry_run:
        raise UsageError("--rebuild-journal changes the state database; it cannot be combined with --dry-run")
    # On a terminal: a progress display, then only the actions to look at (a dry run lists
    # everything: the list is what it is for). Piped or --json: every action, as before.
    on_terminal = sys.stdout.isatty() and not args.json
    configure_logs(config.daemon.log_format, log_level(args, "warning" if not args.json else "error"),
                   reported=REPORTED_EVENTS)
    folders = folders_of(config, args.folder)
    with open_app(config, rebuild_journal=args.rebuild_journal) as app:
        if app.state.set_aside_as is not None:
            print(f"syncd: the old state database is kept as {app.state.set_aside_as}; "
                  "this pass rebuilds the journal", file=sys.stderr)
        reports = [app.engine.pass_folder(f, dry_run=args.dry_run, urgent=True) for f in folders]
        if not args.dry_run:
            with _progress(config.daemon.state_dir, [f.name for f in folders], shown=on_terminal):
                app.engine.drain([f.name for f in folders], config.daemon.workers,
                                 small_transfers=config.daemon.small_transfers)
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "folders": [r.as_json() for r in reports]}, ensure_ascii=False))
    else:
        for report in reports:
            print_report(report, every_action=args.dry_run or not on_terminal)
    return EXIT_OK if ok else EXIT_FAILED


def _progress(state_dir: Path, folders: list[str], *, shown: bool) -> AbstractContextManager[object]:
    """The progress display while the queue drains, on a terminal (rich is loaded only then)."""
    if not shown:
        return nullcontext()
    from syncd.cli.progress import TransferProgress

    return TransferProgress(state_dir, folders)
