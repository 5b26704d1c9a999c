"""Upgrades keep user data: a state dir written by syncd 0.1.0 is taken over (SPEC).

`tests/fixtures/release-0.1.0/` is what a 0.1.0 user has on disk, written by
that release's own code (its README.md says what every row is, and
make_fixture.py how it was made): the `syncd serve --data` dir, the synced
folder and the state dir, with tracked files, queued uploads and downloads, a
failed job and the running row of a killed worker. Each test copies it into
tmp_path, starts `syncd serve` on a copy of its data dir, and lets this
release's commands take over: every piece of queued work is finished once,
tracked files that did not change are neither uploaded nor downloaded again
(their chat file ids stay), nothing is made twice, and a second pass plans
nothing.

The fixture itself is never opened by syncd: the "before" picture is read from
it with plain SQL against its 0.1.0 schema (user_version 1), which never changes.
The journal this release reads is schema 3, in syncd's own words: each row's BDD id
became its decimal text (`remote_version`), its sha256 hashcode `remote_sha256`, its
`remote_upload_at` `remote_written_at`; nothing else of a row changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.core.model import ActionKind
from syncd.state import jobcodec
from syncd.state.db import open_state
from syncd.state.journal import JournalRow
from syncd.state.queue import Queue
from syncd.state.schema import SCHEMA_VERSION
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import Result, reconcile, run_syncd

pytestmark = pytest.mark.timeout(180)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-0.1.0"
FOLDER, CHAT, USER = "docs", "upgrade-chat", "u1"
CAFE = "caf\u00e9.txt"  # NFC
#: Tracked by the 0.1.0 journal and unchanged on both sides since: must not move at all.
UNCHANGED = (CAFE, "data.csv", "meeting notes.md", "todo.txt")
#: Every name once the queued work is done.
ALL_NAMES = {*UNCHANGED, "notes.txt", "agenda.txt", "plan.txt", "report.txt"}


@dataclass(frozen=True)
class Before:
    """The fixture as 0.1.0 left it."""

    journal_ids: dict[str, int]  # name -> remote id the journal synced
    journal: dict[str, dict[str, Any]]  # name -> the 0.1.0 journal row, column by column
    jobs: dict[str, tuple[str, str]]  # name -> (kind, state)
    server_ids: dict[str, int]  # name -> id of the chat's file
    mtimes: dict[str, int]  # name -> st_mtime_ns of the local file


@dataclass(frozen=True)
class Upgrade:
    """A copy of the fixture in tmp_path, its file service running, a config pointing at both."""

    folder: Path
    state_dir: Path
    config: Path
    url: str
    before: Before


def read_before() -> Before:
    def ro(db: Path) -> sqlite3.Connection:
        return sqlite3.connect(f"{db.as_uri()}?immutable=1", uri=True)  # leaves the fixture untouched

    state = ro(FIXTURE / "state" / "syncd.db")
    meta = ro(FIXTURE / "serve" / "meta.db")
    try:
        assert state.execute("PRAGMA user_version").fetchone()[0] == 1, "the fixture is a 0.1.0 state db"
        journal = dict(state.execute("SELECT name, remote_id FROM journal WHERE folder = ?", (FOLDER,)))
        cursor = state.execute("SELECT * FROM journal WHERE folder = ?", (FOLDER,))
        columns = [d[0] for d in cursor.description]
        rows = {row["name"]: row for row in (dict(zip(columns, values, strict=True)) for values in cursor)}
        jobs = {n: (k, s) for n, k, s in state.execute("SELECT name, kind, state FROM jobs WHERE folder = ?",
                                                       (FOLDER,))}
        server = dict(meta.execute(
            "SELECT filename, id FROM files WHERE user_id = ? AND chat_id = ? AND status = 'ok'", (USER, CHAT)))
    finally:
        state.close()
        meta.close()
    mtimes = json.loads((FIXTURE / "folder-mtimes.json").read_text(encoding="utf-8"))
    return Before(journal, rows, jobs, server, mtimes)


def fill_config(template: str, *, state_dir: Path, folder: Path, url: str) -> str:
    def quoted(value: object) -> str:
        return json.dumps(str(value))[1:-1]  # the placeholders sit inside TOML basic strings

    return (template.replace("@STATE_DIR@", quoted(state_dir)).replace("@FOLDER_PATH@", quoted(folder))
            .replace("@SERVER_URL@", quoted(url)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def upgrade(tmp_path: Path) -> Iterator[Upgrade]:
    before = read_before()
    # The fixture's own picture first: what it is, row by row (README.md).
    assert set(before.journal_ids) == {*UNCHANGED, "notes.txt"}
    assert before.jobs == {
        "notes.txt": ("upload", "pending"), "agenda.txt": ("download", "pending"),
        "plan.txt": ("upload", "running"), "report.txt": ("upload", "failed"),
    }
    assert all(before.server_ids[name] == rid for name, rid in before.journal_ids.items())
    assert set(before.journal) == set(before.journal_ids)
    assert all(len(row["remote_hashcode"]) == 64 for row in before.journal.values())  # sha256s, as 0.1.0 sent them
    assert {"agenda.txt", "plan.txt"} <= set(before.server_ids) and "report.txt" not in before.server_ids

    serve, folder, state_dir = tmp_path / "serve", tmp_path / "folder", tmp_path / "state"
    shutil.copytree(FIXTURE / "serve", serve)
    shutil.copytree(FIXTURE / "state", state_dir)
    state_dir.chmod(0o700)  # as syncd made it; git keeps no modes
    # `.keep` only lets git hold the marker's empty tmp/ and trash/: the user's are empty.
    shutil.copytree(FIXTURE / "folder", folder, ignore=shutil.ignore_patterns(".keep"))
    for name, mtime_ns in before.mtimes.items():  # git keeps no mtimes; the journal recorded these
        os.utime(folder / name, ns=(mtime_ns, mtime_ns))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "syncd", "serve", "--data", str(serve), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: healthy(url, server), what="syncd serve to answer")
        config = tmp_path / "config.toml"
        config.write_text(fill_config((FIXTURE / "config.toml.in").read_text(encoding="utf-8"),
                                      state_dir=state_dir, folder=folder, url=url), encoding="utf-8")
        yield Upgrade(folder, state_dir, config, url, before)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err.decode(errors="replace")


def healthy(url: str, server: subprocess.Popen[bytes]) -> bool:
    assert server.poll() is None, "syncd serve exited"
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# -- looking at both sides ------------------------------------------------------------------------------


def chat(url: str) -> list[dict[str, Any]]:
    """The chat's file list, as the service answers it."""
    answer = httpx.get(f"{url}/listChatFiles", params={"chat_id": CHAT, "offset": 0, "limit": 1000},
                       headers={"X-User-Id": USER}, timeout=10).json()
    assert answer["code"] == 0, answer
    items: list[dict[str, Any]] = answer["data"]["items"]
    return items


