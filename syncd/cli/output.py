"""What the one-shot commands print: reconcile summaries and status (`syncd check` prints its own)."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from syncd.config import Config
from syncd.state.db import lock_holder, open_state
from syncd.state.queue import JobState, Queue

if TYPE_CHECKING:
    from syncd.app import App
    from syncd.sync.report import FolderReport


def print_report(report: FolderReport) -> None:
    """Plain lines, one per action, then the folder's totals."""
    if report.blocked:
        print(f"{report.name}: blocked: {report.blocked}")
    if report.warning:
        print(f"{report.name}: warning: {report.warning}")
    for r in sorted(report.results.values(), key=lambda r: r.name):
        tail = f": {r.error}" if r.error else ""
        what = f"rename {r.renamed_from} \u2192 {r.name}" if r.renamed_from else f"{r.action} {r.name}"
        print(f"{report.name}: {what} {r.status}{tail}")
    d = report.as_json()
    print(
        f"{report.name}: {d['uploaded']} uploaded, {d['downloaded']} downloaded, "
        f"{d['deleted_local']} deleted locally, {d['deleted_remote']} deleted remotely, "
        f"{d['conflicts']} conflicts, {d['failed']} failed, {d['unchanged']} unchanged"
    )


class Progress:
    """A one-line progress display on a TTY while workers drain the queue."""

    def __init__(self, app: App, folders: list[str], *, enabled: bool) -> None:
        self.app = app
        self.folders = folders
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            left = sum(self.app.queue.outstanding(f) for f in self.folders)
            sys.stdout.write(f"\rsyncing: {left} item{'s' if left != 1 else ''} left   ")
            sys.stdout.flush()

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            sys.stdout.write("\r\033[K")


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
