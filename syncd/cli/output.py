"""What the one-shot commands print: reconcile summaries, status, check results."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncd.cli.text import shown
from syncd.config import Config
from syncd.errors import FatalError, RemoteError
from syncd.state.db import lock_holder, open_state
from syncd.state.queue import JobState, Queue

if TYPE_CHECKING:
    from syncd.sync.report import FolderReport


def print_report(report: FolderReport, *, every_action: bool = True) -> None:
    """Plain lines, one per action, then the folder's totals.

    Without `every_action` (a terminal, where the progress display showed the work going by),
    only the actions a person has to look at: failures and conflicts. Names and messages have
    their control characters escaped: one action is always one line."""
    folder = shown(report.name)
    if report.blocked:
        print(f"{folder}: blocked: {shown(report.blocked)}")
    if report.warning:
        print(f"{folder}: warning: {shown(report.warning)}")
    for r in sorted(report.results.values(), key=lambda r: r.name):
        if not every_action and r.status != "failed" and r.action != "conflict":
            continue
        tail = f": {shown(r.error)}" if r.error else ""
        what = (
            f"rename {shown(r.renamed_from)} \u2192 {shown(r.name)}" if r.renamed_from
            else f"{r.action} {shown(r.name)}"
        )
        print(f"{folder}: {what} {r.status}{tail}")
    d = report.as_json()
    print(
        f"{folder}: {d['uploaded']} uploaded, {d['downloaded']} downloaded, "
        f"{d['deleted_local']} deleted locally, {d['deleted_remote']} deleted remotely, "
        f"{d['conflicts']} conflicts, {d['failed']} failed, {d['unchanged']} unchanged"
    )


def read_status(config: Config) -> dict[str, Any]:
    """The `status --json` document; reads while a daemon writes."""
    pid = lock_holder(config.daemon.state_dir)
    folders: list[dict[str, Any]] = []
    db = config.daemon.state_dir / "syncd.db"
    state = open_state(config.daemon.state_dir, writer=False) if db.exists() else None
    try:
        queue = Queue(state) if state else None
        for f in config.folders:
            counts = queue.counts(f.name) if queue else {}
            fs = state.folder_status(f.name) if state else None
            remote_paused = state.remote_paused(f.remote) if state else None
            last_error = (fs.paused if fs else None) or remote_paused or (fs.last_error if fs else None)
            folders.append({
                "name": f.name,
                "path": str(f.path),
                "remote": f.remote,
                "mode": f.mode,
                "files": state.journal_count(f.name) if state else 0,
                "pending": counts.get(JobState.PENDING, 0),
                "running": counts.get(JobState.RUNNING, 0),
                "failed": counts.get(JobState.FAILED, 0),
                "last_pass": fs.last_pass if fs else None,
                "last_error": last_error,
            })
    finally:
        if state:
            state.close()
    return {"daemon": {"running": pid is not None, "pid": pid}, "folders": folders}


def print_status(doc: dict[str, Any]) -> None:
    daemon = doc["daemon"]
    print(f"daemon: running (pid {daemon['pid']})" if daemon["running"] else "daemon: not running")
    for f in doc["folders"]:
        print(
            f"{f['name']}: {f['files']} files, {f['pending']} pending, {f['running']} running, "
            f"{f['failed']} failed; {f['mode']} {f['path']} <-> {f['remote']}; "
            f"last pass {f['last_pass'] or 'never'}"
        )
        if f["last_error"]:
            print(f"  last error: {f['last_error']}")


@dataclass
class ProbeResult:
    ok: bool = True
    lines: list[str] = field(default_factory=list)


def probe_remotes(config: Config, stack: ExitStack) -> ProbeResult:
    """Reachable, authorised (and can list, where the remote lists): each remote, through each
    folder's place."""
    from syncd.app import build_remotes

    result = ProbeResult()
    remotes = build_remotes(config, stack)
    for folder in config.folders:
        try:
            seen = remotes[folder.remote].probe(folder.place)
            result.lines.append(f"{folder.name}: remote {folder.remote} ok ({seen})")
        except FatalError as exc:
            result.ok = False
            result.lines.append(f"{folder.name}: remote {folder.remote} refused us: {exc}")
        except RemoteError as exc:
            result.ok = False
            result.lines.append(f"{folder.name}: remote {folder.remote} unreachable: {exc}")
    return result