def chat_ids(url: str) -> dict[str, int]:
    """Name -> id of the chat's files; fails on a name the chat holds twice."""
    files = chat(url)
    names = [f["filename"] for f in files]
    assert len(names) == len(set(names)), f"duplicates in the chat: {sorted(names)}"
    assert all(f["status"] == "ok" for f in files), files
    return {f["filename"]: f["id"] for f in files}


def download(url: str, file_id: int) -> bytes:
    response = httpx.get(f"{url}/downloadFile", params={"file_id": file_id}, headers={"X-User-Id": USER}, timeout=10)
    response.raise_for_status()
    return response.content


def status(up: Upgrade) -> dict[str, Any]:
    result = run_syncd("status", "--json", "-c", up.config)
    assert result.code == 0 and result.doc is not None, result.stderr
    [docs] = result.doc["folders"]
    assert docs["name"] == FOLDER
    folder: dict[str, Any] = docs
    return folder


def counts(folder: dict[str, Any]) -> tuple[int, int, int, int]:
    return folder["files"], folder["pending"], folder["running"], folder["failed"]


def assert_status_before(up: Upgrade) -> None:
    """`syncd status` shows the taken-over journal and queue: 5 tracked files, 2 pending, 1 running
    (the killed worker's row: nothing resumed it yet), 1 failed, and 0.1.0's last pass and error."""
    docs = status(up)
    assert counts(docs) == (5, 2, 1, 1)
    assert docs["last_pass"]
    assert "report.txt" in docs["last_error"]


def assert_journal_migrated(up: Upgrade) -> None:
    """The taken-over journal is schema 3 and says what 0.1.0's did, row by row: each BDD id is
    now its decimal text (`remote_version`), each sha256 hashcode `remote_sha256`, each
    `remote_upload_at` `remote_written_at`; the local side and the rest are as they were."""
    state = open_state(up.state_dir, writer=False)
    try:
        assert state.user_version() == SCHEMA_VERSION >= 3
        journal = state.journal(FOLDER)
        columns = {row[1] for row in state.fetchall("PRAGMA table_info(journal)", ())}
        places = dict(state.fetchall("SELECT name, place FROM folders", ()))
    finally:
        state.close()
    assert {"remote_version", "remote_sha256", "remote_written_at", "remote_floor_seq"} <= columns
    assert not {"remote_id", "remote_hashcode", "remote_upload_at", "remote_floor_id"} & columns
    assert places == {FOLDER: None}  # not known before the first pass of this release
    assert set(journal) == set(up.before.journal)
    for name in up.before.journal:
        assert journal[name] == migrated(up.before, name), name
        assert journal[name].remote_version == str(up.before.journal_ids[name])  # e.g. id 3 -> "3"


