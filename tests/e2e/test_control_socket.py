"""The running daemon's control socket, used from other processes as a user would: `syncd
events`, `retry`, `reconcile` (and its dry run) and `status` next to `syncd run`, the local API
itself (hold, release, a pass now), what a hostile client gets, and who may connect at all.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bdd_file import BddFileClient

from syncd.control.address import connect
from syncd.control.client import DaemonClient
from syncd.server.runner import ServerThread
from tests.support.chat import chat_files, put
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.privileges import as_nobody
from tests.support.syncd_cli import run_syncd, write_config

pytestmark = pytest.mark.timeout(120)

CHAT = "control-chat"
#: Nothing but the watcher, the control socket and the start-up pass moves this daemon.
QUIET = {"poll_interval": 300, "rescan_interval": 3600}


class EventsReader:
    """`syncd events --json` as a second process, its lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "events", "--json", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(lambda: self.find("hello"), what="the events stream to connect")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == event
                and all(e.get(k) == v for k, v in fields.items())]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path, file_server: ServerThread) -> Iterator[tuple[Path, DaemonProcess]]:
    (tmp_path / "docs").mkdir()
    config = write_config(
        tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=file_server.url, settle=0.3, workers=2,
        folders=[{"name": "docs", "path": tmp_path / "docs", "chat_id": CHAT}], daemon=QUIET,
    )
    process = DaemonProcess(config)
    process.wait_ready()
    yield config, process
    process.kill()


def test_events_show_transfers_and_a_retry_is_taken_at_once(
    tmp_path: Path, file_server: ServerThread, daemon: tuple[Path, DaemonProcess], sdk: BddFileClient
) -> None:
    config, process = daemon
    service = file_server.app.state.service
    service.max_upload_size = 1000  # big.bin is refused (413: failed, not retried) until lifted
    reader = EventsReader(config)
    try:
        (tmp_path / "docs" / "small.txt").write_bytes(b"fits")
        (tmp_path / "docs" / "big.bin").write_bytes(b"x" * 5000)
        wait_for(lambda: reader.find("transfer", name="small.txt", action="upload", status="done"),
                 what="the upload's event")
        [failed] = wait_for(lambda: reader.find("transfer", name="big.bin", status="failed"),
                            what="the refused upload's event")
        assert "limit" in failed["error"] and failed["folder"] == "docs"

        service.max_upload_size = None
        started = time.monotonic()
        retried = run_syncd("retry", "-c", config)
        assert retried.code == 0, retried.stderr
        assert retried.stdout.startswith("requeued 1 failed job") and "running daemon" in retried.stdout
        # The daemon polls every 300 s and rescans hourly: only the handed-over retry moves it.
        wait_for(lambda: reader.find("transfer", name="big.bin", status="done"), what="the retried upload")
        print(f"retry to upload done: {time.monotonic() - started:.2f} s")
        assert reader.find("retry", requeued=1)
        assert chat_files(sdk, CHAT) == {"small.txt": b"fits", "big.bin": b"x" * 5000}
    finally:
        assert process.stop() == 0
        reader.proc.wait(timeout=30)  # the stream ends with the daemon
        reader.close()
    assert reader.proc.returncode == 0


def test_reconcile_is_handed_to_the_daemon_and_a_dry_run_runs_beside_it(
    tmp_path: Path, daemon: tuple[Path, DaemonProcess], sdk: BddFileClient
) -> None:
    config, process = daemon
    put(sdk, CHAT, "theirs.txt", b"made there")  # the daemon would not look for 300 s

    dry = run_syncd("reconcile", "--dry-run", "--json", "-c", config)
    assert dry.code == 0, dry.stderr
    assert dry.folder("docs").actions["theirs.txt"] == {
        "name": "theirs.txt", "action": "download", "status": "planned", "error": None}
    assert not (tmp_path / "docs" / "theirs.txt").exists()  # planned, not done

    done = run_syncd("reconcile", "--json", "-c", config)
    assert done.code == 0, done.stderr
    assert "running daemon" in done.stderr
    assert done.folder("docs").actions["theirs.txt"]["status"] == "done"
    assert (tmp_path / "docs" / "theirs.txt").read_bytes() == b"made there"
    assert process.transfers("theirs.txt", "download")  # the daemon did it, not the command

    human = run_syncd("reconcile", "-c", config)
    assert human.code == 0 and "docs: 0 uploaded, 0 downloaded" in human.stdout


def test_a_held_folder_gets_no_work_until_released(
    tmp_path: Path, daemon: tuple[Path, DaemonProcess], sdk: BddFileClient
) -> None:
    config, _ = daemon
    with DaemonClient(tmp_path / "state") as client:
        assert client.hold("docs", "moving the disk") is True
        (tmp_path / "docs" / "while-held.txt").write_bytes(b"wait for me")
        assert client.pass_now(["docs"]) == []  # a held folder gets no pass
        status = client.status(["docs"])
        assert status["folders"][0]["held"] == "moving the disk"
        refused = run_syncd("reconcile", "--folder", "docs", "-c", config)
        assert refused.code == 1 and "held" in refused.stderr
        assert "while-held.txt" not in chat_files(sdk, CHAT)

        assert client.release("docs") is True
        wait_for(lambda: chat_files(sdk, CHAT).get("while-held.txt") == b"wait for me",
                 what="the held file to go up once released")
        assert client.status()["folders"][0]["held"] is None


