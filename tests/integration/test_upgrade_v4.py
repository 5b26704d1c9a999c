"""A state dir of the release before the notices (schema 4) is taken over with nothing lost.

The schema 4 database is made here the way that release made it: its four migration steps (a
released step is never edited), then rows as it wrote them — a tracked file, a failed upload,
the folder's last pass and error, its place, a paused remote. Then this release's commands run
against it and a real file service: `status` reads it (migrating it, even without the writer
lock), every row is as it was, and a `retry` + `reconcile` finish its work without moving the
tracked file.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from syncd.core.model import Action, ActionKind, LocalFile
from syncd.core.paths import RelPath
from syncd.state import jobcodec
from syncd.state.schema import _MIGRATIONS, SCHEMA_VERSION
from tests.support.chat import chat_files, put
from tests.support.syncd_cli import run_syncd, write_config

pytestmark = pytest.mark.timeout(120)

V4 = 4
TABLES = ("journal", "folders", "remotes", "jobs")


def make_v4_state(db: Path, folder: Path, a_id: int, a_upload_at: str) -> None:
    db.parent.mkdir(mode=0o700)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statements in _MIGRATIONS[:V4]:
            for sql in statements:
                conn.execute(sql)
        conn.execute(f"PRAGMA user_version = {V4}")
        a = folder / "a.txt"
        st = a.stat()
        digest = hashlib.sha256(a.read_bytes()).hexdigest()
        conn.execute(
            "INSERT INTO journal (folder, name, local_size, local_mtime_ns, local_sha256, remote_version, "
            "remote_size, remote_sha256, remote_written_at, dropped, updated_at) "
            "VALUES ('docs', 'a.txt', ?, ?, ?, ?, ?, ?, ?, 0, '2026-01-01T00:00:00+00:00')",
            (st.st_size, st.st_mtime_ns, digest, str(a_id), st.st_size, digest, a_upload_at),
        )
        b = folder / "b.txt"
        bst = b.stat()
        local = LocalFile(RelPath("b.txt"), bst.st_size, bst.st_mtime_ns, hashlib.sha256(b.read_bytes()).hexdigest())
        conn.execute(
            "INSERT INTO jobs (folder, name, kind, payload, state, attempts, next_try, last_error, created, updated, "
            "size) VALUES ('docs', 'b.txt', 'upload', ?, 'failed', 1, 0, 'b.txt: 503 then gave up', 0, 0, ?)",
            (jobcodec.dumps(Action(ActionKind.UPLOAD, "b.txt", local)), bst.st_size),
        )
        conn.execute("INSERT INTO folders (name, last_pass, last_error, paused, place) "
                     "VALUES ('docs', '2026-01-01T00:00:00+00:00', 'b.txt: 503 then gave up', NULL, 'c')")
        conn.execute("INSERT INTO remotes (name, paused) VALUES ('gone', 'refused: 401')")
    finally:
        conn.close()


def rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        conn.close()


def test_a_schema_4_state_dir_is_taken_over(tmp_path: Path, server_url: str, sdk: BddFileClient) -> None:
    folder = tmp_path / "docs"
    for marker in ("tmp", "trash"):  # the folder as the last release left it: synced, with its marker
        (folder / ".syncd" / marker).mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"tracked since the last release")
    (folder / "b.txt").write_bytes(b"its upload failed then")
    a_id = put(sdk, "c", "a.txt", b"tracked since the last release")
    [info] = sdk.list_chat_files(chat_id="c")
    db = tmp_path / "state" / "syncd.db"
    make_v4_state(db, folder, a_id, info.upload_at.isoformat())
    before = rows(db)
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=server_url,
                       folders=[{"name": "docs", "path": folder, "chat_id": "c"}])

    shown = run_syncd("status", "--json", "--files", "-c", cfg)
    assert shown.code == 0 and shown.doc is not None, shown.stderr
    [docs] = shown.doc["folders"]
    assert (docs["files"], docs["pending"], docs["failed"]) == (1, 0, 1)
    assert docs["last_pass"] == "2026-01-01T00:00:00+00:00" and docs["last_error"] == "b.txt: 503 then gave up"
    assert docs["files_out_of_sync"] == [
        {"name": "b.txt", "state": "failed", "reason": "b.txt: 503 then gave up", "next_try": None}]

    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION > V4
        assert conn.execute("SELECT count(*) FROM notices").fetchone()[0] == 0
    finally:
        conn.close()
    assert rows(db) == before  # every row kept, column by column

    assert run_syncd("retry", "-c", cfg).code == 0
    done = run_syncd("reconcile", "--json", "-c", cfg)
    assert done.code == 0, done.stderr
    assert {a["name"]: (a["action"], a["status"]) for a in done.folder("docs")["actions"]} == {
        "b.txt": ("upload", "done")}
    files = {f.filename: f.id for f in sdk.list_chat_files(chat_id="c")}
    assert files["a.txt"] == a_id  # the tracked file did not move
    assert chat_files(sdk, "c") == {"a.txt": b"tracked since the last release", "b.txt": b"its upload failed then"}
