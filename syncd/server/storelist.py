"""The store's listings: a chat's files, a user's directories, a directory's files.

Invariants: every listing is scoped by user id, and read under the store's lock, so no write
of this store falls between a page and its total; pages are in a total order (`id` breaks
every tie), so paging through a listing that does not change sees each row once. `order` is
one of the ORDER BY terms `syncd.server.params` allows, never client text; a name to match is
a bound LIKE parameter.
"""

from __future__ import annotations

from typing import Any

from syncd.server.storedb import StoreBase, StoredFile, stored_file


class StoreListing(StoreBase):
    """One page of a listing, and the listing's total."""

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
        return total, [stored_file(r) for r in rows]

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
        return total, [stored_file(r) for r in rows]
