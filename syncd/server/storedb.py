"""What every part of the store stands on: the data dir's paths, its one SQLite connection,
the transaction, and a file row as the endpoints see it.

Invariants: one connection per data dir, used under `StoreBase._lock` only (an RLock, so a
transaction may call what also takes it); every change to the rows is one `BEGIN IMMEDIATE`
transaction, rolled back whole on any exception. A file's bytes live at `blob_path` once
complete and at `part_path` while a multipart upload is in progress; `_delete_row` removes
the row, its parts and both files, the row first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils


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


def stored_file(row: tuple[Any, ...]) -> StoredFile:
    """A row of the `files` columns in `StoredFile`'s order, as a `StoredFile`."""
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


class StoreBase:
    """The paths and the connection of one data dir; `Store` opens them."""

    data_dir: Path
    blobs: Path
    parts: Path
    tmp: Path
    _db: sqlite_utils.Database
    _lock: threading.RLock

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

    def blob_path(self, file_id: int) -> Path:
        return self.blobs / str(file_id)

    def part_path(self, file_id: int) -> Path:
        return self.parts / str(file_id)

    def _delete_row(self, file_id: int) -> None:
        with self._tx():
            self._db.execute("DELETE FROM files WHERE id = ?", [file_id])
            self._db.execute("DELETE FROM parts WHERE file_id = ?", [file_id])
        self.blob_path(file_id).unlink(missing_ok=True)
        self.part_path(file_id).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._db.conn.close()
