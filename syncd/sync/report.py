"""What a pass and its workers report, as values the CLI formats (`cli/output.py` prints them;
nothing in `sync/` prints).

A pass starts its folder's `FolderReport` on the shared `Reports` board; the workers then
update the result of each name as its job ends. Invariants:

* one report per folder: the latest pass's (a new pass of the folder replaces it);
* one result per name, the latest word on it: planned, then done or failed;
* every method takes the board's lock, so a worker's update and a reader's look never see
  half a change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syncd.core.model import Action, reported_kind
from syncd.state import jobcodec
from syncd.state.queue import Job, JobState


@dataclass
class ActionResult:
    """How one action ended, as `reconcile --json` reports it."""

    name: str
    action: str
    status: str  # planned | done | failed
    error: str | None = None
    conflict: bool = False
    renamed_from: str | None = None  # a local rename: reported as the upload of the new name


    def as_json(self) -> dict[str, object]:
        """One entry of `actions` in `reconcile --json`; a rename is an upload that also names
        the old path (`renamed_from`)."""
        doc: dict[str, object] = {"name": self.name, "action": self.action, "status": self.status, "error": self.error}
        if self.renamed_from is not None:
            doc["renamed_from"] = self.renamed_from
        return doc


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

    @property
    def first_error(self) -> str | None:
        """What `status` shows as the folder's last error after this pass (None: all well)."""
        return self.blocked or next((r.error for r in self.results.values() if r.status == "failed"), None)

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
            "actions": [r.as_json() for r in sorted(self.results.values(), key=lambda r: r.name)],
        }


def action_result(action: Action, status: str, error: str | None) -> ActionResult | None:
    """The result an action's end shows as, or None (not reported: journal-only work that
    went through). A failure is always reported, as the transfer it was about."""
    reported = action.report_action
    if reported is None:
        if status != "failed":
            return None
        reported = "upload" if action.local else "download"
    return ActionResult(action.spelled, reported, status, error, renamed_from=action.renamed_spelled)


def reported(job: Job) -> tuple[str, str] | None:
    """(name as spelled on disk, `action`) a queued row shows as in `reconcile --json` (None: not
    reported)."""
    try:
        action = jobcodec.loads(job.payload)
    except Exception:  # noqa: BLE001 - unreadable: the worker reported it as failed already
        return job.name, reported_kind(job.kind)
    return (action.spelled, action.report_action) if action.report_action else None


def add_leftovers(
    report: FolderReport, jobs: Iterable[Job], *, waiting: str, failing: str | None, held_back: str | None
) -> None:
    """Report the work still queued after a drain as failed, with the reason it waits.

    `waiting`: the reason of a row with no error of its own; `failing`: why its remote's
    breaker holds its pending rows back (None: it does not), `held_back` the same without the
    breaker's last error, to follow a row's own."""
    for job in jobs:
        error = job.last_error or waiting
        if failing and job.state is JobState.PENDING:  # held back with its remote
            error = f"{job.last_error}; {held_back}" if job.last_error else failing
        result = report.results.get(job.name)
        if result is not None and result.status in ("planned", "failed"):
            if job.state is JobState.PENDING:
                error += " (will retry)"
            report.results[job.name] = ActionResult(
                result.name, result.action, "failed", error, renamed_from=result.renamed_from
            )
        elif result is None and (shown := reported(job)):
            report.results[job.name] = ActionResult(shown[0], shown[1], "failed", error)


class Reports:
    """The latest report of each folder, shared by passes and workers (see the module docstring).

    A listener (`listen`) hears every change to a result as it is made, after the board's lock
    is let go: the daemon streams them as events, and a `reconcile` handed to the daemon keeps
    its own pass's results even when a later pass replaces the folder's report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_folder: dict[str, FolderReport] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def start(self, folder: str) -> FolderReport:
        """A new, empty report for a pass of `folder`, replacing the last one."""
        report = FolderReport(folder)
        with self._lock:
            self.by_folder[folder] = report
        return report

    def get(self, folder: str) -> FolderReport | None:
        with self._lock:
            return self.by_folder.get(folder)

    def set(self, folder: str, name: str, result: ActionResult) -> None:
        with self._lock:
            report = self.by_folder.get(folder)
            if report is not None:
                report.results[name] = result
            listeners = list(self._listeners)
        for listener in listeners:
            listener(Change(folder, name, result, report))

    def forget(self, folder: str, name: str) -> None:
        """Nothing is left to do for `name`: it drops out of the report."""
        with self._lock:
            report = self.by_folder.get(folder)
            if report is not None:
                report.results.pop(name, None)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(Change(folder, name, None, report))

    def unchanged(self, folder: str, name: str) -> None:
        """`name` turned out to need nothing (equal content): counted as unchanged instead."""
        with self._lock:
            report = self.by_folder.get(folder)
            if report is not None:
                report.results.pop(name, None)
                report.unchanged += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(Change(folder, name, None, report, unchanged=True))


@dataclass(frozen=True)
class Change:
    """One change to a folder's results: `result` None drops `name` (counted as `unchanged`,
    or not at all); `applied_to` is the report the board changed (None: the folder had none)."""

    folder: str
    name: str
    result: ActionResult | None
    applied_to: FolderReport | None
    unchanged: bool = False

    def apply(self, report: FolderReport) -> None:
        """Make the same change to `report` (a copy the board no longer holds)."""
        if report is self.applied_to:
            return
        if self.result is not None:
            report.results[self.name] = self.result
        elif self.name in report.results:
            report.results.pop(self.name)
            if self.unchanged:
                report.unchanged += 1


Listener = Callable[[Change], None]
