"""`syncd reconcile`: one full pass over the folders, waiting until its work is done."""

from __future__ import annotations

import argparse
import json
import sys

from syncd.cli.common import config_of, folders_of
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.output import Progress, print_report
from syncd.cli.parser import UsageError, log_level


def command(args: argparse.Namespace) -> int:
    # Here, not at the top: the sync engine and the remotes' clients are for the syncing commands.
    from syncd.app import open_app

    config = config_of(args)
    if args.rebuild_journal and args.dry_run:
        raise UsageError("--rebuild-journal changes the state database; it cannot be combined with --dry-run")
    configure_logs(config.daemon.log_format, log_level(args, "warning" if not args.json else "error"))
    folders = folders_of(config, args.folder)
    with open_app(config, rebuild_journal=args.rebuild_journal) as app:
        if app.state.set_aside_as is not None:
            print(f"syncd: the old state database is kept as {app.state.set_aside_as}; "
                  "this pass rebuilds the journal", file=sys.stderr)
        reports = [app.engine.pass_folder(f, dry_run=args.dry_run, urgent=True, max_delete=args.max_delete)
                   for f in folders]
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
