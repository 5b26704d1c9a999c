"""Trouble on the local side: unreadable files, files gone before upload, a full disk.

The command runs for real in a subprocess against the reference file service
(except where the timing cannot be arranged from outside: then the executor
is driven directly, still with the real client, server and state database).
"""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from bdd_file import BddFileClient

from syncd.config import FolderConfig
from syncd.core.model import Action, ActionKind
from syncd.local.folderfs import FolderFS, LocalChanged
from syncd.local.scan import scan_folder
from syncd.remote.bdd.client import BddRemote
from syncd.state.db import open_state
from syncd.state.queue import JobState, Queue
from syncd.sync.execute import Executor
from tests.support import chat
from tests.support.chat import chat_files, leftovers
from tests.support.chat import local_files as local
from tests.support.privileges import modes_bite
from tests.support.syncd_cli import reconcile, write_config

pytestmark = pytest.mark.timeout(120)

CHAT = "chat-trouble"
FOLDER = "f"
MiB = 1024 * 1024


def put(sdk: BddFileClient, name: str, data: bytes) -> int:
    return chat.put(sdk, CHAT, name, data)


def remote(sdk: BddFileClient) -> dict[str, bytes]:
    return chat_files(sdk, CHAT)


def config_for(base: Path, folder: Path, url: str) -> Path:
    return write_config(
        base / "syncd.toml", state_dir=base / "state", url=url, settle=0,
        folders=[{"name": FOLDER, "path": folder, "chat_id": CHAT}],
    )


# -- an unreadable file ----------------------------------------------------------------------------


@pytest.fixture
def unprivileged(tmp_path: Path) -> dict[str, Any]:
    """Popen arguments under which file modes really stop the command; skip when impossible."""
    return modes_bite(tmp_path)


def test_an_unreadable_file_fails_alone_and_is_uploaded_once_readable(
    tmp_path: Path, unprivileged: dict[str, Any], server_url: str, sdk: BddFileClient
) -> None:
    base, popen = tmp_path, unprivileged
    folder = base / "f"
    folder.mkdir()
    (base / "state").mkdir()
    (folder / "fine.txt").write_bytes(b"readable")
    secret = folder / "secret.txt"
    secret.write_bytes(b"top secret")
    # A file present on both sides, different content, locally unreadable: never downloaded over.
    locked = folder / "locked.txt"
    locked.write_bytes(b"local, unreadable")
    put(sdk, "locked.txt", b"remote version")
    config = config_for(base, folder, server_url)
    secret.chmod(0o000)
    locked.chmod(0o000)
    try:
        first = reconcile(config, **popen)
    finally:
        secret.chmod(0o644)
        locked.chmod(0o644)

    assert first.code != 0, first.stdout
    assert first.doc is not None and first.doc["ok"] is False, first.stderr
    report = first.folder(FOLDER)
    actions = report.actions
    for name in ("secret.txt", "locked.txt"):
        assert actions[name]["status"] == "failed"
        assert "cannot read" in actions[name]["error"] and "ermission denied" in actions[name]["error"]
    assert actions["fine.txt"] == {"name": "fine.txt", "action": "upload", "status": "done", "error": None}
    assert report["failed"] == 2
    # Neither side lost or overwrote anything for the unreadable names.
    assert remote(sdk) == {"fine.txt": b"readable", "locked.txt": b"remote version"}
    assert local(folder) == {"fine.txt": b"readable", "secret.txt": b"top secret", "locked.txt": b"local, unreadable"}
    assert leftovers(folder) == []

    # Readable again: the next pass uploads it (and resolves the other as a conflict, nothing lost).
    second = reconcile(config, **popen)
    assert second.code == 0, second.stdout + second.stderr
    assert second.folder(FOLDER).pairs == {("secret.txt", "upload"), ("locked.txt", "conflict")}
    now_local = local(folder)
    assert now_local["secret.txt"] == b"top secret" and now_local["locked.txt"] == b"remote version"
    assert sorted(now_local.values()) == sorted([b"readable", b"top secret", b"remote version", b"local, unreadable"])
    assert remote(sdk) == now_local
    third = reconcile(config, **popen)
    assert third.code == 0 and third.folder(FOLDER)["actions"] == []


# -- a file deleted between listing and upload ------------------------------------------------------


def test_a_file_deleted_after_the_plan_is_not_uploaded(tmp_path: Path, server_url: str, sdk: BddFileClient) -> None:
    folder = tmp_path / "f"
    FolderFS(folder).create_marker()  # a folder a first pass has set up
    (folder / "gone.txt").write_bytes(b"here a moment ago")
    [local_file] = scan_folder(folder, (), {}).files.values()
    action = Action(ActionKind.UPLOAD, "gone.txt", local=local_file)
    state = open_state(tmp_path / "state")
    client = BddRemote(server_url, "u", timeout=10)
    try:
        executor = Executor(FolderConfig(name=FOLDER, path=folder, remote="r", place=CHAT), client, state, settle=0)
        (folder / "gone.txt").unlink()
        for attempts in (0, 1):  # a first try and a retry after an ambiguous failure
            with pytest.raises(LocalChanged):
                executor.run(action, attempts=attempts)
        assert state.journal(FOLDER) == {}
    finally:
        client.close()
        state.close()
    assert sdk.list_chat_files(chat_id=CHAT) == []


# -- a full disk during a download -----------------------------------------------------------------


def test_a_full_disk_fails_the_download_cleanly_and_it_is_retried_later(
    tmp_path: Path, server_url: str, sdk: BddFileClient
) -> None:
    limit = 1 * MiB
    big = os.urandom(3 * MiB)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "mine.txt").write_bytes(b"my own file")
    before = (folder / "mine.txt").stat()
    put(sdk, "big.bin", big)
    config = config_for(tmp_path, folder, server_url)

    def small_disk() -> None:  # writes past `limit` fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = reconcile(config, preexec_fn=small_disk)

    assert full.code != 0, full.stdout
    assert full.doc is not None and full.doc["ok"] is False, full.stderr
    report = full.folder(FOLDER)
    failed = report.actions["big.bin"]
    assert (failed["action"], failed["status"]) == ("download", "failed")
    assert "big.bin" in failed["error"] and "too large" in failed["error"].lower(), failed["error"]
    assert report.actions["mine.txt"]["status"] == "done"  # the upload (a read) was not affected
    assert report["failed"] == 1
    assert (folder / "mine.txt").read_bytes() == b"my own file"
    after = (folder / "mine.txt").stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert not (folder / "big.bin").exists()  # no partial file under the real name
    assert leftovers(folder) == []

    # The item stays queued with a persistent backoff (SPEC, "Retries"), not failed for good.
    state = open_state(tmp_path / "state", writer=False)
    try:
        [job] = [j for j in Queue(state).jobs(FOLDER) if j.name == "big.bin"]
        assert job.state is JobState.PENDING and job.attempts >= 1
        assert "File too large" in (job.last_error or "")
        assert time.time() < job.next_try <= time.time() + 3600
    finally:
        state.close()

    # Space again: a reconcile someone runs now tries at once, whatever the backoff said.
    retried = reconcile(config)
    assert retried.code == 0, retried.stdout + retried.stderr
    assert retried.folder(FOLDER).actions["big.bin"]["status"] == "done"
    assert local(folder) == {"mine.txt": b"my own file", "big.bin": big}
    assert remote(sdk) == {"mine.txt": b"my own file", "big.bin": big}
    assert leftovers(folder) == []
    again = reconcile(config)
    assert again.code == 0 and again.folder(FOLDER)["actions"] == []