def migrated(before: Before, name: str) -> JournalRow:
    """The 0.1.0 journal row of `name` as schema 3 has it."""
    old = before.journal[name]
    return JournalRow(
        name=name,
        local_size=old["local_size"],
        local_mtime_ns=old["local_mtime_ns"],
        local_sha256=old["local_sha256"],
        remote_version=str(old["remote_id"]),
        remote_size=old["remote_size"],
        remote_sha256=old["remote_hashcode"].lower(),
        remote_written_at=old["remote_upload_at"],
        dropped=bool(old["dropped"]),
    )


def assert_queued_work_readable(up: Upgrade) -> None:
    """Every queue row 0.1.0 wrote reads back as the work it asked for (its payload decoded)."""
    before = up.before
    state = open_state(up.state_dir, writer=False)
    try:
        jobs = {job.name: job for job in Queue(state).jobs(FOLDER)}
    finally:
        state.close()
    assert {name: (job.kind, job.state.value) for name, job in jobs.items()} == before.jobs
    actions = {name: jobcodec.loads(job.payload) for name, job in jobs.items()}
    assert {name: a.name for name, a in actions.items()} == {name: name for name in jobs}

    notes = actions["notes.txt"]  # a local edit: uploads over the journal's version
    assert notes.kind is ActionKind.UPLOAD and notes.local is not None and notes.base is not None
    assert notes.local.sha256 == sha256(up.folder / "notes.txt")
    assert notes.supersedes == notes.base.remote_version == str(before.journal_ids["notes.txt"])

    agenda = actions["agenda.txt"]  # new in the chat
    assert agenda.kind is ActionKind.DOWNLOAD and agenda.local is None and agenda.base is None
    assert agenda.remote is not None and agenda.remote.version == str(before.server_ids["agenda.txt"])

    plan = actions["plan.txt"]  # the killed worker's upload, already on the service
    assert plan.kind is ActionKind.UPLOAD and plan.local is not None
    assert plan.local.sha256 == sha256(up.folder / "plan.txt")
    lease_until = jobs["plan.txt"].lease_until
    assert jobs["plan.txt"].claims == 1 and lease_until is not None and lease_until < time.time()  # run out

    report = actions["report.txt"]  # refused by the service (over its limit then)
    assert report.kind is ActionKind.UPLOAD and report.local is not None
    assert jobs["report.txt"].attempts == 1
    assert "413" in (jobs["report.txt"].last_error or "")


def assert_taken_over(up: Upgrade) -> dict[str, int]:
    """Both sides after the queued work was done: one chat file per name, the same bytes as the
    folder's; tracked unchanged files untouched on both sides. The chat's ids, by name."""
    before = up.before
    ids = chat_ids(up.url)
    assert set(ids) == ALL_NAMES
    for name in UNCHANGED:  # not uploaded again ...
        assert ids[name] == before.journal_ids[name], name
        # ... nor downloaded again (a download replaces the file: a new mtime)
        assert (up.folder / name).stat().st_mtime_ns == before.mtimes[name], name
    assert ids["plan.txt"] == before.server_ids["plan.txt"]  # the killed upload is kept, not made twice
    assert ids["agenda.txt"] == before.server_ids["agenda.txt"]
    assert ids["notes.txt"] != before.journal_ids["notes.txt"]
    assert before.journal_ids["notes.txt"] not in ids.values()  # the superseded version was deleted
    local = {p.name: p.read_bytes() for p in up.folder.iterdir() if p.is_file()}
    assert local == {name: download(up.url, file_id) for name, file_id in ids.items()}
    for name in ("notes.txt", "plan.txt", "report.txt"):  # uploaded ones are left as they were
        assert (up.folder / name).stat().st_mtime_ns == before.mtimes[name], name
    assert not any((up.folder / ".syncd" / "tmp").iterdir())
    assert not any((up.folder / ".syncd" / "trash").iterdir())  # nothing was replaced locally
    docs = status(up)
    assert counts(docs) == (len(ALL_NAMES), 0, 0, 0)
    return ids


def assert_converged(up: Upgrade, ids: dict[str, int]) -> None:
    again = reconcile(up.config)
    assert again.code == 0, again.stderr
    docs = again.folder(FOLDER)
    assert docs["actions"] == []
    assert docs["unchanged"] == len(ALL_NAMES)
    assert chat_ids(up.url) == ids
    state = open_state(up.state_dir, writer=False)
    try:
        journal = state.journal(FOLDER)
    finally:
        state.close()
    assert set(journal) == ALL_NAMES
    for name in UNCHANGED:  # the migrated rows of files in sync all along: as migrated
        assert journal[name] == migrated(up.before, name), name