def test_hostile_requests_are_refused_and_the_daemon_keeps_serving(
    tmp_path: Path, daemon: tuple[Path, DaemonProcess]
) -> None:
    with DaemonClient(tmp_path / "state") as client:
        http = client._http
        assert http.post("/retry", content=b"{not json").status_code == 400
        assert http.post("/retry", json=["docs"]).status_code == 400
        assert http.post("/retry", json={"folders": "docs"}).status_code == 400
        assert http.post("/retry", json={"folders": ["nope"]}).status_code == 404
        assert http.post("/hold", json={}).status_code == 400
        assert http.post("/reconcile", json={"max_delete": 101}).status_code == 400
        assert http.post("/pass", content=b"x" * (256 * 1024)).status_code == 400
        assert http.get("/nothing-here").status_code == 404
        assert http.delete("/status").status_code == 405
        assert http.get("/health").json()["pid"] > 0
        assert client.status()["daemon"]["running"] is True
    _, process = daemon
    # The control server's own start-up lines are debug detail in the daemon's log.
    assert not [line for line in process.raw if "Uvicorn running" in line or "Started server process" in line]


def test_the_socket_is_the_users_alone(tmp_path: Path, daemon: tuple[Path, DaemonProcess]) -> None:
    state = tmp_path / "state"
    sock = state / "control.sock"
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    if os.geteuid() == 0:
        # Even with the state dir opened up behind syncd's back, the socket (0600) refuses another uid.
        state.chmod(0o711)
        for parent in [tmp_path, *tmp_path.parents]:
            parent.chmod(parent.stat().st_mode | 0o011)
        seen = as_nobody(CONNECT, str(sock))
        assert seen == {"connect": "EACCES"}, seen


CONNECT = """
import errno, json, socket, sys
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sys.argv[1])
    print(json.dumps({"connect": "ok"}))
except OSError as exc:
    print(json.dumps({"connect": errno.errorcode.get(exc.errno, str(exc.errno))}))
"""


def test_commands_without_a_daemon_do_the_work_themselves(tmp_path: Path, file_server: ServerThread) -> None:
    (tmp_path / "docs").mkdir()
    config = write_config(
        tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=file_server.url,
        folders=[{"name": "docs", "path": tmp_path / "docs", "chat_id": CHAT}],
    )
    assert connect(tmp_path / "state") is None
    events = run_syncd("events", "-c", config)
    assert events.code == 1 and "no daemon is running" in events.stderr
    (tmp_path / "docs" / "a.txt").write_bytes(b"a")
    done = run_syncd("reconcile", "--json", "-c", config)
    assert done.code == 0 and done.folder("docs").actions["a.txt"]["status"] == "done"
    sock_path = tmp_path / "state" / "control.sock"
    if len(os.fsencode(str(sock_path))) <= 107:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
            leftover.bind(str(sock_path))  # bound, never listening: what a killed daemon leaves
            assert connect(tmp_path / "state") is None


def test_a_dry_run_creates_nothing_not_even_a_new_folder(
    tmp_path: Path, file_server: ServerThread, sdk: BddFileClient
) -> None:
    put(sdk, CHAT, "theirs.txt", b"made there")
    config = write_config(
        tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=file_server.url,
        folders=[{"name": "docs", "path": tmp_path / "docs", "chat_id": CHAT}],
    )
    dry = run_syncd("reconcile", "--dry-run", "--json", "-c", config)
    assert dry.code == 0, dry.stderr
    assert dry.folder("docs").actions["theirs.txt"]["status"] == "planned"
    assert not (tmp_path / "docs").exists()  # the real run creates it (its parent exists)
    done = run_syncd("reconcile", "--json", "-c", config)
    assert done.code == 0 and (tmp_path / "docs" / "theirs.txt").read_bytes() == b"made there"


def test_a_state_dir_too_long_for_a_socket_address_still_has_its_control_socket(
    tmp_path: Path, file_server: ServerThread
) -> None:
    state = tmp_path / ("deep-" * 12) / "state"  # its socket path is over 107 bytes
    assert len(os.fsencode(str(state / "control.sock"))) > 107
    (tmp_path / "docs").mkdir()
    config = write_config(
        tmp_path / "syncd.toml", state_dir=state, url=file_server.url, settle=0.3,
        folders=[{"name": "docs", "path": tmp_path / "docs", "chat_id": CHAT}], daemon=QUIET,
    )
    process = DaemonProcess(config)
    try:
        process.wait_ready()
        retried = run_syncd("retry", "-c", config)
        assert retried.code == 0 and "running daemon" in retried.stdout, retried.stdout + retried.stderr
        status = run_syncd("status", "--json", "-c", config)
        assert status.doc is not None and status.doc["daemon"]["pid"] == process.proc.pid
    finally:
        assert process.stop() == 0
    assert not (state / "control.sock").exists()  # removed on the way out


def test_a_killed_daemons_socket_is_taken_over_by_the_next_one(
    tmp_path: Path, daemon: tuple[Path, DaemonProcess]
) -> None:
    config, first = daemon
    sock = tmp_path / "state" / "control.sock"
    first.kill()  # SIGKILL: the socket file stays behind, nobody answers on it
    assert sock.is_socket() and connect(tmp_path / "state") is None
    assert run_syncd("events", "-c", config).code == 1  # no daemon to follow

    second = DaemonProcess(config)
    try:
        second.wait_ready()
        retried = run_syncd("retry", "-c", config)
        assert retried.code == 0 and "running daemon" in retried.stdout, retried.stdout + retried.stderr
        with DaemonClient(tmp_path / "state") as client:
            assert client.status()["daemon"]["pid"] == second.proc.pid
    finally:
        assert second.stop() == 0
