"""The persistent work queue: one row per (folder, name) in the state database.

Every piece of work is a row before it starts (SPEC, "Persistence"), so a
process killed at any moment finds its work again on restart (`Queue.resume`).

A row's life::

    put ──> pending ──claim──> running ──done──> (row deleted)
              ^  ^                │ │
              │  └─fail (retry),──┘ └──fail (permanent, or attempts
              │    done (dirty),           exhausted)──> failed
              │    postpone(),                              │
              │    resume(), release_owned()                │
              └────────────── retry() / put ────────────────┘

A running row whose lease expired is due again: the next `claim` takes it
over (its worker died or hung).

Invariants:

* At most one row per (folder, name): repeated triggers coalesce (UNIQUE).
* The row's (kind, payload) is always the *latest* work asked for that file.
  While a row is running, a `put` replaces them and sets `dirty`; the worker
  keeps the copy it claimed. `done`/`fail` on a dirty row put it back to
  pending (with the newer work) instead of deleting or failing it, so work
  that arrives mid-flight is never lost.
* A running row belongs to the lease it was claimed with: its owner and the
  row's claim counter, bumped by every claim. `done`/`fail` with any other
  lease (it expired and the row was claimed again) change nothing and return
  False.
* `attempts` counts failures of the current work; `last_error` is the most
  recent failure message for the file and is only cleared by success.
* `resume` is what a half-done transfer of the row's *current* work needs to
  go on where it stopped (the remote's JSON token, e.g. a multipart upload's
  id). A worker records it at once with `set_resume` while it holds the lease
  and the row still carries the work it claimed; it survives `fail` (retries)
  and `resume()` (restarts) and comes back in `Job.resume` at the next claim.
  A `put` of different work clears it (whatever the row's state), and so does
  `done` (the work is finished, even when newer work makes the row pending).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from syncd.state.db import State
from syncd.state.queue_rows import JOB_COLUMNS, QueueReads, job_of
from syncd.state.queue_rows import Job as Job
from syncd.state.queue_rows import JobState as JobState

_MAX_EXPONENT = 64  # 2**64 * any sane base is far beyond max_backoff; avoids float overflow


_PUT_SQL = """
    INSERT INTO jobs (folder, name, kind, payload, state, attempts, next_try, dirty, created, updated, size)
    VALUES (:folder, :name, :kind, :payload, 'pending', 0, :now, 0, :now, :now, :size)
    ON CONFLICT (folder, name) DO UPDATE SET
        state = CASE
            WHEN state = 'failed' AND (:revive OR kind != excluded.kind OR payload != excluded.payload)
                THEN 'pending'
            ELSE state END,
        attempts = CASE
            WHEN state = 'pending' AND (kind != excluded.kind OR payload != excluded.payload) THEN 0
            WHEN state = 'failed' AND (:revive OR kind != excluded.kind OR payload != excluded.payload)
                THEN 0
            ELSE attempts END,
        next_try = CASE
            WHEN state = 'pending' AND (:urgent OR kind != excluded.kind OR payload != excluded.payload)
                THEN min(next_try, :now)
            WHEN state = 'failed' AND (:revive OR kind != excluded.kind OR payload != excluded.payload)
                THEN :now
            ELSE next_try END,
        dirty = CASE WHEN state = 'running' THEN 1 ELSE dirty END,
        resume = CASE WHEN kind != excluded.kind OR payload != excluded.payload THEN NULL ELSE resume END,
        kind = excluded.kind,
        payload = excluded.payload,
        size = excluded.size,
        updated = :now
