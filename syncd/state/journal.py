"""The journal: the last synced state of every file of every folder, keyed by path.

One row per (folder, path): the local side (size, mtime, sha256, its on-disk spelling when
not the NFC key) and the remote side as the remote's kind names a version (opaque version
text, size, sha256 where proven, when it was written, its spelling), either side all NULL when
absent at the last sync. Rows are written only inside a caller's transaction
(`write_journal`), so a worker commits them together with its queue row's done.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class JournalRow:
    """The last synced state of one file of a folder (the planner's base).

    Local fields describe the file on disk, remote fields the remote file it
    was synced with; a side that was absent at the last sync is all None.
    """

    name: str
    local_size: int | None = None
    local_mtime_ns: int | None = None
    local_sha256: str | None = None
    remote_version: str | None = None
    remote_size: int | None = None
    remote_sha256: str | None = None
    remote_written_at: str | None = None
    dropped: bool = False
    local_name: str | None = None
    remote_name: str | None = None
    remote_floor_at: str | None = None
    remote_floor_seq: int | None = None


JOURNAL_COLUMNS = (
    "name, local_size, local_mtime_ns, local_sha256, remote_version, remote_size, "
    "remote_sha256, remote_written_at, dropped, local_name, remote_name, remote_floor_at, remote_floor_seq"
)

PUT_JOURNAL_SQL = f"""
    INSERT INTO journal (folder, {JOURNAL_COLUMNS}, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (folder, name) DO UPDATE SET
        local_size = excluded.local_size,
        local_mtime_ns = excluded.local_mtime_ns,
        local_sha256 = excluded.local_sha256,
        remote_version = excluded.remote_version,
        remote_size = excluded.remote_size,
        remote_sha256 = excluded.remote_sha256,
        remote_written_at = excluded.remote_written_at,
        dropped = excluded.dropped,
        local_name = excluded.local_name,
        remote_name = excluded.remote_name,
        remote_floor_at = excluded.remote_floor_at,
        remote_floor_seq = excluded.remote_floor_seq,
        updated_at = excluded.updated_at
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def journal_params(folder: str, row: JournalRow, updated_at: str) -> tuple[Any, ...]:
    return (
        folder,
        row.name,
        row.local_size,
        row.local_mtime_ns,
        row.local_sha256,
        row.remote_version,
        row.remote_size,
        row.remote_sha256,
        row.remote_written_at,
        int(row.dropped),
        row.local_name,
        row.remote_name,
        row.remote_floor_at,
        row.remote_floor_seq,
        updated_at,
    )


def write_journal(conn: sqlite3.Connection, folder: str, name: str, row: JournalRow | None) -> None:
    """Inside a caller's transaction: set the journal row of `name` (`row.name` is `name`), or
    forget it (None)."""
    if row is None:
        conn.execute("DELETE FROM journal WHERE folder = ? AND name = ?", (folder, name))
    else:
        conn.execute(PUT_JOURNAL_SQL, journal_params(folder, row, now_iso()))


def row_of(values: tuple[Any, ...]) -> JournalRow:
    (name, lsize, lmtime, lsha, rid, rsize, rhash, rup, dropped, lname, rname, fat, fid) = values
    return JournalRow(name, lsize, lmtime, lsha, rid, rsize, rhash, rup, bool(dropped), lname, rname, fat, fid)
