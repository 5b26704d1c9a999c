"""The file service's storage: metadata in SQLite, contents on disk.

Layout of a data dir::

    meta.db          files, parts, directories, the highest file id ever handed out
                     (sqlite-utils, WAL)
    blobs/<id>       the contents of every complete file
    parts/<id>       a multipart upload in progress: one sparse file, parts
                     written at their offsets as they arrive, in any order
                     (renamed to blobs/<id> by completion, status `merging`
                     meanwhile; a crash there is rolled back at the next start)
    tmp/             simple uploads being received
    signing.key      the download-URL key (0600)

Invariants: a row in status `ok` always has its blob; a blob only appears
under its final name after it was fsynced (temp file, fsync, rename, fsync
dir). Every query is scoped by user id, so another user's id is "not found".

`Store` is this module (a file's life: created, its parts recorded, completed, deleted) over
`storedb` (the connection, the transaction, the paths), `storeschema` (migrations and the
repairs at start), `storelist` (the listings) and `storeexpiry` (abandoned uploads).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from syncd.server.problems import ApiError
from syncd.server.storedb import StoredFile, now_iso, stored_file
from syncd.server.storeexpiry import StoreExpiry
from syncd.server.storelist import StoreListing
from syncd.server.storeschema import StoreSchema

BIZ = ("chat", "knowledgeBase", "zero2x")


class Store(StoreSchema, StoreListing, StoreExpiry):
    """Metadata and contents of one data dir; safe to use from many threads."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.blobs = data_dir / "blobs"
        self.parts = data_dir / "parts"
        self.tmp = data_dir / "tmp"
        for d in (data_dir, self.blobs, self.parts, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.tmp.iterdir():  # simple uploads cut off by a crash
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(
            data_dir / "meta.db", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    # -- reading ----------------------------------------------------------

    def get(self, user_id: str, file_id: int) -> StoredFile:
        """The user's file `file_id`, or a 404 (also for another user's id)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, user_id, filename, size, hashcode, upload_at, status, biz, biz_params,"
                " part_size FROM files WHERE id = ? AND user_id = ?",
                [file_id, user_id],
            ).fetchone()
        if row is None:
            raise ApiError(404, f"file {file_id} not found")
        return stored_file(row)

    def status_of(self, file_id: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM files WHERE id = ?", [file_id]).fetchone()
        return None if row is None else str(row[0])

    def owner_of(self, file_id: int) -> str | None:
        """Who owns `file_id` (for signed URLs, which carry no user header)."""
        with self._lock:
            row = self._db.execute("SELECT user_id FROM files WHERE id = ?", [file_id]).fetchone()
        return None if row is None else str(row[0])

    # -- writing ----------------------------------------------------------

    def new_file(
        self,
        user_id: str,
        *,
        filename: str,
        size: int,
        hashcode: str,
        biz: str,
        biz_params: Any,
        status: str,
        part_size: int | None = None,
    ) -> int:
        """Insert a file row; its chat or directory is derived from `biz_params`."""
        chat_id = directory_id = None
        if isinstance(biz_params, dict):
            if biz == "chat" and biz_params.get("chat_id") is not None:
                chat_id = str(biz_params["chat_id"])
            if biz == "knowledgeBase" and isinstance(biz_params.get("directory_id"), int):
                directory_id = biz_params["directory_id"]
        with self._tx():
            if directory_id is not None:
                assert isinstance(biz_params, dict)
                dir_name = biz_params.get("directory_name")
                self._db.execute(
                    "INSERT OR IGNORE INTO directories (id, user_id, name, created_at) VALUES (?, ?, ?, ?)",
                    [directory_id, user_id, str(dir_name or f"directory {directory_id}"), now_iso()],
                )
            (file_id,) = self._db.execute(
                "UPDATE id_high_water SET value = max(value, (SELECT coalesce(max(id), 0) FROM files)) + 1"
                " WHERE name = 'files' RETURNING value"
            ).fetchone()
            self._db.execute(
                "INSERT INTO files (id, user_id, filename, size, hashcode, upload_at, status, biz,"
                " biz_params, chat_id, directory_id, part_size, touched_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    file_id, user_id, filename, size, hashcode, now_iso(), status, biz,
                    json.dumps(biz_params), chat_id, directory_id, part_size, time.time(),
                ],
            )
        return int(file_id)

    def finish(self, file_id: int, *, hashcode: str) -> None:
        """Mark a file complete: its blob is in place."""
        with self._tx():
            self._db.execute(
                "UPDATE files SET status = 'ok', hashcode = ?, upload_at = ? WHERE id = ?",
                [hashcode, now_iso(), file_id],
            )
            self._db.execute("DELETE FROM parts WHERE file_id = ?", [file_id])

    def begin_merge(self, file_id: int) -> bool:
        """`uploading` -> `merging`; False if the upload was not (any more) in progress."""
        with self._tx():
            cursor = self._db.execute(
                "UPDATE files SET status = 'merging' WHERE id = ? AND status = 'uploading'", [file_id]
            )
            return cursor.rowcount == 1

    def end_merge(self, file_id: int) -> None:
        """A completion that failed its checks: back to `uploading`."""
        with self._tx():
            self._db.execute(
                "UPDATE files SET status = 'uploading', touched_at = ? WHERE id = ? AND status = 'merging'",
                [time.time(), file_id],
            )

    def delete(self, user_id: str, file_id: int) -> None:
        """Delete a file, whatever its state; 404 if the user has no such file."""
        self.get(user_id, file_id)
        self._delete_row(file_id)

    # -- multipart --------------------------------------------------------

    def start_part(self, file_id: int, part_number: int) -> bool:
        """A part is being (re)written: it no longer counts as received until it is whole again.
        False if the upload is not in progress."""
        with self._tx():
            cursor = self._db.execute(
                "UPDATE files SET touched_at = ? WHERE id = ? AND status = 'uploading'", [time.time(), file_id]
            )
            if cursor.rowcount != 1:
                return False
            self._db.execute("DELETE FROM parts WHERE file_id = ? AND part_number = ?", [file_id, part_number])
            return True

    def record_part(self, file_id: int, part_number: int, size: int) -> bool:
        """Part `part_number` arrived whole; False (nothing recorded) if its upload is no longer in
        progress - completed, aborted, deleted or expired while the part arrived."""
        with self._tx():
            cursor = self._db.execute(
                "UPDATE files SET touched_at = ? WHERE id = ? AND status = 'uploading'", [time.time(), file_id]
            )
            if cursor.rowcount != 1:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO parts (file_id, part_number, size) VALUES (?, ?, ?)",
                [file_id, part_number, size],
            )
            return True

    def received_parts(self, file_id: int) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT part_number FROM parts WHERE file_id = ? ORDER BY part_number", [file_id]
            ).fetchall()
        return [r[0] for r in rows]

    def missing_parts(self, file_id: int, count: int, first: int = 20) -> tuple[int, list[int]]:
        """How many of parts 1..count are missing, and the first `first` of them; no list of every part."""
        with self._lock:
            received = self._db.execute(
                "SELECT count(*) FROM parts WHERE file_id = ? AND part_number BETWEEN 1 AND ?", [file_id, count]
            ).fetchone()[0]
            shown: list[int] = []
            expected = 1
            cursor = self._db.execute(
                "SELECT part_number FROM parts WHERE file_id = ? AND part_number BETWEEN 1 AND ?"
                " ORDER BY part_number", [file_id, count],
            )
            for (number,) in cursor:
                while expected < number and len(shown) < first:
                    shown.append(expected)
                    expected += 1
                if len(shown) >= first:
                    break
                expected = number + 1
            while expected <= count and len(shown) < first:
                shown.append(expected)
                expected += 1
        return count - received, shown
