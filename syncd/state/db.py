"""syncd's persistent state: one SQLite file per state directory.

``state_dir/syncd.db`` holds the journal (the last synced version of every
file, the base the planner compares against), per-folder and per-remote
status, the job queue (its table is created here, its logic lives in
`syncd.state.queue`) and what the last passes left out of sync with no work queued
(`syncd.state.notices`). The file and its ``-wal``/``-shm`` companions are mode 0600 in
a 0700 directory: they name every synced file.

Concurrency model:

* one *writer* process per state directory, enforced by an exclusive
  ``flock`` on ``state_dir/lock`` (the kernel drops it when the process dies,
  even after ``kill -9``, so a stale lock never needs cleaning up);
* any number of *readers* (``syncd status``) that take no lock and read
  through WAL while the writer writes;
* inside a process, one connection shared by all threads and guarded by a
  re-entrant lock; `State.transaction` holds it for a whole
  ``BEGIN IMMEDIATE ... COMMIT``.

The schema and its migrations are in `syncd.state.schema`, the journal's rows
in `syncd.state.journal`. All of it is the standard library's `sqlite3` (plain SQL, no
wrapper library), so every command that opens the state stays cheap to start.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from syncd.errors import StateDamaged
from syncd.state.journal import (
    JOURNAL_COLUMNS,
    PUT_JOURNAL_SQL,
    JournalRow,
    journal_params,
    now_iso,
    row_of,
    write_journal,
)
from syncd.state.lock import FILE_MODE, acquire_writer_lock, make_private_dir
from syncd.state.lock import lock_holder as lock_holder
from syncd.state.schema import StateVersionError as StateVersionError
from syncd.state.schema import migrate

DB_NAME = "syncd.db"

_BUSY_TIMEOUT_S = 30.0
#: Names per `IN (...)` query (well below SQLite's limit on bound parameters).
_NAMES_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What `syncd status` shows for a folder besides its counts."""

    name: str
    last_pass: str | None = None
    last_error: str | None = None
    paused: str | None = None


