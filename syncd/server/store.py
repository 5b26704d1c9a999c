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
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from syncd.server.problems import ApiError

SCHEMA_VERSION = 3
BIZ = ("chat", "knowledgeBase", "zero2x")


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: int
    user_id: str
    filename: str
    size: int
    hashcode: str
    upload_at: str
    status: str
    biz: str
    biz_params: Any
    part_size: int | None

    def info(self) -> dict[str, Any]:
        """The protocol's FileInfo."""
        return {
            "id": self.id,
            "filename": self.filename,
            "size": self.size,
            "hashcode": self.hashcode,
            "upload_at": self.upload_at,
            "user_id": self.user_id,
            "status": self.status,
            "biz": self.biz,
            "biz_params": self.biz_params,
        }


def now_iso() -> str:
    return datetime.now(UTC).isoformat()



class Store:
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

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.data_dir}/meta.db has schema {version}, newer than this syncd")
        if version < 1:
            with self._tx():
                self._db.table("files").create(
                    {
                        "id": int, "user_id": str, "filename": str, "size": int, "hashcode": str,
                        "upload_at": str, "status": str, "biz": str, "biz_params": str,
                        "chat_id": str, "directory_id": int, "part_size": int,
                    },
                    pk="id",
                    not_null={"user_id", "filename", "size", "hashcode", "upload_at", "status", "biz"},
                    if_not_exists=True,
                )
                self._db.table("files").create_index(["user_id", "chat_id", "id"], if_not_exists=True)
                self._db.table("files").create_index(["user_id", "directory_id", "id"], if_not_exists=True)
                self._db.table("parts").create(
                    {"file_id": int, "part_number": int, "size": int},
                    pk=("file_id", "part_number"),
                    if_not_exists=True,
                )
                self._db.table("directories").create(
                    {"id": int, "user_id": str, "name": str, "created_at": str},
                    pk=("user_id", "id"),
                    if_not_exists=True,
                )
                self._db.execute("PRAGMA user_version=1")
        if version < 2:
            # File ids are never reused: a signed link to a deleted file must never serve the
            # next upload that would get its id. The highest id ever handed out is kept here.
            with self._tx():
                self._db.execute("CREATE TABLE IF NOT EXISTS id_high_water (name TEXT PRIMARY KEY, value INTEGER)")
                self._db.execute(
                    "INSERT OR IGNORE INTO id_high_water (name, value)"
                    " SELECT 'files', coalesce(max(id), 0) FROM files"
                )
                self._db.execute("PRAGMA user_version=2")
        if version < 3:
            # When an upload in progress last saw activity (epoch seconds): abandoned ones expire.
            # Uploads older than this column start their time to live at the upgrade.
            with self._tx():
                self._db.execute("ALTER TABLE files ADD COLUMN touched_at REAL")
                self._db.execute("UPDATE files SET touched_at = ? WHERE status != 'ok'", [time.time()])
                self._db.execute("PRAGMA user_version=3")
        self._drop_orphans()
        self._roll_back_merging()

    def _drop_orphans(self) -> None:
        """A simple upload cut off between row and rename leaves a row with no blob."""
        rows = self._db.execute(
            "SELECT id FROM files WHERE status = 'uploading' AND part_size IS NULL"
        ).fetchall()
        for (file_id,) in rows:
            self._delete_row(file_id)

    def _roll_back_merging(self) -> None:
        """A crash while completing leaves an upload `merging`: its part file renamed to the blob
        or not yet. Either way it goes back to `uploading` with its parts, completable again."""
        rows = self._db.execute("SELECT id FROM files WHERE status = 'merging'").fetchall()
        for (file_id,) in rows:
            blob, part = self.blob_path(file_id), self.part_path(file_id)
            if not part.exists() and blob.exists():
                blob.replace(part)
            if part.exists():
                with self._tx():
                    self._db.execute(
                        "UPDATE files SET status = 'uploading', touched_at = ? WHERE id = ?", [time.time(), file_id]
                    )
            else:  # nothing left of its bytes: cleanly gone
                self._delete_row(file_id)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
        return _stored(row)

    def status_of(self, file_id: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM files WHERE id = ?", [file_id]).fetchone()
        return None if row is None else str(row[0])

    def owner_of(self, file_id: int) -> str | None:
        """Who owns `file_id` (for signed URLs, which carry no user header)."""
        with self._lock:
            row = self._db.execute("SELECT user_id FROM files WHERE id = ?", [file_id]).fetchone()
        return None if row is None else str(row[0])

    def blob_path(self, file_id: int) -> Path:
        return self.blobs / str(file_id)

    def list_chat(self, user_id: str, chat_id: str, offset: int, limit: int) -> tuple[int, list[StoredFile]]:
        """One page of a chat's files, oldest first, and the chat's total."""
        with self._lock:
            total = self._db.execute(
                "SELECT count(*) FROM files WHERE user_id = ? AND chat_id = ?", [user_id, chat_id]
            ).fetchone()[0]
            rows = self._db.execute(
                "SELECT id, user_id, filename, size, hashcode, upload_at, status, biz, biz_params,"
                " part_size FROM files WHERE user_id = ? AND chat_id = ? ORDER BY id LIMIT ? OFFSET ?",
                [user_id, chat_id, limit, offset],
            ).fetchall()
        return total, [_stored(r) for r in rows]

    def list_directories(
        self, user_id: str, name: str | None, order: str, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        where, args = "user_id = ?", [user_id]
        if name:
            where += " AND name LIKE ?"
            args.append(f"%{name}%")
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM directories WHERE {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT id, created_at, name FROM directories WHERE {where} ORDER BY {order}, id"
                " LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return total, [{"id": r[0], "created_at": r[1], "name": r[2]} for r in rows]

    def list_directory_files(
        self, user_id: str, directory_id: int, name: str | None, order: str, limit: int, offset: int
    ) -> tuple[int, list[StoredFile]]:
        where, args = "user_id = ? AND directory_id = ?", [user_id, directory_id]
        if name:
            where += " AND filename LIKE ?"
            args.append(f"%{name}%")
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM files WHERE {where}", args).fetchone()[0]
            rows = self._db.execute(
                "SELECT id, user_id, filename, size, hashcode, upload_at, status, biz, biz_params,"
                f" part_size FROM files WHERE {where} ORDER BY {order}, id LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return total, [_stored(r) for r in rows]

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

    def _delete_row(self, file_id: int) -> None:
        with self._tx():
            self._db.execute("DELETE FROM files WHERE id = ?", [file_id])
            self._db.execute("DELETE FROM parts WHERE file_id = ?", [file_id])
        self.blob_path(file_id).unlink(missing_ok=True)
        self.part_path(file_id).unlink(missing_ok=True)

    # -- multipart --------------------------------------------------------

    def part_path(self, file_id: int) -> Path:
        return self.parts / str(file_id)

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

    def stale_uploads(self, idle_since: float) -> list[int]:
        """Uploads in progress with no activity since `idle_since` (epoch seconds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM files WHERE status = 'uploading' AND coalesce(touched_at, 0) < ?", [idle_since]
            ).fetchall()
        return [r[0] for r in rows]

    def expire(self, file_id: int, idle_since: float) -> bool:
        """Delete the upload `file_id` if it is still in progress and idle since `idle_since`."""
        with self._tx():
            cursor = self._db.execute(
                "DELETE FROM files WHERE id = ? AND status = 'uploading' AND coalesce(touched_at, 0) < ?",
                [file_id, idle_since],
            )
            if cursor.rowcount != 1:
                return False
            self._db.execute("DELETE FROM parts WHERE file_id = ?", [file_id])
        self.part_path(file_id).unlink(missing_ok=True)
        return True

    def stray_part_files(self, idle_since: float) -> list[Path]:
        """Files in parts/ untouched since `idle_since` that belong to no upload in progress (left by a
        crash). Only old ones: an upload that starts right now has its row before its file, but this
        listing may read the rows before and the directory after."""
        with self._lock:
            live = {
                str(r[0]) for r in self._db.execute("SELECT id FROM files WHERE status != 'ok'").fetchall()
            }
        stray = []
        for path in self.parts.iterdir():
            try:
                if path.name not in live and path.stat().st_mtime < idle_since:
                    stray.append(path)
            except FileNotFoundError:
                continue
        return stray

    def close(self) -> None:
        with self._lock:
            self._db.conn.close()


def _stored(row: tuple[Any, ...]) -> StoredFile:
    return StoredFile(
        id=row[0],
        user_id=row[1],
        filename=row[2],
        size=row[3],
        hashcode=row[4],
        upload_at=row[5],
        status=row[6],
        biz=row[7],
        biz_params=json.loads(row[8]) if row[8] is not None else None,
        part_size=row[9],
    )
