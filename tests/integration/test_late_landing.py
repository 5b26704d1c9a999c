"""A request that lands late: an upload the killed process had fully sent reaches the service
after the restarted process looked for it and uploaded the file again.

SPEC, "No duplicates" and "Remote duplicates": before re-uploading after an ambiguous failure,
syncd looks for the copy the failed attempt created (`find_copy`). A proxy that buffers request
bodies (nginx does by default) can still deliver the first attempt *after* that look - when the
process that sent it is long dead - and the chat then holds two identical copies of one name.
That cannot be prevented from the client side; what is required is that it does not last:
several `ok` versions of one name with identical size and sha256 are one file, and syncd keeps
one and deletes the others whenever it sees them. The one kept is the newest, on every machine
alike (two machines that each recorded a different copy must not delete each other's); the
journal then follows it, with no transfer.

Each test stages that moment exactly with `HoldProxy` in front of the reference service: the
first upload of the file is held (received whole, not forwarded, not answered), `syncd
reconcile` is SIGKILLed while it waits for the answer, a second `syncd reconcile` finds no copy
and uploads the file itself, then the proxy delivers the held request: two identical copies.
Then syncd - one more `reconcile`, or the daemon - must leave one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bdd_file import BddFileClient
from bdd_file.models import FileInfo

from tests.support.chat import chat_files
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.holdproxy import HoldProxy
from tests.support.syncd_cli import COMMAND_TIMEOUT, Result, reconcile, write_config

pytestmark = pytest.mark.timeout(60)

CHAT = "late-chat"
FOLDER = "f"
NAME = "report.txt"
DATA = b"quarterly numbers, the version everyone has\n" * 20
COUNTS = ("uploaded", "downloaded", "deleted_local", "deleted_remote", "conflicts", "failed")
#: What removing a late copy must not count as: it is neither a transfer nor a conflict.
NO_TRANSFER = ("uploaded", "downloaded", "deleted_local", "conflicts", "failed")


@dataclass
class Scene:
    folder: Path
    config: Path
    proxy: HoldProxy
    sdk: BddFileClient

    def copies(self) -> list[FileInfo]:
        """The chat's files named NAME, oldest first."""
        return sorted((f for f in self.sdk.list_chat_files(chat_id=CHAT) if f.filename == NAME), key=lambda f: f.id)

    def reconcile(self) -> Result:
        result = reconcile(self.config)
        assert result.code == 0, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr[-3000:]}"
        assert result.doc is not None and result.doc["ok"] is True
        return result

    def local_stat(self) -> tuple[int, int, int, bytes]:
        """What would show the local file was touched: inode, size, mtime, bytes."""
        path = self.folder / NAME
        st = path.stat()
        return st.st_ino, st.st_size, st.st_mtime_ns, path.read_bytes()


@pytest.fixture
def scene(tmp_path: Path, server_url: str, sdk: BddFileClient) -> Iterator[Scene]:
    folder = tmp_path / FOLDER
    folder.mkdir()
    with HoldProxy(server_url) as proxy:
        config = write_config(
            tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=proxy.url,
            folders=[{"name": FOLDER, "path": folder, "chat_id": CHAT}], daemon={"poll_interval": 1},
        )
        yield Scene(folder, config, proxy, sdk)


def land_late(scene: Scene) -> tuple[int, int]:
    """Stage the late landing; the ids of syncd's own copy and of the late one."""
    (scene.folder / NAME).write_bytes(DATA)
    scene.proxy.hold_upload(NAME)

    # 1. The first process sends the upload whole; the proxy keeps it. Then it dies.
    first = subprocess.Popen(
        [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(scene.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        held = scene.proxy.wait_until_held()
        assert first.poll() is None, "the first reconcile ended before it was killed"
    finally:
        first.kill()
        first.wait(COMMAND_TIMEOUT)
    assert held.body.endswith(b"--\r\n") and DATA in held.body  # the whole request arrived
    assert scene.copies() == []  # ... and the service has not seen it

    # 2. The next process looks for a copy, finds none, and uploads the file itself.
    second = scene.reconcile().folder(FOLDER)
    assert second.pairs == {(NAME, "upload")}
    [ours] = scene.copies()

    # 3. The proxy delivers the dead process's request: a second, identical copy.
    [(status, _)] = scene.proxy.release()
    assert status == 200
    copies = scene.copies()
    assert [c.id for c in copies][0] == ours.id and len(copies) == 2
    assert {(c.size, c.hashcode, c.status.value) for c in copies} == {(ours.size, ours.hashcode, "ok")}
    return ours.id, copies[1].id


def assert_one_copy_left(scene: Scene, ours: int, late: int) -> None:
    copies = scene.copies()
    assert len(copies) == 1, f"identical copies of {NAME} left on the remote: {[c.id for c in copies]}"
    assert copies[0].id == late, f"kept {copies[0].id}, not the newest copy ({late}; ours was {ours})"
    assert chat_files(scene.sdk, CHAT) == {NAME: DATA}


def assert_converged(scene: Scene) -> None:
    """A further pass plans nothing and changes neither side."""
    before = ([c.id for c in scene.copies()], scene.local_stat())
    report = scene.reconcile().folder(FOLDER)
    assert report["actions"] == []
    assert {k: report[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert ([c.id for c in scene.copies()], scene.local_stat()) == before


def test_reconcile_deletes_the_copy_that_landed_late(scene: Scene) -> None:
    ours, late = land_late(scene)
    local_before = scene.local_stat()

    report = scene.reconcile().folder(FOLDER)

    # Identical copies are one file: nothing to transfer, nothing in conflict.
    assert {k: report[k] for k in NO_TRANSFER} == dict.fromkeys(NO_TRANSFER, 0), report.raw
    assert_one_copy_left(scene, ours, late)
    assert scene.local_stat() == local_before  # the local file untouched
    assert sorted(p.name for p in scene.folder.iterdir()) == [".syncd", NAME]  # no conflicted copy
    assert_converged(scene)


def test_the_daemon_deletes_the_copy_that_landed_late(scene: Scene) -> None:
    ours, late = land_late(scene)
    local_before = scene.local_stat()

    daemon = DaemonProcess(scene.config)
    try:
        daemon.wait_ready()
        wait_for(lambda: len(scene.copies()) == 1, timeout=10,
                 what=f"the daemon to delete the identical late copy of {NAME} (ids {ours}, {late})")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert_one_copy_left(scene, ours, late)
    assert scene.local_stat() == local_before
    assert sorted(p.name for p in scene.folder.iterdir()) == [".syncd", NAME]
    assert_converged(scene)
