"""The store's schema: its migrations, and the repairs every start makes.

Invariants: `PRAGMA user_version` is the schema's version, raised in the same transaction as
the migration step that reaches it, so a crash mid-migration re-runs that step whole; a
database newer than SCHEMA_VERSION is refused, never downgraded. After `_migrate` no row is
left that a crash could have made inconsistent: no simple upload without its blob, no upload
stuck `merging`.
"""

from __future__ import annotations

import time

from syncd.server.storedb import StoreBase

SCHEMA_VERSION = 3


class StoreSchema(StoreBase):
    """Bringing a data dir's database to SCHEMA_VERSION, and out of a crash's leftovers."""

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