"""

_LEASE_MATCH = "id = ? AND state = 'running' AND lease_owner = ? AND claims = ?"


class Queue(QueueReads):
    """Durable, coalescing work queue over a `State` (thread- and process-safe).

    `clock` is wall-clock seconds (next-try times survive restarts); `rng`
    draws the backoff jitter. Both are injectable for tests.
    """

    def __init__(
        self,
        state: State,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_backoff: float = 3600,
        base_backoff: float = 2.0,
        max_attempts: int = 10,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.state = state
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.max_backoff = float(max_backoff)
        self.base_backoff = float(base_backoff)
        self.max_attempts = max_attempts

    # -- adding work -----------------------------------------------------------

    def put(
        self,
        folder: str,
        name: str,
        kind: str,
        payload: str,
        size: int | None = None,
        *,
        revive_failed: bool = True,
        urgent: bool = False,
    ) -> Job:
        """Ask for work on one file, coalescing with any work already queued for it.

        Returns the row after the put. With `revive_failed=False`, a failed row
        whose work is unchanged stays failed (only `retry` or new work revives it).
        `urgent` makes a pending row due now even when its work is unchanged (a
        pass someone asked for: the full disk may have been freed); its attempts
        are kept, so a repeat failure still backs off further. `size` is the bytes the work
        may move (None: unknown, which claims count as large).
        """
        params = self._put_params(folder, name, kind, payload, size, revive=revive_failed, now=self.clock(),
                                  urgent=urgent)
        with self.state.transaction() as conn:
            row = conn.execute(_PUT_SQL + f" RETURNING {JOB_COLUMNS}", params).fetchone()
        return job_of(row)

    def put_many(
        self,
        items: Iterable[tuple[str, str, str, str] | tuple[str, str, str, str, int | None]],
        *,
        revive_failed: bool = True,
        urgent: bool = False,
    ) -> int:
        """`put` each (folder, name, kind, payload[, size]) in one transaction; return how many.

        Later items win over earlier ones for the same file, as with `put`.
        """
        now = self.clock()
        params = [self._put_params(*item, revive=revive_failed, now=now, urgent=urgent) for item in items]
        with self.state.transaction() as conn:
            conn.executemany(_PUT_SQL, params)
        return len(params)

    @staticmethod
    def _put_params(
        folder: str, name: str, kind: str, payload: str, size: int | None = None, *, revive: bool, now: float,
        urgent: bool = False,
    ) -> dict[str, Any]:
        return {
            "folder": folder,
            "name": name,
            "kind": kind,
            "payload": payload,
            "size": size,
            "now": now,
            "revive": int(revive),
            "urgent": int(urgent),
        }

    # -- working ---------------------------------------------------------------

    def claim(
        self,
        owner: str,
        *,
        lease: float = 300,
        limit: int = 1,
        folders: Collection[str] | None = None,
        smaller_than: int | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs (of `folders` only, if given; with `smaller_than`, only
        jobs of a known size below it) to `owner`, earliest due first.

        Due means pending with `next_try <= now`, or running with an expired
        lease (its worker died or hung; the row's latest work is redone). One
        IMMEDIATE transaction, so two claimers never get the same row. `owner`
        should be unique per worker.
        """
        now = self.clock()
        only = ""
        if folders is not None:
            only = f" AND folder IN ({', '.join('?' * len(folders))})"
        if smaller_than is not None:
            only += f" AND size < {int(smaller_than)}"
        # Each branch walks its own index in order and stops at `limit` rows; one OR over both
        # would gather and sort every due row at each claim (quadratic over a long queue).
        due = (
            f"SELECT * FROM (SELECT id, next_try FROM jobs WHERE state = 'pending' AND next_try <= ?{only} "
            "ORDER BY next_try, id LIMIT ?) UNION ALL "
            f"SELECT * FROM (SELECT id, next_try FROM jobs WHERE state = 'running' AND lease_until <= ?{only} "
            "ORDER BY next_try, id LIMIT ?)"
        )
        branch = [now, *(folders or ()), limit]
        params: list[Any] = [owner, now + lease, now, *branch, *branch, limit]
        with self.state.transaction() as conn:
            rows = conn.execute(
                f"""
                UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, claims = claims + 1,
                    dirty = 0, updated = ?
                WHERE id IN (SELECT id FROM ({due}) ORDER BY next_try, id LIMIT ?)
                RETURNING {JOB_COLUMNS}
                """,
                params,
            ).fetchall()
        # RETURNING order is unspecified.
        return sorted((job_of(row) for row in rows), key=lambda job: (job.next_try, job.id))

    def renew(self, job: Job, *, lease: float = 300) -> Job | None:
        """Extend a held lease (long transfers); return the updated Job, or None
        when the lease was already lost.
        """
        now = self.clock()
        with self.state.transaction() as conn:
            row = conn.execute(
                f"UPDATE jobs SET lease_until = ?, updated = ? WHERE {_LEASE_MATCH} RETURNING {JOB_COLUMNS}",
                (now + lease, now, job.id, job.lease_owner, job.claims),
            ).fetchone()
        return job_of(row) if row is not None else None

    def renew_owned(self, owners: Collection[str], *, lease: float = 300) -> int:
        """Extend every running lease held by `owners` (one process's live workers); return how many.

        A worker busy with one long transfer keeps its row this way, so no other
        claimer ever takes it over while the transfer is still going.
        """
        if not owners:
            return 0
        now = self.clock()
        marks = ", ".join("?" * len(owners))
        with self.state.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET lease_until = ?, updated = ? WHERE state = 'running' AND lease_owner IN ({marks})",
                (now + lease, now, *owners),
            )
        return cursor.rowcount

    def set_resume(self, job: Job, resume: str | None) -> bool:
        """Record (None: forget) what a half-done transfer of `job` needs to resume, committed at
        once in its own transaction, so that even a `kill -9` right after keeps it.

        Stored only while `job` holds its lease and the row still carries the work `job` claimed
        (a token describes that work; newer work put meanwhile starts without one). False when
        nothing was stored.
        """
        now = self.clock()
        with self.state.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE jobs SET resume = ?, updated = ? WHERE {_LEASE_MATCH} AND kind = ? AND payload = ?",
                (resume, now, job.id, job.lease_owner, job.claims, job.kind, job.payload),
            )
        return cursor.rowcount == 1

    def done(self, job: Job, *, also: Callable[[sqlite3.Connection], object] | None = None) -> bool:
        """Finish `job`: delete its row, or, if new work arrived meanwhile, make it pending.

        `also` runs first in the same transaction, whatever the lease (the job's journal
        writes: what it did is recorded together with its being done).
        False (and the row unchanged) when `job`'s lease is no longer the row's.
        """
        now = self.clock()
        with self.state.transaction() as conn:
            if also is not None:
                also(conn)
            dirty = self._held_dirty(conn, job)
            if dirty is None:
                return False
            if dirty:
                conn.execute(
                    "UPDATE jobs SET state = 'pending', dirty = 0, attempts = 0, next_try = ?, resume = NULL, "
                    "lease_owner = NULL, lease_until = NULL, last_error = NULL, updated = ? WHERE id = ?",
                    (now, now, job.id),
                )
            else:
                conn.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
        return True

    def fail(
        self, job: Job, error: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> bool:
        """Record a failed attempt of `job`.

        * new work arrived meanwhile (dirty): pending with the new work,
          attempts 0, due now (or after `retry_after`) — the newer work gets
          its own chances, whatever happened to the old;
        * `permanent`: failed at once;
        * otherwise attempts + 1; failed once `max_attempts` is reached, else
          pending again after `backoff(attempts)`, and at least `retry_after`
          (itself capped at `max_backoff`, as the SPEC caps retries at 1 h).

        The row's resume token is kept: the next try goes on where this one stopped.
        False (and nothing changed) when `job`'s lease is no longer the row's.
        """
        now = self.clock()
        hint = min(max(retry_after, 0.0), self.max_backoff) if retry_after is not None else 0.0
        with self.state.transaction() as conn:
            dirty = self._held_dirty(conn, job)
            if dirty is None:
                return False
            attempts = int(conn.execute("SELECT attempts FROM jobs WHERE id = ?", (job.id,)).fetchone()[0])
            if dirty:
                state, attempts, next_try = JobState.PENDING, 0, now + hint
            elif permanent or attempts + 1 >= self.max_attempts:
                state, attempts, next_try = JobState.FAILED, attempts + 1, now
            else:
                state, next_try = JobState.PENDING, now + max(self.backoff(attempts), hint)
                attempts += 1
            conn.execute(
                "UPDATE jobs SET state = ?, attempts = ?, next_try = ?, dirty = 0, last_error = ?, "
                "lease_owner = NULL, lease_until = NULL, updated = ? WHERE id = ?",
                (state.value, attempts, next_try, error, now, job.id),
            )
        return True

    def postpone(self, job: Job, error: str, *, until: float) -> bool:
        """Put `job` back to pending, due at `until`, without counting an attempt: the failure
        was not the item's (its remote is failing as a whole, its folder is away for now).

        New work that arrived meanwhile (dirty) stays and starts with attempts 0, due at
        `until` too. False (and nothing changed) when `job`'s lease is no longer the row's.
        """
        now = self.clock()
        with self.state.transaction() as conn:
            dirty = self._held_dirty(conn, job)
            if dirty is None:
                return False
            conn.execute(
                "UPDATE jobs SET state = 'pending', next_try = ?, dirty = 0, last_error = ?, "
                "attempts = CASE WHEN dirty THEN 0 ELSE attempts END, "
                "lease_owner = NULL, lease_until = NULL, updated = ? WHERE id = ?",
                (until, error, now, job.id),
            )
        return True

    def backoff(self, failures: int) -> float:
        """Delay before the next try after `failures` earlier failures of the same work.

        The cap doubles per failure (base, 2·base, 4·base, ...) up to
        `max_backoff`; the delay is drawn uniformly from [cap/2, cap] ("equal
        jitter"): retries of many items spread out, yet each delay still grows.
        """
        cap = min(self.max_backoff, self.base_backoff * 2 ** min(failures, _MAX_EXPONENT))
        return self.rng.uniform(cap / 2, cap)

    @staticmethod
    def _held_dirty(conn: sqlite3.Connection, job: Job) -> bool | None:
        """The row's dirty flag if `job` still holds its lease, else None."""
        row = conn.execute(
            f"SELECT dirty FROM jobs WHERE {_LEASE_MATCH}", (job.id, job.lease_owner, job.claims)
        ).fetchone()
        return None if row is None else bool(row[0])

    # -- recovery and operator actions ---------------------------------------------

    def resume(self) -> int:
        """Put every running row back to pending; return how many.

        Call once at start, holding the writer lock: any running row then
        belongs to a process that died. Its latest work is due at once.
        """
        if not self.state.writer:
            raise RuntimeError("resume() needs the writer lock: open the state with writer=True")
        now = self.clock()
        with self.state.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_until = NULL, dirty = 0, "
                "next_try = min(next_try, ?), updated = ? WHERE state = 'running'",
                (now, now),
            )
            return cursor.rowcount

    def release_owned(self, owners: Collection[str]) -> int:
        """Put every running row held by `owners` back to pending, due now (attempts kept); how
        many. For workers known to be gone (a worker thread that died): their rows need not wait
        for their leases to run out."""
        if not owners:
            return 0
        now = self.clock()
        marks = ", ".join("?" * len(owners))
        with self.state.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_until = NULL, dirty = 0, "
                f"next_try = min(next_try, ?), updated = ? WHERE state = 'running' AND lease_owner IN ({marks})",
                (now, now, *owners),
            )
            return cursor.rowcount

    def retry(self, folder: str | None = None) -> int:
        """Failed rows (of `folder`, or all) back to pending, attempts 0, due now; return how many."""
        now = self.clock()
        where, params = self._folder_filter(folder)
        with self.state.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, next_try = ?, updated = ? "
                f"WHERE state = 'failed'{where}",
                (now, now, *params),
            )
            return cursor.rowcount

    def wake(self, folder: str) -> int:
        """Pending rows of `folder` due now, whatever their backoff said (attempts kept); how many."""
        now = self.clock()
        with self.state.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET next_try = ?, updated = ? WHERE state = 'pending' AND folder = ? AND next_try > ?",
                (now, now, folder, now),
            )
            return cursor.rowcount

    def remove_folder(self, folder: str) -> int:
        """Drop every row of `folder` (it left the config); return how many."""
        with self.state.transaction() as conn:
            return conn.execute("DELETE FROM jobs WHERE folder = ?", (folder,)).rowcount

    def running(self, folders: Collection[str], limit: int = 10) -> list[Job]:
        """Up to `limit` rows of `folders` leased to a worker now, in the order they were queued
        (a progress display that lists them does not reshuffle at each look). One read."""
        marks = ", ".join("?" * len(folders))
        rows = self.state.fetchall(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running' AND lease_until > ? "
            f"AND folder IN ({marks}) ORDER BY id LIMIT ?",
            (self.clock(), *folders, limit),
        )
        return [job_of(row) for row in rows]
