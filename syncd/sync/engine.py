"""One sync pass and the workers that drain its queue.

`Engine.pass_folder` looks (scan + listing + journal), plans (pure) and
enqueues; `Engine.drain` runs `workers` threads that claim jobs, run them
through the folder's `Executor`, and settle each row: done, retried later
with backoff, or failed with a reason. `reconcile` and the daemon share both.

A worker never dies of a job: whatever one raises settles that job's row (failed, or kept
for later) and the worker goes on; a worker thread that dies anyway is replaced by `work`,
and the row it held is put back at once. Each remote has a circuit breaker
(`syncd.remote.breaker`): while it is open, no work of that remote's folders is claimed.
"""

from __future__ import annotations

import itertools
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import structlog

from syncd.config import Config, FolderConfig
from syncd.core.model import Action, ActionKind, ConflictPolicy, FolderPolicy, Mode, Plan, reported_kind
from syncd.core.names import normalize
from syncd.core.plan import plan
from syncd.errors import FatalError, ItemError, TransientError
from syncd.local.folderfs import FolderFS, FolderUnavailable, LocalChanged
from syncd.local.scan import is_ignored, scan_folder
from syncd.remote.base import Remote, RemoteFile
from syncd.remote.breaker import Breaker, Breakers, GuardedRemote
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.queue import Job, JobState, Queue
from syncd.sync.execute import Done, Executor, NotSettled, to_base

log = structlog.get_logger("syncd.sync.engine")

#: How far ahead `drain` waits for a job's retry before reporting it as failed.
WAIT_HORIZON = 10.0
MAX_REPLANS = 5
#: What every conflicted-copy name contains (`folderfs.conflict_name`).
CONFLICT_MARK = " (conflicted copy "
#: A claimed row's lease, and how often live workers' leases are extended: a transfer
#: may take far longer than one lease, and its row must never be taken over meanwhile.
LEASE = 300.0
RENEW_EVERY = 60.0
#: The longest an idle lingering worker sleeps before looking at the queue again.
IDLE_WAIT = 30.0
#: The longest a worker waits in place for a claimed file to settle; a file further from its
#: settle deadline goes back to the queue, due at that deadline (a long `settle`).
SETTLE_IN_PLACE = 5.0
#: A dead worker thread is replaced after this long, doubled for each further death (capped
#: at IDLE_WAIT), so a fault that kills every worker at once does not spin.
RESTART_DELAY = 0.1
#: A one-shot drain gives up (raises) after this many worker deaths; the daemon never does.
MAX_DEATHS = 10


@dataclass
class ActionResult:
    """How one action ended, as `reconcile --json` reports it."""

    name: str
    action: str
    status: str  # planned | done | failed
    error: str | None = None
    conflict: bool = False


