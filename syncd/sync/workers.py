"""The worker pool: threads that claim queued jobs and hand each to the `JobRunner`
(`sync/jobs.py`), which runs it through its folder's `Executor`, applies the journal writes
the executor returns and settles the row. `reconcile` drains the queue with it once; the
daemon keeps it running.

What the pool guarantees:

* **Lanes.** `workers` threads take any job; small-only threads make `small_transfers` in
  all (`sync/lanes.py`): at most `workers` large transfers run at once, and small files,
  deletions and moves are never stuck behind them.
* **Leases.** A row is worked on only under the lease it was claimed with; `work` extends
  the leases of all live workers every `renew_every`, so a transfer longer than one lease is
  never started a second time by another worker. A worker's lease ends with it: a thread that
  dies has its row put back at once (`Queue.release_owned`), never left to time out.
* **Never dies of a job.** Whatever one raises settles that job's row (failed, or kept for
  later) and the worker goes on; a worker thread that dies anyway is replaced by `work` (after
  RESTART_DELAY, doubling while deaths go on; a one-shot drain gives up after MAX_DEATHS).
* **Pauses.** No work is claimed for a remote that refused us (`RemotePauses`), nor for one
  whose breaker is open, except one probe job once its cool-down is over; a probe a worker
  takes and does not use is handed back.
* **Busy names.** While a job runs, its name (and, for a conflict, any conflicted-copy name
  of its folder) is `busy`: the daemon's watcher waits for it instead of echoing syncd's own
  writes back as local changes.
* **No lost wake-up.** An idle worker sleeps until the next row is due, a breaker's cool-down
  ends, or `notify_work`; the generation counter makes a notify between its look at the
  queue and its sleep wake it at once.
"""

from __future__ import annotations

import itertools
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

import structlog

from syncd.core.model import ActionKind
from syncd.remote.breaker import Breakers
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.queue import Job, Queue
from syncd.sync.execute import Executor
from syncd.sync.jobs import JobRunner, Replan
from syncd.sync.lanes import LARGE
from syncd.sync.passes import now_iso
from syncd.sync.pauses import RemotePauses
from syncd.sync.report import FolderReport, Reports, add_leftovers

log = structlog.get_logger("syncd.sync.workers")

#: How far ahead `drain` waits for a job's retry before reporting it as failed.
WAIT_HORIZON = 10.0
#: What every conflicted-copy name contains (`folderfs.conflict_name`).
CONFLICT_MARK = " (conflicted copy "
#: A claimed row's lease, and how often live workers' leases are extended: a transfer
#: may take far longer than one lease, and its row must never be taken over meanwhile.
LEASE = 300.0
RENEW_EVERY = 60.0
#: The longest an idle lingering worker sleeps before looking at the queue again.
IDLE_WAIT = 30.0
#: A dead worker thread is replaced after this long, doubled for each further death (capped
#: at IDLE_WAIT), so a fault that kills every worker at once does not spin.
RESTART_DELAY = 0.1
#: A one-shot drain gives up (raises) after this many worker deaths; the daemon never does.
MAX_DEATHS = 10

