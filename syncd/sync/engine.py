"""The sync engine: passes and workers over the folders of one config, wired together.

`Engine` is a thin façade for the callers (`app.py`, the daemon, the CLI, tests): it builds
one executor per folder and the parts that do the work, each in its own module:

* `sync/passes.py`   a pass: scan, list, plan, enqueue; and replanning one name;
* `sync/workers.py`  the worker pool: claim, lease renewal, run the executor, settle the
                     row and apply the executor's journal writes, supervision, busy names;
* `sync/pauses.py`   which remotes get no work (refused us, or failing) and why;
* `sync/report.py`   what a pass and its workers report, as values the CLI formats;
* `sync/execute.py`  carrying out one action, returning what it wants written (`outcome.py`).

`reconcile` runs a pass per folder, then drains the queue; the daemon keeps the workers
running and runs passes as the watcher, the poller and the rescans ask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from syncd.config import Config, FolderConfig
from syncd.core.model import Plan
from syncd.remote.base import Remote, RemoteFile
from syncd.remote.breaker import Breakers, GuardedRemote
from syncd.state.db import State
from syncd.state.queue import Queue
from syncd.sync.execute import Executor
from syncd.sync.passes import Passes
from syncd.sync.passes import policy_of as policy_of
from syncd.sync.pauses import RemotePauses
from syncd.sync.report import ActionResult as ActionResult
from syncd.sync.report import FolderReport, Listener, Reports
from syncd.sync.workers import LEASE, RENEW_EVERY, Workers


class Engine:
    """Passes and workers over the folders of one config."""

    def __init__(
        self,
        config: Config,
        state: State,
        queue: Queue,
        remotes: Mapping[str, Remote],
        *,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        renew_every: float = RENEW_EVERY,
        breakers: Breakers | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.queue = queue
        self.remotes = remotes
        self.clock = clock
        # One per remote; `open_app` shares them with the clients, whose retries they cut short.
        self.breakers = breakers if breakers is not None else Breakers(clock=clock)
        self._reports = Reports()
        self.pauses = RemotePauses(state, queue, self.breakers, self._folders_of, self.notify_work)
        self.passes = Passes(
            config, state, queue, remotes, reports=self._reports, pauses=self.pauses,
            notify_work=self.notify_work, clock=clock,
        )
        self.workers = Workers(
            state, queue, self._executors(config, remotes), breakers=self.breakers, pauses=self.pauses,
            reports=self._reports, replan=self.passes.replan, clock=clock, lease=lease, renew_every=renew_every,
        )

    def _executors(self, config: Config, remotes: Mapping[str, Remote]) -> dict[str, Executor]:
        """An executor per folder, its remote's transfers reported to the remote's breaker."""
        return {
            f.name: Executor(
                f, GuardedRemote(remotes[f.remote], self.breakers.get(f.remote)), self.state,
                settle=config.daemon.settle, clock=self.clock,
            )
            for f in config.folders
        }

    def _folders_of(self, remote: str) -> list[str]:
        return self.workers.folders_of(remote)

    def reconfigure(self, config: Config, remotes: Mapping[str, Remote]) -> None:
        """Take a reloaded config: new executors for every folder. Running jobs finish with
        the executor they started with; lingering workers pick up the new folder set."""
        executors = self._executors(config, remotes)
        self.config, self.remotes = config, remotes
        self.passes.reconfigure(config, remotes)
        self.workers.reconfigure(executors)

    @property
    def executors(self) -> Mapping[str, Executor]:
        return self.workers.executors

    @property
    def reports(self) -> Mapping[str, FolderReport]:
        """The latest report of each folder (see `sync/report.py`)."""
        return self._reports.by_folder

    # -- passes (sync/passes.py) ----------------------------------------------

    def check_folder(self, folder: FolderConfig) -> str | None:
        return self.passes.check_folder(folder)

    def plan_folder(
        self,
        folder: FolderConfig,
        report: FolderReport,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
    ) -> Plan:
        return self.passes.plan_folder(folder, report, names, remote)

    def remote_listing(self, folder: FolderConfig) -> list[RemoteFile] | None:
        return self.passes.remote_listing(folder)

    def pass_folder(
        self,
        folder: FolderConfig,
        *,
        dry_run: bool = False,
        urgent: bool = False,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
        revive_failed: bool = True,
        max_delete: int | None = None,
    ) -> FolderReport:
        return self.passes.pass_folder(
            folder, dry_run=dry_run, urgent=urgent, names=names, remote=remote, revive_failed=revive_failed,
            max_delete=max_delete,
        )

    def pause_remote(self, remote: str, reason: str | None) -> None:
        self.pauses.pause(remote, reason)

    # -- workers (sync/workers.py) --------------------------------------------

    def drain(
        self, folders: Iterable[str], workers: int, stop: threading.Event | None = None, *, small_transfers: int = 0
    ) -> None:
        self.workers.drain(folders, workers, stop, small_transfers=small_transfers)

    def work(
        self, folders: set[str] | None, workers: int, stop: threading.Event, *, linger: bool, small_transfers: int = 0
    ) -> None:
        self.workers.work(folders, workers, stop, linger=linger, small_transfers=small_transfers)

    def stop_workers(self, stop: threading.Event) -> None:
        self.workers.stop_workers(stop)

    def notify_work(self) -> None:
        # Called by the passes and pauses built before `workers` exists only once it does.
        self.workers.notify_work()

    def renew_leases(self) -> int:
        return self.workers.renew_leases()

    def busy(self, folder: str, name: str) -> bool:
        return self.workers.busy(folder, name)

    def hold(self, folder: str, held: bool) -> None:
        self.workers.hold(folder, held)

    def report_leftovers(self, reports: Mapping[str, FolderReport]) -> None:
        self.workers.report_leftovers(reports)

    # -- what the reports hear (sync/report.py) --------------------------------

    def listen(self, listener: Listener) -> None:
        self._reports.listen(listener)

    def unlisten(self, listener: Listener) -> None:
        self._reports.unlisten(listener)
