"""The queue's rows as values, and every read of them (`QueueReads`, which `Queue` extends with
the transitions). Reads take no lock of their own beyond the state's: each is one query.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from syncd.state.db import State


class JobState(StrEnum):
    """Where a job is in its life (see the module docstring)."""

    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one queue row. `payload` is the caller's opaque JSON text."""

    id: int
    folder: str
    name: str
    kind: str
    payload: str
    state: JobState
    attempts: int
    next_try: float
    lease_owner: str | None
    lease_until: float | None
    claims: int
    dirty: bool
    last_error: str | None
    created: float
    updated: float
    resume: str | None = None  # what a half-done transfer of this work needs to resume (JSON)
    size: int | None = None  # the bytes the work may move (`sync/lanes.py`); None: unknown, large


# Column list = Job's fields, in order: the two cannot drift apart.
_FIELDS = tuple(field.name for field in fields(Job))
JOB_COLUMNS = ", ".join(_FIELDS)


def job_of(values: tuple[Any, ...]) -> Job:
    row = dict(zip(_FIELDS, values, strict=True))
    row["state"] = JobState(row["state"])
    row["dirty"] = bool(row["dirty"])
    return Job(**row)


# One statement decides a put from the old row (in an UPDATE, every right-hand
# side sees the row as it was before the statement):
#   no row   -> pending, due now
#   pending  -> same work: unchanged (keeps its backoff);
#               new work: replaced, attempts 0, due now
#   running  -> new work stored, dirty = 1 (the worker finishes the old work)
#   failed   -> pending with the work, attempts 0, due now — unless the work is
#               unchanged and :revive is 0, then it stays failed
# In every case kind/payload end up equal to the new ones; new work drops the
# old work's resume token.
class QueueReads:
    """What can be read of the queue: rows and counts (by folder, by state)."""

    state: State

    def get(self, folder: str, name: str) -> Job | None:
        """The row of one file, or None."""
        rows = self.state.fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE folder = ? AND name = ?", (folder, name)
        )
        return job_of(rows[0]) if rows else None

    def jobs(self, folder: str | None = None) -> list[Job]:
        """Every row (of `folder`, or all), by folder and name."""
        where, params = self._folder_filter(folder)
        rows = self.state.fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE 1{where} ORDER BY folder, name", params
        )
        return [job_of(row) for row in rows]

    def counts(self, folder: str) -> dict[JobState, int]:
        """Rows of `folder` per state (every state present, zeros included)."""
        return self.counts_by_folder(folder).get(folder, {state: 0 for state in JobState})

    def counts_by_folder(self, folder: str | None = None) -> dict[str, dict[JobState, int]]:
        """Rows per state for every folder that has any (or just `folder`)."""
        where, params = self._folder_filter(folder)
        rows = self.state.fetchall(
            f"SELECT folder, state, count(*) FROM jobs WHERE 1{where} GROUP BY folder, state", params
        )
        result: dict[str, dict[JobState, int]] = {}
        for name, state, count in rows:
            result.setdefault(name, {s: 0 for s in JobState})[JobState(state)] = count
        return result

    def failed(self, folder: str | None = None) -> list[Job]:
        """Failed rows (of `folder`, or all), by folder and name."""
        where, params = self._folder_filter(folder)
        rows = self.state.fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'failed'{where} ORDER BY folder, name", params
        )
        return [job_of(row) for row in rows]

    def pending_count(self, folder: str | None = None) -> int:
        """Pending rows (due or not), of `folder` or all."""
        where, params = self._folder_filter(folder)
        return int(
            self.state.fetchall(f"SELECT count(*) FROM jobs WHERE state = 'pending'{where}", params)[0][0]
        )

    def outstanding(self, folder: str | None = None) -> int:
        """Pending plus running rows: work not yet finished (failed rows are finished)."""
        where, params = self._folder_filter(folder)
        return int(
            self.state.fetchall(
                f"SELECT count(*) FROM jobs WHERE state IN ('pending', 'running'){where}", params
            )[0][0]
        )

    def next_due(self, folders: Collection[str] | None = None, smaller_than: int | None = None) -> float | None:
        """When `claim` (of `folders` only, if given, and jobs `smaller_than` so many bytes) could
        next return something: the earliest pending `next_try` or running lease expiry; None when
        neither exists (wait for a `put`)."""
        only, params = "", tuple(folders or ())
        if folders is not None:
            only = f" AND folder IN ({', '.join('?' * len(params))})"
        if smaller_than is not None:
            only += f" AND size < {int(smaller_than)}"
        row = self.state.fetchall(
            "SELECT min(t) FROM ("
            f" SELECT min(next_try) AS t FROM jobs WHERE state = 'pending'{only}"
            f" UNION ALL SELECT min(lease_until) FROM jobs WHERE state = 'running'{only})",
            params * 2,
        )[0]
        return float(row[0]) if row[0] is not None else None

    @staticmethod
    def _folder_filter(folder: str | None) -> tuple[str, tuple[str, ...]]:
        return ("", ()) if folder is None else (" AND folder = ?", (folder,))

    # -- read-only views for a progress display (`cli/progress.py`) -------------------------
    # Each is one read; none takes a write lock. A display samples them a few times a second
    # from a connection of its own, next to the workers' writes.

    def newest_id(self) -> int:
        """The highest row id so far (0: none). Ids only grow: a row put later has a higher one."""
        return int(self.state.fetchall("SELECT coalesce(max(id), 0) FROM jobs")[0][0])

    def outstanding_size(self, folders: Collection[str], *, newer_than: int = 0) -> tuple[int, int]:
        """(rows, bytes) of the pending and running work of `folders` (with an id above
        `newer_than`, if given); bytes count the known sizes only."""
        marks = ", ".join("?" * len(folders))
        row = self.state.fetchall(
            "SELECT count(*), coalesce(sum(size), 0) FROM jobs "
            f"WHERE state IN ('pending', 'running') AND folder IN ({marks}) AND id > ?",
            (*folders, newer_than),
        )[0]
        return int(row[0]), int(row[1])

    def failed_size(self, folders: Collection[str], *, since: float) -> tuple[int, int]:
        """(rows, bytes) of `folders`' rows that failed for good at `since` or later."""
        marks = ", ".join("?" * len(folders))
        row = self.state.fetchall(
            "SELECT count(*), coalesce(sum(size), 0) FROM jobs "
            f"WHERE state = 'failed' AND folder IN ({marks}) AND updated >= ?",
            (*folders, since),
        )[0]
        return int(row[0]), int(row[1])

