"""`syncd status`: per folder, what is tracked, queued, failed, and why; with `--files`, every
file that is not in sync. Reads the state database without its writer lock, so it works while
the daemon runs; the document is `syncd.sync.status`'s, printed as JSON or for people."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from syncd.cli.common import config_of
from syncd.cli.exits import EXIT_OK
from syncd.cli.text import shown
from syncd.config import Config
from syncd.state.db import DB_NAME, lock_holder, open_state
from syncd.sync.status import status_doc

#: The `files_out_of_sync` state of deletions `max_delete` held back (SPEC's words).
HELD_BACK = "deletion held back"


def command(args: argparse.Namespace) -> int:
    config = config_of(args)
    # Without --files the human form still says how many deletions are held back.
    files = args.files or not args.json
    doc = _from_daemon(config, args.folder, files) or _from_state(config, args.folder, files)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        print_status(doc, files=args.files)
    return EXIT_OK


def _from_daemon(config: Config, folders: list[str] | None, files: bool) -> dict[str, Any] | None:
    """The running daemon's document (it adds what only it knows: folders on hold), or None when
    no daemon answers on the control socket."""
    from syncd.control.address import connect

    for name in folders or ():
        config.folder(name)  # an unknown name is a usage error here, as without a daemon
    client = connect(config.daemon.state_dir)
    if client is None:
        return None
    with client:
        return client.status(folders, files)


def _from_state(config: Config, folders: list[str] | None, files: bool) -> dict[str, Any]:
    state_dir = config.daemon.state_dir
    pid = lock_holder(state_dir)
    # Read-only, and never the first to make the database: no state yet is nothing synced yet.
    state = open_state(state_dir, writer=False) if (state_dir / DB_NAME).exists() else None
    try:
        return status_doc(config, state, folders=folders, files=files, daemon_pid=pid)
    finally:
        if state is not None:
            state.close()


def print_status(doc: dict[str, Any], *, files: bool) -> None:
    """The document for people: a block per folder, names and messages escaped, times local."""
    daemon = doc["daemon"]
    print(f"daemon: running (pid {daemon['pid']})" if daemon["running"] else "daemon: not running")
    for folder in doc["folders"]:
        print()
        print(f"{shown(folder['name'])} ({folder['mode']}): {shown(folder['path'])} \u21c4 "
              f"{shown(folder['place'])} on {folder['remote']}")
        print(f"  {plural(folder['files'], 'file')}, {folder['pending']} pending, {folder['running']} running, "
              f"{folder['failed']} failed")
        trash = human_size(folder["trash_bytes"]) if folder["trash_bytes"] else "empty"
        print(f"  last pass: {local_time(folder['last_pass']) or 'never'}; trash: {trash}")
        if folder.get("held"):
            print(f"  held by the user: {shown(folder['held'])} (no passes, no new transfers until released)")
        if folder["last_error"]:
            print(f"  last error: {shown(folder['last_error'])}")
        entries = folder.get("files_out_of_sync") or []
        held = [e for e in entries if e["state"] == HELD_BACK]
        if held:
            print(f"  {plural(len(held), 'deletion')} held back: {shown(held[0]['reason'])}")
        if files:
            print_files(entries)


def print_files(entries: list[dict[str, Any]]) -> None:
    """One line per file not in sync: state, name, reason, next try. (The reason of a held-back
    deletion is the folder's, said once above.)"""
    if not entries:
        print("  every file is in sync")
        return
    print("  not in sync:")
    width = max(len(e["state"]) for e in entries)
    for e in entries:
        reason = "by max_delete (see above)" if e["state"] == HELD_BACK else shown(e["reason"])
        when = f" (next try {local_time(e['next_try'])})" if e["next_try"] else ""
        print(f"    {e['state']:<{width}}  {shown(e['name'])}: {reason}{when}")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def local_time(iso: str | None) -> str | None:
    """An ISO 8601 time as the local clock shows it, to the minute (unparsable: as it is)."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return shown(iso)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def human_size(n: int) -> str:
    """Bytes in decimal units, one decimal: ``1.2 MB``."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} PB"
