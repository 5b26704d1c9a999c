"""What `syncd reconcile` prints: its summaries and, on a terminal, its progress."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING

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


