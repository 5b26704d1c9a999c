"""`syncd run` as a real subprocess against the reference file service, with the published
SDK as the other client: watching, polling, drop-in folders, signals, sd_notify and logs.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bdd_file import BddFileClient, BddFileError

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from tests.support.chat import chat_files, leftovers
from tests.support.chat import local_files as local
from tests.support.chat import put as upload
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import write_config

pytestmark = pytest.mark.timeout(120)

CHAT = "daemon-chat"
LOOKS = 5  # listings tried while the daemon keeps replacing files under us
SETTLE = 0.3
FAST = {"poll_interval": 1, "rescan_interval": 3600}


def remote(sdk: BddFileClient, chat: str = CHAT) -> dict[str, bytes]:
    """The chat's files and bytes. The daemon may replace a file between our listing and our
    download of it (the old version is deleted, 404): then we look again."""
    for _ in range(LOOKS):
        try:
            return chat_files(sdk, chat)
        except BddFileError as exc:
            if " 404 " not in str(exc):
                raise
    return chat_files(sdk, chat)


def remote_names(sdk: BddFileClient, chat: str = CHAT) -> list[str]:
    """Every name the chat lists, an upload still under way included."""
    return sorted(info.filename for info in sdk.list_chat_files(chat_id=chat))


def ok_names(sdk: BddFileClient, chat: str = CHAT) -> list[str]:
    """The names of the chat's `ok` files: an upload still under way is listed but is not a file
    yet, so waiting for names alone would race a comparison of contents."""
    return sorted(
        info.filename
        for info in sdk.list_chat_files(chat_id=chat)
        if str(getattr(info.status, "value", info.status)) == "ok"
    )


class Setup:
    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp = tmp_path
        self.url = url
        self.config = tmp_path / "syncd.toml"
        self.daemons: list[DaemonProcess] = []

    def folder(self, name: str) -> Path:
        return self.tmp / name

    def write(self, folders: list[dict[str, object]], **daemon: object) -> Path:
        for f in folders:
            f.setdefault("path", str(self.folder(str(f["name"]))))
            f.setdefault("chat_id", CHAT)
        return write_config(
            self.config, state_dir=self.tmp / "state", url=self.url, folders=folders, settle=SETTLE,
            workers=2, daemon={**FAST, **daemon},
        )

    def start(self, env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(self.config, env)
        self.daemons.append(daemon)
        daemon.wait_ready()
        return daemon

    def cleanup(self) -> None:
        for d in self.daemons:
            d.kill()


@pytest.fixture
def setup(tmp_path: Path, server_url: str) -> Iterator[Setup]:
    s = Setup(tmp_path, server_url)
    yield s
    s.cleanup()


def put(sdk: BddFileClient, name: str, data: bytes, chat: str = CHAT) -> int:
    return upload(sdk, chat, name, data)


# -- two-way ---------------------------------------------------------------------------------------


def test_local_and_remote_changes_flow_both_ways(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a", "delete": True, "max_delete": 100}])
    folder = setup.folder("a")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stays.txt").write_bytes(b"kept throughout")  # a chat emptied altogether pauses instead
    d = setup.start()
    wait_for(lambda: remote(sdk).get("stays.txt") == b"kept throughout", what="the first file to go up")

    (folder / "new.txt").write_bytes(b"made here")
    wait_for(lambda: remote(sdk).get("new.txt") == b"made here", what="the local file to go up")

    put(sdk, "theirs.txt", b"made there")
    wait_for(lambda: local(folder).get("theirs.txt") == b"made there", what="the remote file to come down")

    (folder / "new.txt").write_bytes(b"edited here")
    wait_for(lambda: remote(sdk).get("new.txt") == b"edited here", what="the edit to go up")

    (folder / "theirs.txt").unlink()
    wait_for(lambda: "theirs.txt" not in remote(sdk), what="the deletion to go up")

    [old] = [i for i in sdk.list_chat_files(chat_id=CHAT) if i.filename == "new.txt"]
    sdk.delete(file_id=old.id)
    wait_for(lambda: not (folder / "new.txt").exists(), what="the remote deletion to reach the folder")
    assert any(p.name == "new.txt" for p in (folder / ".syncd" / "trash").rglob("*"))  # trashed, not lost

    # Echo: syncd's own download and trash move came back as nothing.
    assert d.transfers("theirs.txt", "upload") == []
    assert len(d.transfers("new.txt", "upload")) == 2
    assert d.stop() == 0
    assert leftovers(folder) == []


def test_two_folders_on_one_chat_mirror_each_other(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "alice"}, {"name": "bob"}])
    d = setup.start()
    (setup.folder("alice") / "from-alice.txt").write_bytes(b"hi bob")
    (setup.folder("bob") / "from-bob.txt").write_bytes(b"hi alice")
    both = {"from-alice.txt": b"hi bob", "from-bob.txt": b"hi alice"}
    wait_for(lambda: local(setup.folder("alice")) == both and local(setup.folder("bob")) == both, what="the mirror")
    wait_for(lambda: remote(sdk) == both, what="the chat")
    # Each file went up exactly once: the other folder's download did not echo back.
    assert len(d.find("transfer", action="upload", outcome="done")) == 2
    assert d.stop() == 0


def test_a_conflict_keeps_both_versions(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}], poll_interval=3600)  # only the local edit's fresh listing sees theirs
    folder = setup.folder("a")
    d = setup.start()
    (folder / "doc.txt").write_bytes(b"v1")
    wait_for(lambda: remote(sdk).get("doc.txt") == b"v1", what="v1 up")
    [v1] = sdk.list_chat_files(chat_id=CHAT)
    put(sdk, "doc.txt", b"theirs")
    sdk.delete(file_id=v1.id)
    (folder / "doc.txt").write_bytes(b"mine")

    def resolved() -> bool:
        files = local(folder)
        return files.get("doc.txt") == b"theirs" and b"mine" in files.values() and len(remote(sdk)) == 2
    wait_for(resolved, what="the conflict resolved")
    copy = next(n for n, b in local(folder).items() if b == b"mine")
    assert "(conflicted copy" in copy
    assert remote(sdk) == {"doc.txt": b"theirs", copy: b"mine"}
    assert len(d.transfers(copy, "upload")) == 0  # the copy went up inside the conflict, never echoed
    assert d.stop() == 0


def test_sigusr1_runs_a_full_pass_now(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}], poll_interval=3600)
    folder = setup.folder("a")
    d = setup.start()
    put(sdk, "late.txt", b"uploaded elsewhere")
    (folder / "barrier.txt").write_bytes(b"b")
    wait_for(lambda: "barrier.txt" in remote_names(sdk), what="the daemon busy with something else")
    assert not (folder / "late.txt").exists()  # no poll for an hour
    d.signal(signal.SIGUSR1)
    wait_for(lambda: local(folder).get("late.txt") == b"uploaded elsewhere", what="the pass")
    assert d.find("full pass requested")
    assert d.stop() == 0


# -- settling --------------------------------------------------------------------------------------


def test_editor_save_patterns_upload_the_final_bytes_once(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}])
    folder = setup.folder("a")
    d = setup.start()

    # write a temp file, then rename it over the name (vim, most editors)
    tmp = folder / ".notes.txt.swp"
    tmp.write_bytes(b"draft")
    tmp.write_bytes(b"saved by rename")
    os.replace(tmp, folder / "notes.txt")
    # truncate and rewrite in place
    with open(folder / "inplace.txt", "wb") as f:
        f.write(b"first")
    with open(folder / "inplace.txt", "r+b") as f:
        f.truncate(0)
        f.write(b"rewritten in place")
    # many small appends, each sooner than the settle time
    with open(folder / "log.txt", "ab") as f:
        for i in range(10):
            f.write(f"line {i}\n".encode())
            f.flush()
            time.sleep(SETTLE / 4)  # the writer's pace: a user typing, not a wait for syncd
    final = {"notes.txt": b"saved by rename", "inplace.txt": b"rewritten in place",
             "log.txt": b"".join(f"line {i}\n".encode() for i in range(10))}
    wait_for(lambda: remote(sdk) == final, what="the final bytes")
    for name in final:
        assert len(d.transfers(name, "upload")) == 1, d.transfers(name)
    assert remote_names(sdk) == sorted(final)  # no temp file went up
    assert d.stop() == 0


def test_a_file_written_slowly_is_never_uploaded_partially(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}])
    folder = setup.folder("a")
    d = setup.start()
    chunks = [os.urandom(4096) for _ in range(12)]
    with open(folder / "slow.bin", "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(SETTLE / 3)  # ~1.2 s of writing, never quiet for a whole settle period
            assert "slow.bin" not in remote_names(sdk)
    wait_for(lambda: remote(sdk).get("slow.bin") == b"".join(chunks), what="the whole file")
    assert len(d.transfers("slow.bin", "upload")) == 1
    assert d.stop() == 0


# -- drop-in folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("after", ["keep", "delete", "move:sent"])
def test_drop_in_folder(setup: Setup, sdk: BddFileClient, after: str) -> None:
    setup.write([{"name": "box", "mode": "upload", "after_upload": after, "delete": True}])
    box = setup.folder("box")
    d = setup.start()
    (box / "report.pdf").write_bytes(b"%PDF report")
    wait_for(lambda: remote(sdk) == {"report.pdf": b"%PDF report"}, what="the upload")
    if after == "keep":
        assert local(box) == {"report.pdf": b"%PDF report"}
    elif after == "delete":
        wait_for(lambda: not (box / "report.pdf").exists(), what="the file removed")
    else:
        wait_for(lambda: (box / "sent" / "report.pdf").exists(), what="the file moved")
        assert not (box / "report.pdf").exists()
        assert (box / "sent" / "report.pdf").read_bytes() == b"%PDF report"
    # A drop-in removal is not a deletion: after several polls the remote file is still there.
    polls = len(d.find("watching")) and time.monotonic()
    wait_for(lambda: time.monotonic() - polls > 2.5, what="a few polls")  # poll_interval is 1 s
    assert remote(sdk) == {"report.pdf": b"%PDF report"}
    assert len(d.transfers("report.pdf", "upload")) == 1
    assert d.stop() == 0


# -- signals ---------------------------------------------------------------------------------------


def test_sigterm_mid_transfer_exits_cleanly_and_a_restart_finishes(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}])
    folder = setup.folder("a")
    files = {f"f{i:03d}.bin": os.urandom(64 * 1024) for i in range(150)}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    d = setup.start()
    wait_for(lambda: d.find("transfer"), what="transfers to start")
    started = time.monotonic()
    assert d.stop(timeout=20) == 0
    assert time.monotonic() - started < 15  # GRACE (10 s) plus a margin
    assert leftovers(folder) == []
    assert local(folder) == files  # nothing local was touched

    d2 = setup.start()
    wait_for(lambda: set(ok_names(sdk)) == set(files), timeout=60, what="the rest uploaded")
    try:
        assert remote(sdk) == files  # exactly one copy each, whole
    except AssertionError:
        print("FIRST\n" + d.log_text() + "\nSECOND\n" + d2.log_text())
        for info in sdk.list_chat_files(chat_id=CHAT):
            print("REMOTE", info.id, info.filename, info.upload_at, info.hashcode[:8])
        raise
    assert d2.stop() == 0


def test_sigkill_then_restart_finishes_without_duplicates(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a"}])
    folder = setup.folder("a")
    for i in range(40):
        put(sdk, f"down{i:02d}.bin", os.urandom(32 * 1024))
    ups = {f"up{i:02d}.bin": os.urandom(32 * 1024) for i in range(40)}
    folder.mkdir()
    for name, data in ups.items():
        (folder / name).write_bytes(data)
    d = setup.start()
    wait_for(lambda: len(d.find("transfer")) >= 10, what="some transfers")
    d.kill()

    d2 = setup.start()
    wait_for(lambda: len(local(folder)) == 80 and len(ok_names(sdk)) == 80, timeout=60, what="convergence")
    assert remote(sdk) == local(folder)
    assert d2.stop() == 0
    assert leftovers(folder) == []


def test_sighup_adds_and_removes_folders_and_refuses_a_bad_config(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a", "chat_id": "chat-a"}])
    d = setup.start()
    (setup.folder("a") / "one.txt").write_bytes(b"1")
    wait_for(lambda: remote(sdk, "chat-a") == {"one.txt": b"1"}, what="folder a working")

    good = setup.config.read_text()
    setup.config.write_text(good + "\n[[folders]]\nname = \"oops\"\nunknown_key = 1\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.find("config reload refused; keeping the running config"), what="the refusal")
    refusal = d.find("config reload refused; keeping the running config")[0]
    assert "unknown_key" in refusal["error"]

    setup.write([{"name": "b", "chat_id": "chat-b"}])  # a removed, b added
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.find("config reloaded"), what="the reload")
    (setup.folder("b") / "two.txt").write_bytes(b"2")
    wait_for(lambda: remote(sdk, "chat-b") == {"two.txt": b"2"}, what="folder b working")
    (setup.folder("a") / "ignored-now.txt").write_bytes(b"x")
    (setup.folder("b") / "barrier.txt").write_bytes(b"b")
    wait_for(lambda: "barrier.txt" in remote(sdk, "chat-b"), what="a later change in b")
    assert remote(sdk, "chat-a") == {"one.txt": b"1"}  # a is no longer synced
    assert d.stop() == 0


def test_sd_notify_messages_reach_the_notify_socket(setup: Setup, tmp_path: Path) -> None:
    setup.write([{"name": "a"}])
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    try:
        d = setup.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        seen: list[str] = []

        def until(done: Any) -> None:
            while not done():
                seen.append(sock.recv(4096).decode())
        until(lambda: sum(m == "WATCHDOG=1" for m in seen) >= 3)  # every 0.2 s, half of WATCHDOG_USEC
        assert seen.index("READY=1") < seen.index("WATCHDOG=1")
        status = [m for m in seen if m.startswith("STATUS=")]
        assert status and "watching 1 folder;" in status[0], seen
        d.signal(signal.SIGTERM)
        until(lambda: "STOPPING=1" in seen)
        assert d.proc.wait(20) == 0
    finally:
        sock.close()


def test_a_notify_socket_nobody_reads_never_stalls_the_daemon(setup: Setup, sdk: BddFileClient, tmp_path: Path) -> None:
    """A supervisor that stops reading: its queue fills, the daemon drops what does not fit
    (one warning), goes on syncing, and still stops on SIGTERM."""
    setup.write([{"name": "a"}])
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.bind(path)
        d = setup.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # a ping every 0.05 s

        # Fill the queue ourselves (with the daemon's pings) until it refuses: from now on
        # every message the daemon sends meets a full queue.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
            filler.setblocking(False)

            def full() -> bool:
                try:
                    filler.sendto(b"X_FILLER=1", path)
                except BlockingIOError:
                    return True
                return False
            wait_for(full, what="the notify queue to fill")

        (setup.folder("a") / "after.txt").write_bytes(b"synced with the queue full")
        wait_for(lambda: remote(sdk).get("after.txt") == b"synced with the queue full",
                 what="the daemon to go on syncing while its notify socket is full")
        assert d.stop(timeout=20) == 0
    drops = [e for e in d.events if "sd_notify" in str(e.get("event")) and e.get("level") == "warning"]
    assert len(drops) == 1, d.log_text()
    assert d.find("stopped")


# -- logs ------------------------------------------------------------------------------------------


def test_logs_are_json_lines_and_never_hold_the_api_key(tmp_path: Path) -> None:
    secret = "s3cret-Key-that-must-not-leak"
    server = ServerThread(build_app(tmp_path / "data", api_key=secret)).start()
    try:
        setup = Setup(tmp_path, server.url)
        setup.write([{"name": "a"}])
        text = setup.config.read_text().replace("timeout = 10", 'timeout = 10\napi_key_env = "SYNCD_TEST_KEY"')
        setup.config.write_text(text)
        d = setup.start(env={"SYNCD_TEST_KEY": secret})
        (setup.folder("a") / "x.txt").write_bytes(b"x")
        wait_for(lambda: d.transfers("x.txt", "upload"), what="the upload")
        assert d.stop() == 0
        lines = [line for line in d.log_text().splitlines() if line.strip()]
        assert lines and len(d.events) == len(lines)  # every line is JSON
        assert secret not in d.log_text()
        event: dict[str, Any] = d.transfers("x.txt", "upload")[0]
        assert {"folder", "name", "bytes", "seconds", "outcome"} <= set(event)
    finally:
        server.stop()