@dataclass
class FolderReport:
    """The summary of one folder's pass."""

    name: str
    blocked: str | None = None
    warning: str | None = None
    unchanged: int = 0
    results: dict[str, ActionResult] = field(default_factory=dict)

    def count(self, action: str) -> int:
        return sum(1 for r in self.results.values() if r.action == action and r.status == "done")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results.values() if r.status == "failed") + (1 if self.blocked else 0)

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing was held back (deletions over `max_delete` need a human)."""
        return self.failed == 0 and self.warning is None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "blocked": self.blocked,
            "warning": self.warning,
            "uploaded": self.count("upload"),
            "downloaded": self.count("download"),
            "deleted_local": self.count("delete_local"),
            "deleted_remote": self.count("delete_remote"),
            "conflicts": self.count("conflict"),
            "failed": self.failed,
            "unchanged": self.unchanged,
            "actions": [
                {"name": r.name, "action": r.action, "status": r.status, "error": r.error}
                for r in sorted(self.results.values(), key=lambda r: r.name)
            ],
        }


def policy_of(folder: FolderConfig) -> FolderPolicy:
    return FolderPolicy(
        mode=Mode(folder.mode), delete=folder.delete, max_delete=folder.max_delete,
        conflict=ConflictPolicy(folder.conflict),
        additive=folder.mode == "upload" and folder.after_upload.action != "keep",
    )


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
        self.lease = lease
        self.renew_every = renew_every
        self.state = state
        self.queue = queue
        self.remotes = remotes
        self.clock = clock
        # One per remote; `open_app` shares them with the clients, whose retries they cut short.
        self.breakers = breakers if breakers is not None else Breakers(clock=clock)
        self.breakers.listen(self._breaker_changed)
        self.executors = self._executors(config, remotes)
        self.reports: dict[str, FolderReport] = {}
        self._lock = threading.Lock()
        self._work = threading.Condition()
        self._busy: dict[tuple[str, str], int] = {}
        self._active = frozenset(self.executors)
        self._conflicts: dict[str, int] = {}
        self._owners: set[str] = set()
        self._paused_remotes: dict[str, str] = {}  # refused us (401/403), why: no work claimed for them
        self._generation = 0  # bumped by every `notify_work` (under `_work`): no wake-up is lost

    def _executors(self, config: Config, remotes: Mapping[str, Remote]) -> dict[str, Executor]:
        """An executor per folder, its remote's transfers reported to the remote's breaker."""
        return {
            f.name: Executor(
                f, GuardedRemote(remotes[f.remote], self.breakers.get(f.remote)), self.state,
                settle=config.daemon.settle, clock=self.clock,
            )
            for f in config.folders
        }

    def reconfigure(self, config: Config, remotes: Mapping[str, Remote]) -> None:
        """Take a reloaded config: new executors for every folder. Running jobs finish with
        the executor they started with; lingering workers pick up the new folder set."""
        executors = self._executors(config, remotes)
        with self._lock:
            self.config, self.remotes, self.executors = config, remotes, executors
            self._active = frozenset(executors)

    # -- looking and planning -------------------------------------------------

    def check_folder(self, folder: FolderConfig) -> str | None:
        """Why the folder must be left alone, or None. A new folder gets its marker here."""
        fs = FolderFS(folder.path)
        tracked = self.state.journal_count(folder.name) > 0
        if not folder.path.is_dir():
            if tracked:
                return f"folder {folder.path} is missing (unmounted disk or wrong path?): paused"
            fs.create_marker()
        elif not fs.marker_present():
            if tracked:
                return f"folder marker {fs.marker} is missing (unmounted disk or wrong path?): paused"
            fs.create_marker()
        return None

    def plan_folder(
        self,
        folder: FolderConfig,
        report: FolderReport,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
    ) -> Plan:
        """Scan, list and plan one folder (no changes to it): every name, or just `names`.

        `remote` is a chat listing the caller just fetched (the poller), else one is fetched.
        """
        blocked = self.check_folder(folder)
        if blocked:
            return Plan(blocked=blocked)
        # The remote listing waits on the network while the journal is read and the disk
        # scanned: overlap them.
        with ThreadPoolExecutor(1, thread_name_prefix="syncd-list") as pool:
            remote_future = pool.submit(self.remote_listing, folder) if remote is None else None
            base = {name: to_base(row) for name, row in self.state.journal(folder.name).items()}
            listing = scan_folder(folder.path, folder.ignore, base, only=names)
            if remote_future is not None:
                remote = remote_future.result()
        assert remote is not None
        for name, error in listing.errors.items():  # unreadable: not "deleted", just not now
            base.pop(name, None)
            report.results[name] = ActionResult(name, "upload", "failed", error)
        for spelling, reason in listing.shadowed.items():  # SPEC, "Names": kept, reported, not synced
            report.results[spelling] = ActionResult(spelling, "upload", "failed", reason)
            log.warning("not synced", folder=folder.name, name=spelling, reason=reason)
        unreadable = set(listing.errors)
        if unreadable:
            remote = [f for f in remote if normalize(f.filename) not in unreadable]
        return plan(listing.files, remote, base, policy_of(folder), marker_present=True, only=names)

    def remote_listing(self, folder: FolderConfig) -> list[RemoteFile]:
        """The chat's files, less the names the folder ignores: those are never written locally,
        so a downloaded one would look deleted here on the next pass.

        The one place the remote's pause is decided from a listing: refused (401/403), it is
        paused; answered, whatever refused us before is over."""
        try:
            files = self.remotes[folder.remote].list_chat(folder.chat_id)
        except FatalError as exc:
            self.pause_remote(folder.remote, str(exc))
            raise
        self.pause_remote(folder.remote, None)
        return [f for f in files if not is_ignored(f.filename, folder.ignore)]

    def pass_folder(
        self,
        folder: FolderConfig,
        *,
        dry_run: bool = False,
        urgent: bool = False,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
        revive_failed: bool = True,
    ) -> FolderReport:
        """Plan a folder and (unless `dry_run`) queue its actions.

        `urgent` (a pass someone asked for) makes queued work due now, even work
        waiting out a backoff: the full disk may have been freed meanwhile.
        """
        report = FolderReport(folder.name)
        with self._lock:
            self.reports[folder.name] = report
        try:
            result = self.plan_folder(folder, report, names, remote)
        except (TransientError, FatalError, ItemError, OSError) as exc:
            report.blocked = str(exc)
            self.state.set_last_pass(folder.name, _now_iso(self.clock()), str(exc))
            return report
        report.blocked, report.warning, report.unchanged = result.blocked, result.warning, result.unchanged
        self.state.set_folder_paused(folder.name, result.blocked)
        if result.confirmed and not dry_run:
            self.state.confirm_floors(
                folder.name, [(name, f.id, f.upload_at.isoformat()) for name, f in result.confirmed]
            )
        if result.warning:
            log.warning("max_delete", folder=folder.name, message=result.warning)
        jobs = []
        for action in result.actions:
            reported = action.report_action
            if reported is not None:
                report.results[action.name] = ActionResult(
                    action.spelled, reported, "planned", action.reason if action.kind is ActionKind.FAIL else None
                )
            if not dry_run:
                jobs.append((folder.name, action.name, action.kind.value, jobcodec.dumps(action)))
        if not dry_run:
            self.queue.put_many(jobs, urgent=urgent, revive_failed=revive_failed)
            self.notify_work()
        return report

    def pause_remote(self, remote: str, reason: str | None) -> None:
        """Pause a remote that refused us (`reason`, shown in status; its folders' work waits,
        unclaimed), or lift the pause (None) once it answers again. (A remote that answers its
        listings may still be failing its transfers: that pause is its breaker's, not lifted here.)"""
        with self._lock:
            was = remote in self._paused_remotes
            if reason is None:
                self._paused_remotes.pop(remote, None)
            else:
                self._paused_remotes[remote] = reason
        self._publish_pause(remote)
        if reason is None and was:  # work refused meanwhile waits out no backoff
            self._wake_remote(remote)

    def _publish_pause(self, remote: str) -> None:
        """Write why `remote` gets no work (refused us, or failing: its breaker) where status reads it."""
        with self._lock:
            refused = self._paused_remotes.get(remote)
        reason = refused or self.breakers.get(remote).reason()
        if reason != self.state.remote_paused(remote):
            self.state.set_remote_paused(remote, reason)

    def _wake_remote(self, remote: str) -> None:
        """Make the work of `remote`'s folders due now and wake idle workers."""
        for name, executor in list(self.executors.items()):
            if executor.folder.remote == remote:
                self.queue.wake(name)
        self.notify_work()

    def _breaker_changed(self, breaker: Breaker) -> None:
        """A breaker opened (say so in status) or closed (that too, and the work waiting for
        its remote is due now)."""
        self._publish_pause(breaker.remote)
        if breaker.until is None:
            self._wake_remote(breaker.remote)

    def _claimable(self, folders: Collection[str]) -> list[str]:
        """The configured folders among `folders` whose work the calling worker may claim now:
        not those of a paused remote, nor of one whose breaker is open (unless this worker
        takes its probe: `_release_probes` hands back what it then does not use)."""
        with self._lock:
            executors, paused = self.executors, set(self._paused_remotes)
        admitted: dict[str, bool] = {}
        claimable = []
        for name in folders:
            executor = executors.get(name)
            if executor is None:
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

    # -- working --------------------------------------------------------------

    def drain(self, folders: Iterable[str], workers: int, stop: threading.Event | None = None) -> None:
        """Run queued work for `folders` until none is left that is due within the horizon."""
        names = set(folders)
        self.work(names, workers, stop or threading.Event(), linger=False)
        self._settle_leftovers(names)

    def work(self, folders: set[str] | None, workers: int, stop: threading.Event, *, linger: bool) -> None:
        """Run `workers` threads over the queue of `folders` until `stop`, or (unless `linger`)
        until no work is due within the horizon. Keeps the workers' leases alive meanwhile.
        `folders` None means the configured folders, as `reconfigure` changes them.

        A worker thread that dies (a fault outside any one job: the state database, a bug in
        the loop itself) is noticed here: the row it held goes back to pending at once and
        another worker takes its place (after RESTART_DELAY, doubling while deaths go on)."""
        exits: queue_module.SimpleQueue[tuple[str, BaseException | None]] = queue_module.SimpleQueue()
        live: dict[str, threading.Thread] = {}
        serial = itertools.count()

        def start() -> None:
            owner = f"worker-{next(serial)}-{os.getpid()}-{id(self)}-{id(stop)}"
            with self._lock:
                self._owners.add(owner)
            thread = threading.Thread(
                target=self._worker_thread, args=(owner, folders, stop, linger, exits), name=owner, daemon=True
            )
            live[owner] = thread
            thread.start()

        for _ in range(max(1, workers)):
            start()
        deaths, fatal = 0, None
        restarts: list[float] = []  # monotonic times at which to start a replacement
        next_renew = time.monotonic() + self.renew_every
        try:
            while live or restarts:
                wake = min([next_renew, *restarts])
                if restarts:  # a pending restart must still see `stop` soon
                    wake = min(wake, time.monotonic() + 1.0)
                try:
                    owner, error = exits.get(timeout=max(0.0, wake - time.monotonic()))
                except queue_module.Empty:
                    pass
                else:
                    live.pop(owner).join()
                    with self._lock:
                        self._owners.discard(owner)
                    if error is not None:
                        deaths += 1
                        self._buried(owner, error)
                        if not linger and deaths > MAX_DEATHS:
                            fatal = error  # a one-shot run does not retry a broken machine forever
                        elif not stop.is_set():
                            delay = min(IDLE_WAIT, RESTART_DELAY * 2 ** min(deaths - 1, 16))
                            restarts.append(time.monotonic() + delay)
                now = time.monotonic()
                if stop.is_set():
                    restarts.clear()
                for when in [t for t in restarts if t <= now]:
                    restarts.remove(when)
                    start()
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
        exits: queue_module.SimpleQueue[tuple[str, BaseException | None]],
    ) -> None:
        """A worker's whole life; how it ended (None, or what killed it) goes to `exits`."""
        error: BaseException | None = None
        try:
            self._worker(owner, only, stop, linger)
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
        """Extend the leases of the rows this engine's workers hold."""
        with self._lock:
            owners = list(self._owners)
        return self.queue.renew_owned(owners, lease=self.lease)

    def notify_work(self) -> None:
        """Wake idle workers: new work was queued, or work became due sooner."""
        with self._work:
            self._generation += 1
            self._work.notify_all()

    def _worker(self, owner: str, only: set[str] | None, stop: threading.Event, linger: bool) -> None:
        while not stop.is_set():
            with self._work:
                seen = self._generation
            candidates = self._active if only is None else only
            folders = self._claimable(candidates)
            jobs = self.queue.claim(owner, limit=1, lease=self.lease, folders=folders)
            self._release_probes(jobs[0] if jobs else None)
            if jobs:
                self._run(jobs[0], stop)
                continue
            now = self.clock()
            due = self.queue.next_due(folders)
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

    def stop_workers(self, stop: threading.Event) -> None:
        """Set `stop` and wake every idle worker so it sees it."""
        stop.set()
        self.notify_work()

    def busy(self, folder: str, name: str) -> bool:
        """True while a worker may be writing `name` in `folder` (the name itself, or a
        conflicted copy while a conflict is resolved): the daemon's watcher waits for it."""
        with self._lock:
            if (folder, name) in self._busy:
                return True
            return self._conflicts.get(folder, 0) > 0 and CONFLICT_MARK in name

    def _run(self, job: Job, stop: threading.Event) -> None:
        """Run one claimed job and settle its row, whatever happens: a job never kills its worker.

        A payload that cannot be read fails its row with the reason (the next pass plans the
        name again); a folder that left the config between claim and run keeps its row, pending,
        for when it returns; any other exception fails the row for a later retry."""
        try:
            action = jobcodec.loads(job.payload)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the row is unreadable
            self._unreadable(job, exc)
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
            self._run_job(job, action, executor, stop)
        except Exception as exc:  # noqa: BLE001 - settling the row failed: one more try, then the worker's
            self._crashed(job, action, exc)
        finally:
            with self._lock:
                self._busy[key] -= 1
                if not self._busy[key]:
                    del self._busy[key]
                if conflict:
                    self._conflicts[job.folder] -= 1
            self.breakers.get(executor.folder.remote).release()  # a probe that made no transfer
            self.notify_work()  # its row may be due again, or the last one: idle workers look

    def _unreadable(self, job: Job, exc: Exception) -> None:
        message = (
            f"{job.name}: the queued work cannot be read ({type(exc).__name__}: {exc}); "
            "the next pass plans this file again"
        )
        log.error("unreadable job", folder=job.folder, name=job.name, kind=job.kind, error=message)
        self.queue.fail(job, message, permanent=True)
        with self._lock:
            report = self.reports.get(job.folder)
            if report is not None:
                report.results[job.name] = ActionResult(job.name, reported_kind(job.kind), "failed", message)

    def _crashed(self, job: Job, action: Action, exc: Exception) -> None:
        """Something failed outside the action itself (the state database, a bug): fail the row
        for a later retry. If even that fails, the worker dies and `work` takes over."""
        log.error("internal error", folder=job.folder, name=action.name, exc_info=exc)
        message = f"{action.name}: internal error: {type(exc).__name__}: {exc}"
        self.queue.fail(job, message)
        self._result(job.folder, action, "failed", message)

    def _run_job(self, job: Job, action: Action, executor: Executor, stop: threading.Event) -> None:
        started = time.monotonic()
        try:
            # A row claimed before (claims > 1) may have been cut short by a crash after its
            # upload reached the remote: that counts as an earlier attempt (SPEC, "No duplicates").
            resumable = executor.resumable(job.resume, partial(self.queue.set_resume, job))  # SPEC, "Resumable uploads"
            with executor.deferred_journal() as journal, resumable:
                done = self._execute(executor, action, max(job.attempts, job.claims - 1), stop)
        except LocalChanged:
            if job.claims > MAX_REPLANS:
                self._result(job.folder, action, "failed", f"{action.name}: kept changing while being synced")
                self.queue.done(job)
                return
            try:
                replan = self._replan(job, action, executor)
            except Exception as exc:  # noqa: BLE001 - handled below like the action's own failure
                self._failed(job, action, executor, exc)
                return
            if replan is None:
                self._forget_result(job.folder, action.name)  # nothing left to do for the name
            else:
                self.queue.put(job.folder, replan.name, replan.kind.value, jobcodec.dumps(replan))
            self.queue.done(job)
            return
        except Exception as exc:  # noqa: BLE001
            self._failed(job, action, executor, exc)
            return
        self.queue.done(job, also=journal.apply)
        # Journal-only actions (record, forget) move nothing: not a transfer worth a line.
        emit = log.debug if action.kind in (ActionKind.RECORD, ActionKind.FORGET) else log.info
        emit(
            "transfer", folder=job.folder, name=action.name, action=action.kind.value, bytes=done.bytes,
            seconds=round(time.monotonic() - started, 3), outcome="done",
        )
        if done.unchanged and action.kind is ActionKind.COMPARE:
            with self._lock:
                report = self.reports.get(job.folder)
                if report is not None:
                    report.results.pop(action.name, None)
                    report.unchanged += 1
            return
        self._result(job.folder, action, "done", None)

    @staticmethod
    def _execute(executor: Executor, action: Action, attempts: int, stop: threading.Event) -> Done:
        """Run the action; a file not settled yet is waited for once, right here.

        The file's settle deadline is known (its last change + `settle`), so the worker sleeps
        until then and looks once more, instead of putting the row back and polling for it. Only
        a file that changed again meanwhile (a slow writer), or one whose deadline is more than
        SETTLE_IN_PLACE away, goes back to the queue (due at its deadline: `_failed`)."""
        try:
            return executor.run(action, attempts=attempts)
        except NotSettled as exc:
            wait = min(exc.retry_after if exc.retry_after is not None else executor.settle, executor.settle)
            if wait > SETTLE_IN_PLACE or stop.wait(max(0.0, wait)):
                raise
        return executor.run(action, attempts=attempts)

    def _failed(self, job: Job, action: Action, executor: Executor, exc: Exception) -> None:
        """Record a failed attempt as its kind of failure asks (SPEC, "Retries")."""
        message = str(exc)
        if isinstance(exc, NotSettled):
            self.queue.fail(job, message, retry_after=exc.retry_after)
            return
        if isinstance(exc, FolderUnavailable):
            # The disk went away mid-run: pause the folder (the next pass checks again), keep the job.
            self.state.set_folder_paused(job.folder, message)
            self.queue.fail(job, message)
        elif isinstance(exc, FatalError):
            self.pause_remote(executor.folder.remote, message)
            self.queue.fail(job, message)
        elif isinstance(exc, ItemError):
            self.queue.fail(job, message, permanent=True)
        elif isinstance(exc, TransientError):
            until = self.breakers.get(executor.folder.remote).until
            if until is not None:
                # Its remote is failing every transfer (the breaker is open): not this item's
                # fault, so no attempt is counted; it waits for the remote's next probe.
                self.queue.postpone(job, message, until=until)
            else:
                self.queue.fail(job, message, retry_after=exc.retry_after)
        elif isinstance(exc, OSError):
            message = f"{action.name}: {exc.strerror or exc}"
            self.queue.fail(job, message)
        else:  # a bug: keep the row (retried later) and the worker alive
            log.error("internal error", folder=job.folder, name=action.name, exc_info=exc)
            message = f"{action.name}: internal error: {type(exc).__name__}: {exc}"
            self.queue.fail(job, message)
        self._result(job.folder, action, "failed", message)

    def _forget_result(self, folder: str, name: str) -> None:
        with self._lock:
            report = self.reports.get(folder)
            if report is not None:
                report.results.pop(name, None)

    def _replan(self, job: Job, action: Action, executor: Executor) -> Action | None:
        """The folder changed under an action: plan that one name again (never from an empty
        mount point: a file that vanished with its disk is not a deletion)."""
        executor.fs.require_marker()
        folder = self.config.folder(job.folder)
        base = {n: to_base(r) for n, r in self.state.journal(folder.name).items() if n == action.name}
        listing = scan_folder(folder.path, folder.ignore, base)
        local = {n: f for n, f in listing.files.items() if n == action.name}
        remote = [f for f in self.remote_listing(folder) if normalize(f.filename) == action.name]
        fresh = plan(local, remote, base, policy_of(folder))
        return fresh.actions[0] if fresh.actions else None

    def _result(self, folder: str, action: Action, status: str, error: str | None) -> None:
        reported = action.report_action
        if reported is None:
            if status != "failed":
                return
            reported = "upload" if action.local else "download"
        with self._lock:
            report = self.reports.get(folder)
            if report is not None:
                report.results[action.name] = ActionResult(action.spelled, reported, status, error)
        if status == "failed":
            log.warning("transfer", folder=folder, name=action.name, action=reported, outcome="failed", error=error)

    def _settle_leftovers(self, folders: set[str]) -> None:
        """Work still queued after draining is reported with the reason it is waiting."""
        for folder in folders:
            report = self.reports.get(folder)
            if report is None:
                continue
            remote = self.executors[folder].folder.remote if folder in self.executors else None
            paused = self.state.remote_paused(remote) if remote is not None else None
            breaker = self.breakers.get(remote) if remote is not None else None
            failing = breaker.reason() if breaker is not None else None
            waiting = f"remote paused: {paused}" if paused else "not done yet"
            for job in self.queue.jobs(folder):
                error = job.last_error or waiting
                if breaker is not None and failing and job.state is JobState.PENDING:  # held back with its remote
                    error = f"{job.last_error}; {breaker.reason(last_error=False)}" if job.last_error else failing
                result = report.results.get(job.name)
                if result is not None and result.status in ("planned", "failed"):
                    if job.state is JobState.PENDING:
                        error += " (will retry)"
                    report.results[job.name] = ActionResult(result.name, result.action, "failed", error)
                elif result is None and (reported := _reported(job)):
                    report.results[job.name] = ActionResult(reported[0], reported[1], "failed", error)
            self.state.set_last_pass(
                folder, _now_iso(self.clock()),
                report.blocked or next((r.error for r in report.results.values() if r.status == "failed"), None),
            )


def _reported(job: Job) -> tuple[str, str] | None:
    """(name as spelled on disk, `action`) a queued row shows as in `reconcile --json` (None: not
    reported)."""
    try:
        action = jobcodec.loads(job.payload)
    except Exception:  # noqa: BLE001 - unreadable: `_unreadable` reported it as failed already
        return job.name, reported_kind(job.kind)
    return (action.spelled, action.report_action) if action.report_action else None


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
