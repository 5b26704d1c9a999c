"""What the control socket may ask of the running daemon (`syncd.control.api.Controls`).

Requests arrive on the control server's threads. Reading (status) and the queue's own
transactions (retry) are done there: the state is thread-safe. Anything that plans (a pass)
is handed to the daemon's loop (`Daemon.call`), which alone plans, and the request waits for
it. Transfers stay with the daemon's workers; `reconcile` waits for them the way a one-shot
`reconcile` drains its queue, then answers the same document `reconcile --json` prints.

Every result a worker reports is also published as an event (`transfer`, or `conflict`), and
so are passes, errors, retries, holds and releases.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from syncd.config import FolderConfig
from syncd.control.api import Refused, UnknownFolder
from syncd.control.bus import EventBus
from syncd.state.queue import JobState
from syncd.sync.report import Change, FolderReport
from syncd.sync.workers import WAIT_HORIZON

if TYPE_CHECKING:
    from syncd.app import App
    from syncd.daemon.service import Daemon

#: How often a `reconcile` handed to the daemon looks whether its work is done.
SETTLE_POLL = 0.1


class DaemonControls:
    """The control socket's side of one running daemon."""

    def __init__(self, daemon: Daemon, app: App) -> None:
        self.daemon = daemon
        self.app = app
        self.bus = EventBus()
        #: Folders a user holds, with the reason (in memory: a restart releases them).
        self.held: dict[str, str] = {}
        self._lock = threading.Lock()
        app.engine.listen(self._on_change)

    # -- reading ------------------------------------------------------------------------------

    def status(self, folders: list[str] | None, files: bool) -> dict[str, Any]:
        from syncd.sync.status import status_doc

        chosen = self._folders(folders)
        with self._lock:
            held = dict(self.held)
        return status_doc(
            self.daemon.config, self.app.state, folders=[f.name for f in chosen], files=files,
            daemon_pid=self.daemon.pid, held=held,
        )

    # -- steering -----------------------------------------------------------------------------

    def retry(self, folders: list[str] | None) -> int:
        chosen = [f.name for f in self._folders(folders)]
        count = sum(self.app.queue.retry(name) for name in chosen)
        self.app.engine.notify_work()
        self.bus.publish("retry", folders=chosen, requeued=count)
        return count

    def pass_now(self, folders: list[str] | None) -> list[str]:
        chosen = [f for f in self._folders(folders) if f.name not in self.held]
        self.daemon.calls.call(lambda app: [self.daemon.full_pass(app, f, urgent=True) for f in chosen])
        return [f.name for f in chosen]

    def reconcile(self, folders: list[str] | None, max_delete: int | None) -> dict[str, Any]:
        """A full pass of `folders`, answered once its work is done (or waits beyond the horizon,
        as a one-shot `reconcile` leaves it), as `reconcile --json` prints it."""
        chosen = self._folders(folders)
        held = [f.name for f in chosen if f.name in self.held]
        if held:
            raise Refused(f"held by the user, release it first: {', '.join(held)}")
        ours: dict[str, FolderReport] = {}
        changes: list[Change] = []
        lock = threading.Lock()

        def collect(change: Change) -> None:
            with lock:
                if change.folder in ours:
                    change.apply(ours[change.folder])
                elif any(f.name == change.folder for f in chosen):
                    changes.append(change)  # before the pass answered: applied once it has

        self.app.engine.listen(collect)
        try:
            def run(app: App) -> list[FolderReport]:
                return [self.daemon.full_pass(app, f, urgent=True, max_delete=max_delete) for f in chosen]

            reports = self.daemon.calls.call(run)
            with lock:
                ours.update({r.name: r for r in reports})
                for change in changes:
                    if change.folder in ours:
                        change.apply(ours[change.folder])
            self._wait_settled(set(ours))
            self.app.engine.report_leftovers(ours)
        finally:
            self.app.engine.unlisten(collect)
        ok = all(r.ok for r in reports)
        return {"ok": ok, "folders": [r.as_json() for r in reports]}

    def _wait_settled(self, folders: set[str]) -> None:
        """Until no job of `folders` runs and none is due within the workers' horizon."""
        queue = self.app.queue
        while not self.daemon.stopping:
            counts = [queue.counts(f) for f in folders]
            running = sum(c.get(JobState.RUNNING, 0) for c in counts)
            pending = sum(c.get(JobState.PENDING, 0) for c in counts)
            due = queue.next_due(folders)
            if running == 0 and (pending == 0 or due is None or due - time.time() > WAIT_HORIZON):
                return
            time.sleep(SETTLE_POLL)

    def hold(self, folder: str, reason: str) -> bool:
        [chosen] = self._folders([folder])
        with self._lock:
            fresh = chosen.name not in self.held
            self.held[chosen.name] = reason
        self.app.engine.hold(chosen.name, True)
        self.bus.publish("hold", folder=chosen.name, reason=reason)
        return fresh

    def release(self, folder: str) -> bool:
        [chosen] = self._folders([folder])
        with self._lock:
            was = self.held.pop(chosen.name, None) is not None
        self.app.engine.hold(chosen.name, False)
        self.bus.publish("release", folder=chosen.name)
        if was:  # what changed meanwhile was not planned: a full pass catches up
            self.daemon.calls.post(lambda app: self.daemon.full_pass(app, chosen, urgent=True))
        return was

    def is_held(self, folder: str) -> bool:
        with self._lock:
            return folder in self.held

    # -- events -------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        result = change.result
        if result is None or result.status == "planned":
            return
        fields: dict[str, Any] = {
            "folder": change.folder, "name": result.name, "action": result.action, "status": result.status,
        }
        if result.error:
            fields["error"] = result.error
        if result.renamed_from is not None:
            fields["renamed_from"] = result.renamed_from
        self.bus.publish("conflict" if result.action == "conflict" else "transfer", **fields)

    # -- helpers ------------------------------------------------------------------------------

    def _folders(self, names: list[str] | None) -> list[FolderConfig]:
        config = self.daemon.config
        if not names:
            return list(config.folders)
        known = {f.name: f for f in config.folders}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UnknownFolder(
                f"no folder named {', '.join(map(repr, unknown))} (configured: {', '.join(known) or 'none'})"
            )
        return [known[n] for n in names]

