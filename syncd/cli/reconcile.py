"""`syncd reconcile`: one full pass over the folders, waiting until its work is done.

Next to a running daemon (which holds the state dir), the pass is handed to it over its control
socket and this command prints what the daemon reports; a dry run reads the state without
the writer lock and so runs beside the daemon, changing nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from syncd.cli.common import config_of, folders_of
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.output import print_report
from syncd.cli.parser import UsageError, log_level
from syncd.config import Config, FolderConfig
from syncd.sync.report import ActionResult, FolderReport

#: What the workers and passes log per file that this command's report prints as well: a
#: person sees each failure once, in the report (`-v` logs every file's outcome anyway).
REPORTED_EVENTS = ("transfer", "not synced", "max_delete", "remote place gone")


def command(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.rebuild_journal and args.dry_run:
        raise UsageError("--rebuild-journal changes the state database; it cannot be combined with --dry-run")
    # On a terminal: a progress display, then only the actions to look at (a dry run lists
    # everything: the list is what it is for). Piped or --json: every action, as before.
    on_terminal = sys.stdout.isatty() and not args.json
    configure_logs(config.daemon.log_format, log_level(args, "warning" if not args.json else "error"),
                   reported=REPORTED_EVENTS)
    folders = folders_of(config, args.folder)
    doc = None if args.dry_run or args.rebuild_journal else _handed_to_daemon(config, folders, args.max_delete)
    if doc is not None:
        reports = [_report_of(f) for f in doc["folders"]]
    else:
        reports = _reconcile_here(config, folders, args, on_terminal=on_terminal)
    ok = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"ok": ok, "folders": [r.as_json() for r in reports]}, ensure_ascii=False))
    else:
        for report in reports:
            print_report(report, every_action=args.dry_run or not on_terminal)
    return EXIT_OK if ok else EXIT_FAILED


def _reconcile_here(
    config: Config, folders: list[FolderConfig], args: argparse.Namespace, *, on_terminal: bool
) -> list[FolderReport]:
    # Here, not at the top: the sync engine and the remotes' clients are for the syncing commands.
    from syncd.app import open_app

    with open_app(config, rebuild_journal=args.rebuild_journal, dry_run=args.dry_run) as app:
        if app.state.set_aside_as is not None:
            print(f"syncd: the old state database is kept as {app.state.set_aside_as}; "
                  "this pass rebuilds the journal", file=sys.stderr)
        reports = [
            app.engine.pass_folder(f, dry_run=args.dry_run, urgent=True, max_delete=args.max_delete) for f in folders
        ]
        if not args.dry_run:
            with _progress(config.daemon.state_dir, [f.name for f in folders], shown=on_terminal):
                app.engine.drain([f.name for f in folders], config.daemon.workers,
                                 small_transfers=config.daemon.small_transfers)
    return reports


def _handed_to_daemon(config: Config, folders: list[FolderConfig], max_delete: int | None) -> dict[str, Any] | None:
    """The daemon's report of the pass it ran for us, or None when no daemon serves the state
    dir (this process then takes the writer lock itself: exit 3 if something else holds it)."""
    from syncd.control.address import connect

    client = connect(config.daemon.state_dir)
    if client is None:
        return None
    with client:
        print(f"syncd: handing the pass to the running daemon (pid {_pid(config)})", file=sys.stderr)
        return client.reconcile([f.name for f in folders], max_delete)


def _pid(config: Config) -> int | None:
    from syncd.state.db import lock_holder

    return lock_holder(config.daemon.state_dir)


def _report_of(doc: dict[str, Any]) -> FolderReport:
    """A folder's report as the daemon sent it (`FolderReport.as_json`), back as a value."""
    report = FolderReport(doc["name"], blocked=doc.get("blocked"), warning=doc.get("warning"),
                          unchanged=int(doc.get("unchanged", 0)))
    for action in doc.get("actions", []):
        report.results[action["name"]] = ActionResult(
            action["name"], action["action"], action["status"], action.get("error"),
            renamed_from=action.get("renamed_from"),
        )
    return report


def _progress(state_dir: Path, folders: list[str], *, shown: bool) -> AbstractContextManager[object]:
    """The progress display while the queue drains, on a terminal (rich is loaded only then)."""
    if not shown:
        return nullcontext()
    from syncd.cli.progress import TransferProgress

    return TransferProgress(state_dir, folders)

