"""The README's quick start, as a user runs it: `syncd run -c config.example.toml` with its
embedded remote, in a real process. The file service it starts is reached over a Unix socket
in the state dir (no TCP port), and it keeps the quickstart's promise: a file dropped into
alice/ appears in bob/. A second writer fails on the state lock without touching the socket;
`syncd check` next to the daemon probes the daemon's own service.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import run_syncd

pytestmark = pytest.mark.timeout(120)

QUICKSTART = Path(__file__).resolve().parents[2] / "config.example.toml"
SUN_PATH_MAX = 107


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# The short path is the everyday one; the long one (past sun_path's 107 bytes) takes the other
# branch. Unit tests cover both paths at the socket level; end to end, the long one is the default.
@pytest.fixture(params=[pytest.param("short", marks=pytest.mark.slow), "long"])
def home(request: pytest.FixtureRequest, short_home: Path, tmp_path: Path) -> Path:
    if request.param == "short":
        return short_home
    deep = tmp_path / ("h" * 100) / ("o" * 100)
    deep.mkdir(parents=True)
    return deep


@contextmanager
def socket_address(sock: Path) -> Iterator[str]:
    """What connects to `sock` from this process, however long its path."""
    if len(os.fsencode(str(sock))) <= SUN_PATH_MAX:
        yield str(sock)
        return
    fd = os.open(sock.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{sock.name}"
    finally:
        os.close(fd)


def answers(sock: Path) -> bool:
    with socket_address(sock) as address, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        return True


def test_the_quickstart_daemon_syncs_over_a_private_unix_socket(home: Path) -> None:
    env = {"HOME": str(home)}
    state_dir = home / ".local/state/syncd"
    sock = state_dir / "embedded" / "service.sock"
    alice, bob = home / "syncd-demo-alice", home / "syncd-demo-bob"

    # `syncd check` on its own starts the service, probes it and cleans up after itself.
    checked = run_syncd("check", "-c", QUICKSTART, env=env)
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "alice: remote demo ok" in checked.stdout
    assert not sock.exists()

    daemon = DaemonProcess(QUICKSTART, env=env)
    try:
        daemon.wait_ready()
        proc = psutil.Process(daemon.proc.pid)
        listening = [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening == []
        assert stat.S_ISSOCK(sock.lstat().st_mode)
        assert mode(sock) == 0o600
        assert mode(sock.parent) == 0o700
        assert mode(state_dir) == 0o700
        assert answers(sock)
        inode = sock.lstat().st_ino

        # The quickstart's promise: alice/ -> the chat -> bob/ (an upload and a download).
        (alice / "hello.txt").write_bytes(b"hello through the socket\n")
        wait_for(lambda: (bob / "hello.txt").is_file(), timeout=30, what="hello.txt in bob/")
        assert (bob / "hello.txt").read_bytes() == b"hello through the socket\n"

        # A reconcile next to the daemon is handed to it over the control socket ...
        handed = run_syncd("reconcile", "-c", QUICKSTART, env=env)
        assert handed.code == 0, handed.stdout + handed.stderr
        assert f"running daemon (pid {daemon.proc.pid})" in handed.stderr
        # ... and one that needs the state to itself fails on the state lock, leaving the socket alone.
        second = run_syncd("reconcile", "--rebuild-journal", "-c", QUICKSTART, env=env)
        assert second.code == 3, second.stdout + second.stderr
        assert f"held by syncd pid {daemon.proc.pid}" in second.stderr
        # `syncd check` probes the daemon's own service through its socket.
        checked = run_syncd("check", "-c", QUICKSTART, env=env)
        assert checked.code == 0, checked.stdout + checked.stderr
        assert "alice: remote demo ok (1 file in the chat)" in checked.stdout
        assert sock.lstat().st_ino == inode
        assert answers(sock)
        assert not [c for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]

        # ... and the daemon still syncs through it.
        (bob / "back.txt").write_bytes(b"and back\n")
        wait_for(lambda: (alice / "back.txt").is_file(), timeout=30, what="back.txt in alice/")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_text()
    assert not sock.exists()
    assert "http://" not in daemon.log_text()