class State:
    """An open state database. Thread-safe; use `open_state` to get one.

    Every method takes `lock`; `transaction` holds it for the whole
    transaction, so a thread never sees another thread's uncommitted work on
    the shared connection.
    """

    def __init__(self, state_dir: Path, conn: sqlite3.Connection, *, writer: bool, lock_fd: int | None) -> None:
        self.path = state_dir
        self.db_path = state_dir / DB_NAME
        self._conn = conn
        self.writer = writer
        self.lock = threading.RLock()
        self._lock_fd = lock_fd
        self._closed = False
        self.set_aside_as: Path | None = None  # where `open_state(set_aside=True)` put the old database
        #: Opened for a dry run (`open_state(read_only=True)`): SQLite refuses every write, and the
        #: notes a pass leaves (last pass, pauses) are not taken.
        self.read_only = False

    # -- connection --------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection (autocommit; use `transaction` to group writes)."""
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the state lock for one ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        IMMEDIATE takes SQLite's write lock up front, so a read-then-write
        sequence inside (such as claiming a job) cannot interleave with another
        process's writer. Rolls back on any exception. Nested use in the same
        thread becomes a savepoint.
        """
        with self.lock:
            conn = self.conn
            if conn.in_transaction:
                # Only this thread can have opened it: we hold the lock.
                conn.execute("SAVEPOINT syncd_nested")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK TO SAVEPOINT syncd_nested")
                    conn.execute("RELEASE SAVEPOINT syncd_nested")
                    raise
                conn.execute("RELEASE SAVEPOINT syncd_nested")
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def fetchall(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query under the lock and return all its rows."""
        with self.lock:
            return list(self._conn.execute(sql, params).fetchall())

    def user_version(self) -> int:
        """The schema version recorded in the file."""
        with self.lock:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the database, then give up the writer lock. Idempotent."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                # Clear our pid before letting go, so the file never names a
                # process that no longer holds the lock.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- journal -------------------------------------------------------------

    def journal(self, folder: str) -> dict[str, JournalRow]:
        """Every journal row of `folder`, by name (one query)."""
        rows = self.fetchall(f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE folder = ?", (folder,))
        return {values[0]: row_of(values) for values in rows}

    def read_journal(self, folder: str, read: Callable[[Iterable[tuple[Any, ...]]], _T]) -> _T:
        """What `read` makes of every journal row of `folder` (the columns `JOURNAL_COLUMNS`
        names), read in one query under the lock: `read` gets the rows as they come, never a
        list of them all (`syncd.sync.outcome.bases` makes the planner's base of them)."""
        with self.lock:
            return read(self._conn.execute(f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE folder = ?", (folder,)))

    def journal_values_of(self, folder: str, names: Collection[str]) -> list[tuple[Any, ...]]:
        """The journal rows of just `names` of `folder`, as `read_journal` reads them."""
        wanted = list(names)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), _NAMES_PER_QUERY):
            chunk = wanted[start:start + _NAMES_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows += self.fetchall(
                f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE folder = ? AND name IN ({marks})", (folder, *chunk)
            )
        return rows

    def remote_versions(self, folder: str) -> dict[str, tuple[str | None, bool]]:
        """name -> (the recorded remote version, whether a floor is recorded) of every journal row
        of `folder`, in one query: all the poller needs to tell the names a listing leaves as
        they were (`syncd.core.versions.suspects`)."""
        rows = self.fetchall(
            "SELECT name, remote_version, remote_floor_at IS NOT NULL AND remote_floor_seq IS NOT NULL "
            "FROM journal WHERE folder = ?",
            (folder,),
        )
        return {name: (version, bool(floor)) for name, version, floor in rows}

    def journal_row(self, folder: str, name: str) -> JournalRow | None:
        """The journal row of one file, or None when it is not tracked."""
        rows = self.fetchall(
            f"SELECT {JOURNAL_COLUMNS} FROM journal WHERE folder = ? AND name = ?", (folder, name)
        )
        return row_of(rows[0]) if rows else None

    def put_journal(self, folder: str, row: JournalRow) -> None:
        """Insert or replace the journal row of `row.name`."""
        with self.transaction() as conn:
            write_journal(conn, folder, row.name, row)

    def put_journal_many(self, folder: str, rows: Iterable[JournalRow]) -> None:
        """Insert or replace many journal rows in one transaction."""
        now = now_iso()
        with self.transaction() as conn:
            conn.executemany(PUT_JOURNAL_SQL, (journal_params(folder, row, now) for row in rows))

    def delete_journal(self, folder: str, name: str) -> None:
        """Forget one file of `folder` (no error when it is not tracked)."""
        with self.transaction() as conn:
            write_journal(conn, folder, name, None)

    def confirm_floors(self, folder: str, confirmed: Iterable[tuple[str, str, str]]) -> None:
        """For each (path, remote version, write time as listed) whose row still records that
        version: clear the floor and take the remote's write time. An upload of ours that a
        listing showed alone, with no concurrent writer (plan.Plan)."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE journal SET remote_floor_at = NULL, remote_floor_seq = NULL, remote_written_at = ? "
                "WHERE folder = ? AND name = ? AND remote_version = ?",
                ((written_at, folder, name, version) for name, version, written_at in confirmed),
            )

    def journal_count(self, folder: str) -> int:
        """How many files of `folder` the journal tracks."""
        return int(self.fetchall("SELECT count(*) FROM journal WHERE folder = ?", (folder,))[0][0])

    # -- folder and remote status ---------------------------------------------

    def set_last_pass(self, folder: str, when_iso: str, error: str | None) -> None:
        """Record the end of a pass over `folder`; `error` None clears the last error."""
        if self.read_only:
            return
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO folders (name, last_pass, last_error) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "last_pass = excluded.last_pass, last_error = excluded.last_error",
                (folder, when_iso, error),
            )

    def set_folder_paused(self, folder: str, reason: str | None) -> None:
        """Pause `folder` with a reason shown in status, or unpause it (None)."""
        if self.read_only:
            return
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO folders (name, paused) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (folder, reason),
            )

    def folder_place(self, folder: str) -> str | None:
        """Where `folder` was on its remote at its last pass (None: not known yet)."""
        rows = self.fetchall("SELECT place FROM folders WHERE name = ?", (folder,))
        return rows[0][0] if rows else None

    def move_folder_place(self, folder: str, place: str) -> bool:
        """Record `place` as the folder's place on its remote. When it had another one, the
        folder's journal, queued work and notices are about that other place: all are dropped, so
        the next pass is a first sync (nothing deleted on either side). True when that happened."""
        with self.transaction() as conn:
            row = conn.execute("SELECT place FROM folders WHERE name = ?", (folder,)).fetchone()
            moved = row is not None and row[0] is not None and row[0] != place
            if moved:
                conn.execute("DELETE FROM journal WHERE folder = ?", (folder,))
                conn.execute("DELETE FROM jobs WHERE folder = ?", (folder,))
                conn.execute("DELETE FROM notices WHERE folder = ?", (folder,))
            conn.execute(
                "INSERT INTO folders (name, place) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET place = excluded.place",
                (folder, place),
            )
            return moved

    def folder_status(self, folder: str) -> FolderStatus:
        """Last pass, last error and pause reason of `folder` (all None if never recorded)."""
        rows = self.fetchall("SELECT last_pass, last_error, paused FROM folders WHERE name = ?", (folder,))
        if not rows:
            return FolderStatus(folder)
        last_pass, last_error, paused = rows[0]
        return FolderStatus(folder, last_pass, last_error, paused)

    def set_remote_paused(self, remote: str, reason: str | None) -> None:
        """Pause `remote` (e.g. authentication refused) with a reason, or unpause it (None)."""
        if self.read_only:
            return
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO remotes (name, paused) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (remote, reason),
            )

    def remote_paused(self, remote: str) -> str | None:
        """Why `remote` is paused, or None when it is not."""
        rows = self.fetchall("SELECT paused FROM remotes WHERE name = ?", (remote,))
        return rows[0][0] if rows else None


# -- opening ------------------------------------------------------------------


def open_state(state_dir: Path, *, writer: bool = True, set_aside: bool = False, read_only: bool = False) -> State:
    """Open (creating and migrating as needed) the state database in `state_dir`.

    `writer=True` first takes the state dir's writer lock and raises
    `StateLocked` naming the holder's pid and command when another process has
    it. `writer=False` takes no lock (for `syncd status`): it reads while a
    writer writes, and may make small writes of its own (SQLite serialises
    them). Either kind creates and migrates a missing or older file; each
    migration step is its own IMMEDIATE transaction, so that is safe next to
    another process. Raises `StateVersionError` when the file was written by
    a newer syncd, and `StateDamaged` when SQLite finds the file damaged (a
    writer checks the whole file first: a few milliseconds for 10,000 files).

    `set_aside=True` (a writer only) first renames an existing database and its
    companions to ``syncd.db.set-aside-TIMESTAMP`` - kept, never deleted - so
    a fresh, empty journal is rebuilt by the next pass.

    `read_only=True` (`reconcile --dry-run`, next to a daemon or not) takes no lock and writes
    nothing: SQLite refuses writes on the connection (``query_only``), and `State.read_only` has
    the pass's own notes dropped. A file that does not exist yet is still created.
    """
    if read_only:
        writer = False
    state_dir = Path(state_dir).expanduser()
    make_private_dir(state_dir)
    lock_fd = acquire_writer_lock(state_dir) if writer else None
    try:
        old = _set_aside(state_dir / DB_NAME) if set_aside else None
        conn = _guarded(state_dir / DB_NAME, lambda: _connect(state_dir / DB_NAME))
        state = State(state_dir, conn, writer=writer, lock_fd=lock_fd)
        state.set_aside_as = old
    except BaseException:
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    try:
        _guarded(state.db_path, lambda: _check_and_migrate(state))
        _tighten_modes(state.db_path)
        if read_only:
            state.conn.execute("PRAGMA query_only = ON")
            state.read_only = True
    except BaseException:
        state.close()
        raise
    return state


def is_damage(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the database file is damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in _DAMAGE_CODES


def damaged(db_path: Path | None, exc: BaseException) -> StateDamaged:
    """The error a damaged state database is reported with: what, where, and the way out."""
    where = f" {db_path}" if db_path is not None else ""
    return StateDamaged(
        f"daemon.state_dir: the state database{where} is damaged ({exc}). No file was touched. "
        "Run `syncd reconcile --rebuild-journal` to set it aside (it is kept, renamed) and rebuild the "
        "journal from a fresh pass: files that differ between a folder and its chat become conflicts, "
        "both versions kept; nothing is deleted."
    )


_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_T = TypeVar("_T")


def _guarded(db_path: Path, step: Callable[[], _T]) -> _T:
    try:
        return step()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise damaged(db_path, exc) from exc
        raise


def _check_and_migrate(state: State) -> None:
    if state.writer and state.db_path.stat().st_size:
        found = [row[0] for row in state.fetchall("PRAGMA quick_check(5)")]
        if found != ["ok"]:
            raise damaged(state.db_path, sqlite3.DatabaseError("; ".join(map(str, found))))
    migrate(state)


def _set_aside(db_path: Path) -> Path | None:
    """Rename the database and its companions aside; the new name, or None when there was none."""
    if not db_path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = db_path.with_name(f"{db_path.name}.set-aside-{stamp}")
    n = 1
    while any(target.with_name(target.name + suffix).exists() for suffix in ("", "-wal", "-shm")):
        n += 1
        target = db_path.with_name(f"{db_path.name}.set-aside-{stamp}-{n}")
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash midway leaves it in place
        source = db_path.with_name(db_path.name + suffix)
        if source.exists():
            source.rename(target.with_name(target.name + suffix))
    return target


def _connect(db_path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, shared across threads (callers hold `State.lock`)."""
    # Create the file ourselves so it is 0600 from the first byte; SQLite gives
    # the -wal and -shm files it creates later the database file's mode.
    fd = os.open(db_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _tighten_modes(db_path)
    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        # Switching needs a moment alone with the file: only asked for when not WAL yet.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = wal")
        # NORMAL in WAL mode: a power cut may lose the last commits, never
        # corrupts; a process crash (kill -9) loses nothing.
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _tighten_modes(db_path: Path) -> None:
    """Make the database and its WAL companions 0600 whatever the umask was."""
    for path in (db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode != FILE_MODE:
                path.chmod(FILE_MODE)
        except FileNotFoundError:
            continue


