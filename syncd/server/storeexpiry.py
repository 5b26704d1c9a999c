"""The store's side of expiring abandoned uploads and the part files a crash left behind.

Invariants: only uploads in progress (status `uploading`) expire, and only when they saw no
activity (`touched_at`: created, a part started or recorded, a failed completion) since
`idle_since`; `expire` re-checks both in its own transaction, so an upload that a part touched
after `stale_uploads` listed it is kept. A part file is stray only when no unfinished upload
owns it and it was not modified since `idle_since`.
"""

from __future__ import annotations

from pathlib import Path

from syncd.server.storedb import StoreBase


class StoreExpiry(StoreBase):
    """Finding and deleting uploads idle for too long, and stray part files."""

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