class Workers:
    """The worker threads over one queue, for the folders that have an executor."""

    def __init__(
        self,
        state: State,
        queue: Queue,
        executors: Mapping[str, Executor],
        *,
        breakers: Breakers,
        pauses: RemotePauses,
        reports: Reports,
        replan: Replan,
        clock: Callable[[], float] = time.time,
        lease: float = LEASE,
        renew_every: float = RENEW_EVERY,
    ) -> None:
        self.state = state
        self.queue = queue
        self.breakers = breakers
        self.pauses = pauses
        self.reports = reports
        self.clock = clock
        self.lease = lease
        self.renew_every = renew_every
        self.runner = JobRunner(state, queue, breakers=breakers, pauses=pauses, reports=reports, replan=replan)
        self._lock = threading.Lock()
        self.executors: Mapping[str, Executor] = executors
        self._active = frozenset(executors)
        self._busy: dict[tuple[str, str], int] = {}
        self._conflicts: dict[str, int] = {}
        self._owners: set[str] = set()
        self._held: set[str] = set()  # folders a user holds: no job of theirs is claimed
        self._work = threading.Condition()
        self._generation = 0  # bumped by every `notify_work` (under `_work`): no wake-up is lost

    def reconfigure(self, executors: Mapping[str, Executor]) -> None:
        """Running jobs finish with the executor they started with; lingering workers pick up
        the new folder set."""
        with self._lock:
            self.executors, self._active = executors, frozenset(executors)

    def folders_of(self, remote: str) -> list[str]:
        """The configured folders of `remote`."""
        with self._lock:
            executors = self.executors
        return [name for name, executor in executors.items() if executor.folder.remote == remote]

    # -- supervision ------------------------------------------------------------

    def drain(
        self, folders: Iterable[str], workers: int, stop: threading.Event | None = None, *, small_transfers: int = 0
    ) -> None:
        """Run queued work for `folders` until none is left that is due within the horizon."""
        names = set(folders)
        self.work(names, workers, stop or threading.Event(), linger=False, small_transfers=small_transfers)
        self._report_leftovers(names)

    def work(
        self, folders: set[str] | None, workers: int, stop: threading.Event, *, linger: bool, small_transfers: int = 0
    ) -> None:
        """Run `workers` threads over the queue of `folders`, plus small-only ones up to
        `small_transfers` threads in all (`sync/lanes.py`), until `stop`, or (unless `linger`)
        until no work is due within the horizon. Keeps the workers' leases alive meanwhile.
        `folders` None means the configured folders, as `reconfigure` changes them.

        A worker thread that dies (a fault outside any one job: the state database, a bug in
        the loop itself) is noticed here: the row it held goes back to pending at once and
        another worker takes its place (after RESTART_DELAY, doubling while deaths go on)."""
        exits: queue_module.SimpleQueue[tuple[str, BaseException | None]] = queue_module.SimpleQueue()
        live: dict[str, threading.Thread] = {}
        lanes: dict[str, int | None] = {}  # owner -> the size its jobs stay below (None: any job)
        serial = itertools.count()

        def start(smaller_than: int | None) -> None:
            lane = "worker" if smaller_than is None else "small"
            owner = f"{lane}-{next(serial)}-{os.getpid()}-{id(self)}-{id(stop)}"
            with self._lock:
                self._owners.add(owner)
            thread = threading.Thread(
                target=self._worker_thread, args=(owner, folders, stop, linger, smaller_than, exits), name=owner,
                daemon=True,
            )
            live[owner], lanes[owner] = thread, smaller_than
            thread.start()

        workers = max(1, workers)
        for _ in range(workers):
            start(None)
        for _ in range(max(0, small_transfers - workers)):
            start(LARGE)
        deaths, fatal = 0, None
        restarts: list[tuple[float, int | None]] = []  # when to start a replacement, and its lane
        next_renew = time.monotonic() + self.renew_every
        try:
            while live or restarts:
                wake = min([next_renew, *(t for t, _ in restarts)])
                if restarts:  # a pending restart must still see `stop` soon
                    wake = min(wake, time.monotonic() + 1.0)
                try:
                    owner, error = exits.get(timeout=max(0.0, wake - time.monotonic()))
                except queue_module.Empty:
                    pass
                else:
                    live.pop(owner).join()
                    lane = lanes.pop(owner)
                    with self._lock:
                        self._owners.discard(owner)
                    if error is not None:
                        deaths += 1
                        self._buried(owner, error)
                        if not linger and deaths > MAX_DEATHS:
                            fatal = error  # a one-shot run does not retry a broken machine forever
                        elif not stop.is_set():
                            delay = min(IDLE_WAIT, RESTART_DELAY * 2 ** min(deaths - 1, 16))
                            restarts.append((time.monotonic() + delay, lane))
                now = time.monotonic()
                if stop.is_set():
                    restarts.clear()
                for restart in [r for r in restarts if r[0] <= now]:
                    restarts.remove(restart)
                    start(restart[1])
                if now >= next_renew:
                    self._renew_quietly()
                    next_renew = now + self.renew_every
        finally:
            with self._lock:
                self._owners.difference_update(live)
        if fatal is not None:
            raise fatal

    def _worker_thread(
        self,
        owner: str,
        only: set[str] | None,
        stop: threading.Event,
        linger: bool,
        smaller_than: int | None,
        exits: queue_module.SimpleQueue[tuple[str, BaseException | None]],
    ) -> None:
        """A worker's whole life; how it ended (None, or what killed it) goes to `exits`."""
        error: BaseException | None = None
        try:
            self._worker(owner, only, stop, linger, smaller_than)
        except BaseException as exc:  # noqa: BLE001 - reported to the supervising `work`, which replaces us
            error = exc
        finally:
            try:
                for breaker in self.breakers:  # a probe this thread held must not die with it
                    breaker.release()
            finally:
                exits.put((owner, error))

    def _buried(self, owner: str, error: BaseException) -> None:
        """A worker thread died: say so, and put the row it held back to pending now."""
        try:
            released = self.queue.release_owned([owner])
        except Exception as exc:  # noqa: BLE001 - then its lease runs out instead (no longer renewed)
            log.error("could not release a dead worker's rows", worker=owner, error=str(exc))
            released = 0
        log.error("worker died; starting another", worker=owner, rows_released=released, exc_info=error)

    def _renew_quietly(self) -> None:
        try:
            self.renew_leases()
        except Exception as exc:  # noqa: BLE001 - tried again at the next renewal, long before leases end
            log.warning("could not renew the workers' leases", error=str(exc))

    def renew_leases(self) -> int:
        """Extend the leases of the rows this pool's workers hold."""
        with self._lock:
            owners = list(self._owners)
        return self.queue.renew_owned(owners, lease=self.lease)

    def notify_work(self) -> None:
        """Wake idle workers: new work was queued, or work became due sooner."""
        with self._work:
            self._generation += 1
            self._work.notify_all()

    def report_leftovers(self, reports: Mapping[str, FolderReport]) -> None:
        """What `drain` does at its end, for `reports` (a pass's own) after lingering workers
        took the work that was due."""
        self._report_leftovers(set(reports), reports)

    def hold(self, folder: str, held: bool) -> None:
        """Claim no more jobs of `folder` (`held`), or again (jobs already running finish)."""
        with self._lock:
            if held:
                self._held.add(folder)
            else:
                self._held.discard(folder)
        self.notify_work()

    def stop_workers(self, stop: threading.Event) -> None:
        """Set `stop` and wake every idle worker so it sees it."""
        stop.set()
        self.notify_work()

    # -- one worker -------------------------------------------------------------

    def _worker(
        self, owner: str, only: set[str] | None, stop: threading.Event, linger: bool, smaller_than: int | None
    ) -> None:
        """Claim and run jobs (below `smaller_than` bytes, if given) until `stop`, or (unless
        `linger`) until none of them is due within the horizon."""
        while not stop.is_set():
            with self._work:
                seen = self._generation
            candidates = self._active if only is None else only
            folders = self._claimable(candidates)
            jobs = self.queue.claim(owner, limit=1, lease=self.lease, folders=folders, smaller_than=smaller_than)
            self._release_probes(jobs[0] if jobs else None)
            if jobs:
                self._run(jobs[0], stop)
                continue
            now = self.clock()
            due = self.queue.next_due(folders, smaller_than)
            if not linger:
                left = sum(self.queue.outstanding(f) for f in folders)
                if left == 0 or due is None or due - now > WAIT_HORIZON:
                    return
            # Sleep until the next row is due or a breaker's cool-down ends (its probe), or until
            # `notify_work`: new work, a row put back, a job that ended. Nothing is polled.
            wake = min((t for t in (due, self._cool_downs_end(candidates, now)) if t is not None), default=None)
            wait = IDLE_WAIT if wake is None else min(IDLE_WAIT, max(0.01, wake - now))
            with self._work:
                if not stop.is_set() and self._generation == seen:
                    self._work.wait(wait)

    def _claimable(self, folders: Collection[str]) -> list[str]:
        """The configured folders among `folders` whose work the calling worker may claim now:
        not those of a paused remote, nor of one whose breaker is open (unless this worker
        takes its probe: `_release_probes` hands back what it then does not use)."""
        with self._lock:
            executors = self.executors
        paused = self.pauses.refused()
        admitted: dict[str, bool] = {}
        claimable = []
        with self._lock:
            held = set(self._held)
        for name in folders:
            executor = executors.get(name)
            if executor is None or name in held:
                continue
            remote = executor.folder.remote
            if remote not in admitted:
                admitted[remote] = remote not in paused and self.breakers.get(remote).admits()
            if admitted[remote]:
                claimable.append(name)
        return claimable

    def _release_probes(self, keep: Job | None = None) -> None:
        """Hand back the breaker probes this worker took in `_claimable` and does not use
        (all but the one of `keep`'s remote)."""
        executor = self.executors.get(keep.folder) if keep is not None else None
        kept = executor.folder.remote if executor is not None else None
        for breaker in self.breakers:
            if breaker.remote != kept:
                breaker.release()

    def _cool_downs_end(self, folders: Collection[str], now: float) -> float | None:
        """The earliest moment after `now` an open breaker of `folders`' remotes lets a probe
        through (a cool-down already over is not waited for: its folders are claimable)."""
        with self._lock:
            executors = self.executors
        remotes = {executors[f].folder.remote for f in folders if f in executors}
        ends = [t for b in self.breakers if b.remote in remotes and (t := b.until) is not None and t > now]
        return min(ends, default=None)

    def busy(self, folder: str, name: str) -> bool:
        """True while a worker may be writing `name` in `folder` (the name itself, or a
        conflicted copy while a conflict is resolved): the daemon's watcher waits for it."""
        with self._lock:
            if (folder, name) in self._busy:
                return True
            return self._conflicts.get(folder, 0) > 0 and CONFLICT_MARK in name

    # -- one job ----------------------------------------------------------------

    def _run(self, job: Job, stop: threading.Event) -> None:
        """Run one claimed job and settle its row, whatever happens: a job never kills its worker.

        A payload that cannot be read fails its row with the reason (the next pass plans the
        name again); a folder that left the config between claim and run keeps its row, pending,
        for when it returns; any other exception fails the row for a later retry."""
        try:
            action = jobcodec.loads(job.payload)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the row is unreadable
            self.runner.unreadable(job, exc)
            return
        with self._lock:
            executor = self.executors.get(job.folder)
        if executor is None:
            self.queue.postpone(
                job, f"{action.name}: folder {job.folder} is not in the config now; its work waits for it",
                until=self.clock(),
            )
            return
        key = (job.folder, action.name)
        conflict = action.kind in (ActionKind.CONFLICT, ActionKind.COMPARE, ActionKind.RACE)
        with self._lock:
            self._busy[key] = self._busy.get(key, 0) + 1
            if conflict:
                self._conflicts[job.folder] = self._conflicts.get(job.folder, 0) + 1
        try:
            self.runner.run(job, action, executor, stop)
        except Exception as exc:  # noqa: BLE001 - settling the row failed: one more try, then the worker's
            self.runner.crashed(job, action, exc)
        finally:
            with self._lock:
                self._busy[key] -= 1
                if not self._busy[key]:
                    del self._busy[key]
                if conflict:
                    self._conflicts[job.folder] -= 1
            self.breakers.get(executor.folder.remote).release()  # a probe that made no transfer
            self.notify_work()  # its row may be due again, or the last one: idle workers look

    def _report_leftovers(self, folders: set[str], reports: Mapping[str, FolderReport] | None = None) -> None:
        """Work still queued after draining is reported with the reason it is waiting, in the
        folders' reports on the board (or in `reports`: a pass's own, which the daemon keeps)."""
        for folder in folders:
            report = self.reports.get(folder) if reports is None else reports.get(folder)
            if report is None:
                continue
            remote = self.executors[folder].folder.remote if folder in self.executors else None
            paused = self.state.remote_paused(remote) if remote is not None else None
            breaker = self.breakers.get(remote) if remote is not None else None
            failing = breaker.reason() if breaker is not None else None
            add_leftovers(
                report, self.queue.jobs(folder),
                waiting=f"remote paused: {paused}" if paused else "not done yet",
                failing=failing,
                held_back=breaker.reason(last_error=False) if breaker is not None and failing else None,
            )
            self.state.set_last_pass(folder, now_iso(self.clock()), report.first_error)
