"""`syncd events [--json]`: follow what the running daemon does, until Ctrl-C or its stop.

One line per event: transfers (done or failed, with the error), conflicts, passes that found
work, errors, retries, holds and releases. `--json` prints the daemon's own objects, one per
line, for scripts. Without a running daemon there is nothing to follow: exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from syncd.cli.common import config_of
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.text import shown


def command(args: argparse.Namespace) -> int:
    from syncd.control.address import connect

    config = config_of(args)
    client = connect(config.daemon.state_dir)
    if client is None:
        print(f"syncd: no daemon is running for {config.daemon.state_dir} (start one with `syncd run`)",
              file=sys.stderr)
        return EXIT_FAILED
    with client:
        for event in client.events():
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            elif event.get("event") == "hello":
                print(f"following the daemon (pid {event.get('pid')}) of {config.daemon.state_dir}; Ctrl-C stops",
                      file=sys.stderr, flush=True)
            else:
                print(line_of(event), flush=True)
    if not args.json:
        print("the daemon stopped", file=sys.stderr)
    return EXIT_OK


def line_of(event: dict[str, Any]) -> str:
    """One event as a person reads it: local time, folder, what happened."""
    kind = str(event.get("event"))
    when = _clock(event.get("time"))
    folder = shown(str(event.get("folder", "")))
    name = shown(str(event.get("name", "")))
    error = f": {shown(str(event['error']))}" if event.get("error") else ""
    if kind in ("transfer", "conflict"):
        what = str(event.get("action"))
        if event.get("renamed_from"):
            what = f"rename {shown(str(event['renamed_from']))} \u2192"
        text = f"{folder}: {what} {name} {event.get('status')}{error}"
    elif kind == "pass":
        parts = [f"{event.get('queued', 0)} to do", f"{event.get('unchanged', 0)} unchanged"]
        text = f"{folder}: {event.get('scope', 'full')} pass, {', '.join(parts)}"
        if event.get("blocked"):
            text += f"; paused: {shown(str(event['blocked']))}"
        if event.get("warning"):
            text += f"; {shown(str(event['warning']))}"
    elif kind == "retry":
        count = int(event.get("requeued", 0))
        text = f"retry: {count} failed job{'s' if count != 1 else ''} requeued"
    elif kind == "hold":
        text = f"{folder}: held ({shown(str(event.get('reason', '')))})"
    elif kind == "release":
        text = f"{folder}: released"
    elif kind == "overflow":
        text = "too many events to keep up: some were dropped; following stopped"
    else:
        fields = {k: v for k, v in event.items() if k not in ("time", "event")}
        text = f"{kind} {shown(json.dumps(fields, ensure_ascii=False))}" if fields else kind
    return f"{when} {text}"


def _clock(stamp: object) -> str:
    try:
        return datetime.fromisoformat(str(stamp)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "--:--:--"