def dry_run_on_a_copy(up: Upgrade) -> Result:
    """`syncd reconcile --dry-run` on the folder, with a copy of the state dir."""
    state_dir = up.state_dir.with_name("state-copy")
    shutil.copytree(up.state_dir, state_dir)
    config = up.config.with_name("config-copy.toml")
    config.write_text(fill_config((FIXTURE / "config.toml.in").read_text(encoding="utf-8"),
                                  state_dir=state_dir, folder=up.folder, url=up.url), encoding="utf-8")
    result = reconcile(config, "--dry-run")
    assert result.code == 0, result.stderr
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def done(result: Result) -> dict[str, str]:
    docs = result.folder(FOLDER)
    assert all(a["error"] is None for a in docs["actions"]), docs["actions"]
    return {name: f"{a['action']} {a['status']}" for name, a in docs.actions.items()}


# -- the tests ---------------------------------------------------------------------------------------------


def test_reconcile_and_retry_take_over_a_0_1_0_state_dir(upgrade: Upgrade) -> None:
    assert_status_before(upgrade)
    assert_journal_migrated(upgrade)
    assert_queued_work_readable(upgrade)

    # A first pass with this release plans nothing for the files 0.1.0 left in sync (their
    # journal rows migrated). Looked at with --dry-run on a copy of the state dir: opening the
    # state takes the killed worker's lease back, which the commands below must find as it was.
    planned = dry_run_on_a_copy(upgrade).folder(FOLDER)
    assert {name: a["action"] for name, a in planned.actions.items()} == {
        "notes.txt": "upload", "agenda.txt": "download", "report.txt": "upload",
    }
    assert planned["unchanged"] == len(UNCHANGED) + 1  # + plan.txt, already up: only recorded

    # The failed job goes back in the queue. (In 0.1.0 a reconcile's full pass would revive it
    # anyway, as it plans the name again; retrying first makes the taken-over failed row the
    # one `retry` acts on.)
    retried = run_syncd("retry", "-c", upgrade.config)
    assert (retried.code, retried.stdout.strip()) == (0, "requeued 1 failed job")
    assert counts(status(upgrade)) == (5, 3, 1, 0)

    result = reconcile(upgrade.config)
    assert result.code == 0, result.stderr
    assert result.doc is not None and result.doc["ok"] is True
    assert done(result) == {
        "notes.txt": "upload done",  # queued local edit
        "agenda.txt": "download done",  # queued chat addition
        "report.txt": "upload done",  # the retried failed job
    }  # plan.txt, the killed worker's upload, is already there: recorded, not uploaded again
    docs = result.folder(FOLDER)
    assert not set(UNCHANGED) & set(docs.actions)  # nothing planned for the files already in sync
    assert (docs["uploaded"], docs["downloaded"], docs["failed"], docs["conflicts"],
            docs["deleted_local"], docs["deleted_remote"]) == (2, 1, 0, 0, 0, 0)
    assert docs["unchanged"] == len(UNCHANGED) + 1  # + plan.txt

    ids = assert_taken_over(upgrade)
    assert status(upgrade)["last_error"] is None
    assert_converged(upgrade, ids)


def test_the_daemon_takes_over_a_0_1_0_state_dir(upgrade: Upgrade) -> None:
    """`syncd run` after an upgrade (systemd restarts it). Its workers start before its first
    pass, so they claim the rows as 0.1.0 left them and run that work as 0.1.0 encoded it
    (`reconcile` plans every name first, which replaces a row's work with a fresh plan)."""
    assert_status_before(upgrade)
    assert_journal_migrated(upgrade)
    daemon = DaemonProcess(upgrade.config)
    try:
        daemon.wait_ready()
        wait_for(lambda: counts(status(upgrade))[1:3] == (0, 0), timeout=30, what="the queued work to be done")
        # A job that failed for good waits for `syncd retry` (next to the running daemon).
        retried = run_syncd("retry", "-c", upgrade.config)
        assert retried.code == 0, retried.stderr
        # 0.1.0's idle workers look at the queue again at least every 30 s.
        wait_for(lambda: counts(status(upgrade)) == (len(ALL_NAMES), 0, 0, 0), timeout=45,
                 what="the failed upload to be retried")
        assert not daemon.find("internal error"), daemon.log_text()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_text()
    ids = assert_taken_over(upgrade)
    assert_converged(upgrade, ids)
