"""Running one claimed job and settling its queue row: done, retried later, or failed.

What a job run guarantees (the worker pool in `sync/workers.py` claims the rows and holds
their leases):

* **Journal writes are applied in one place, here.** The executor returns them as an
  `Outcome`; on success they are applied in the same transaction as the row's `done`
  (`Queue.done(job, also=outcome.apply)`), so the journal and the queue never disagree about
  whether the work happened. On failure they are committed at once, on their own, before the
  failure is recorded or the name replanned: what half-happened stays recorded (a conflicted
  copy moved aside and uploaded is journaled even if the download after it failed).
* **The resume token is the one write made during the action**: an upload hands each new
  token to `Queue.set_resume` at once (SPEC, "Resumable uploads"); `done` clears it.
* **A row claimed before counts as an earlier attempt** (claims > 1: a crash may have cut it
  short after its upload reached the remote; SPEC, "No duplicates").
* **Every failure settles the row** as its class asks (SPEC, "Retries"), local causes first:
  not settled (due at its deadline), the folder gone (paused, kept), the remote refusing us
  (paused, kept), the item refused (failed), transient (backoff, or postponed with no attempt
  counted while its remote's breaker is open), anything else (kept, retried later).
* **A name that keeps changing under its action** is replanned at most MAX_REPLANS times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import structlog

from syncd.core.model import Action, ActionKind, reported_kind
from syncd.errors import (
    FatalError,
    FolderUnavailable,
    ItemError,
    LocalChanged,
    NotSettled,
    PlaceGone,
    TransientError,
)
from syncd.local.folderfs import FolderFS
from syncd.remote.breaker import Breakers
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.queue import Job, Queue
from syncd.sync.execute import Executor
from syncd.sync.lanes import transfer_size
from syncd.sync.outcome import Outcome, Resume
from syncd.sync.pauses import RemotePauses
from syncd.sync.report import ActionResult, Reports, action_result

#: How long the work of a folder whose remote place is gone waits before it is tried again (a
#: pass that finds the place back plans the folder again at once).
PLACE_GONE_WAIT = 300.0

log = structlog.get_logger("syncd.sync.jobs")

MAX_REPLANS = 5
#: The longest a worker waits in place for a claimed file to settle; a file further from its
#: settle deadline goes back to the queue, due at that deadline (a long `settle`).
SETTLE_IN_PLACE = 5.0

#: Plans one name of a folder again after its action found the folder changed (`Passes.replan`).
Replan = Callable[[str, str, FolderFS], Action | None]


class JobRunner:
    """Runs claimed jobs through their folder's executor and settles their rows."""

    def __init__(
        self,
        state: State,
        queue: Queue,
        *,
        breakers: Breakers,
        pauses: RemotePauses,
        reports: Reports,
        replan: Replan,
    ) -> None:
        self.state = state
        self.queue = queue
        self.breakers = breakers
        self.pauses = pauses
        self.reports = reports
        self._replan = replan

    def unreadable(self, job: Job, exc: Exception) -> None:
        message = (
            f"{job.name}: the queued work cannot be read ({type(exc).__name__}: {exc}); "
            "the next pass plans this file again"
        )
        log.error("unreadable job", folder=job.folder, name=job.name, kind=job.kind, error=message)
        self.queue.fail(job, message, permanent=True)
        self.reports.set(job.folder, job.name, ActionResult(job.name, reported_kind(job.kind), "failed", message))

    def crashed(self, job: Job, action: Action, exc: Exception) -> None:
        """Something failed outside the action itself (the state database, a bug): fail the row
        for a later retry. If even that fails, the worker dies and `work` takes over."""
        log.error("internal error", folder=job.folder, name=action.name, exc_info=exc)
        message = f"{action.name}: internal error: {type(exc).__name__}: {exc}"
        self.queue.fail(job, message)
        self._result(job.folder, action, "failed", message)

    def run(self, job: Job, action: Action, executor: Executor, stop: threading.Event) -> None:
        started = time.monotonic()
        # A row claimed before (claims > 1) may have been cut short by a crash after its
        # upload reached the remote: that counts as an earlier attempt (SPEC, "No duplicates").
        attempts = max(job.attempts, job.claims - 1)
        resume = Resume(job.resume, partial(self.queue.set_resume, job))  # SPEC, "Resumable uploads"
        outcome = self._execute(executor, action, attempts, resume, stop)
        if outcome.error is not None:
            outcome.commit(self.state)  # what half-happened stays recorded, whatever comes next
            if not isinstance(outcome.error, Exception):
                raise outcome.error  # not a failure of the action: the thread is going down
            self._ended_early(job, action, executor, outcome.error)
            return
        self.queue.done(job, also=outcome.apply)  # the journal writes and the row's end: one commit
        # Journal-only actions (record, forget) move nothing: not a transfer worth a line.
        emit = log.debug if action.kind in (ActionKind.RECORD, ActionKind.FORGET) else log.info
        emit(
            "transfer", folder=job.folder, name=action.name, action=action.kind.value, bytes=outcome.bytes,
            seconds=round(time.monotonic() - started, 3), outcome="done",
        )
        if outcome.unchanged and action.kind is ActionKind.COMPARE:
            self.reports.unchanged(job.folder, action.name)
            return
        self._result(job.folder, action, "done", None)

    def _ended_early(self, job: Job, action: Action, executor: Executor, error: Exception) -> None:
        """The action stopped short: plan the name again if the folder changed under it,
        else record the failure."""
        if not isinstance(error, LocalChanged):
            self._failed(job, action, executor, error)
            return
        if job.claims > MAX_REPLANS:
            self._result(job.folder, action, "failed", f"{action.name}: kept changing while being synced")
            self.queue.done(job)
            return
        try:
            replan = self._replan(job.folder, action.name, executor.fs)
        except Exception as exc:  # noqa: BLE001 - handled below like the action's own failure
            self._failed(job, action, executor, exc)
            return
        if replan is None:
            self.reports.forget(job.folder, action.name)  # nothing left to do for the name
        else:
            self.queue.put(job.folder, replan.name, replan.kind.value, jobcodec.dumps(replan), transfer_size(replan))
        self.queue.done(job)

    @staticmethod
    def _execute(
        executor: Executor, action: Action, attempts: int, resume: Resume, stop: threading.Event
    ) -> Outcome:
        """Run the action; a file not settled yet is waited for once, right here.

        The file's settle deadline is known (its last change + `settle`), so the worker sleeps
        until then and looks once more, instead of putting the row back and polling for it. Only
        a file that changed again meanwhile (a slow writer), or one whose deadline is more than
        SETTLE_IN_PLACE away, goes back to the queue (due at its deadline: `_failed`). The
        outcome holds the journal writes of both tries, in order."""
        first = executor.execute(action, attempts=attempts, resume=resume)
        if not isinstance(first.error, NotSettled):
            return first
        retry_after = first.error.retry_after
        wait = min(retry_after if retry_after is not None else executor.settle, executor.settle)
        if wait > SETTLE_IN_PLACE or stop.wait(max(0.0, wait)):
            return first
        return first.then(executor.execute(action, attempts=attempts, resume=resume))

    def _failed(self, job: Job, action: Action, executor: Executor, exc: Exception) -> None:
        """Record a failed attempt as its kind of failure asks (SPEC, "Retries"); local causes
        are looked at first: they say nothing about the remote."""
        message = str(exc)
        if isinstance(exc, NotSettled):
            self.queue.fail(job, message, retry_after=exc.retry_after)
            return
        if isinstance(exc, PlaceGone):
            # The folder's place on the remote went away (a sandbox that expired): pause the folder
            # and keep the job, without counting an attempt, for the pass that finds it back.
            self.state.set_folder_paused(job.folder, message)
            self.queue.postpone(job, message, until=self.queue.clock() + PLACE_GONE_WAIT)
        elif isinstance(exc, FolderUnavailable):
            # The disk went away mid-run: pause the folder (the next pass checks again), keep the job.
            self.state.set_folder_paused(job.folder, message)
            self.queue.fail(job, message)
        elif isinstance(exc, FatalError):  # AuthExpired too: its message says to log in again
            self.pauses.pause(executor.folder.remote, message)
            self.queue.fail(job, message)
        elif isinstance(exc, ItemError):
            self.queue.fail(job, message, permanent=True)
        elif isinstance(exc, TransientError):  # FileShrank too (a local cause met mid-transfer)
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

    def _result(self, folder: str, action: Action, status: str, error: str | None) -> None:
        result = action_result(action, status, error)
        if result is None:
            return
        self.reports.set(folder, action.name, result)
        if status == "failed":
            log.warning(
                "transfer", folder=folder, name=action.name, action=result.action, outcome="failed", error=error
            )
