"""The embedded remote's socket (`syncd.server.unixsock`): a private directory, a 0600 socket,
long paths bound through the directory's descriptor, and a leftover socket replaced only when
it is a socket nobody answers on."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import ConfigError
from syncd.server.unixsock import SOCKET_NAME, SUN_PATH_MAX, SocketDir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket path fits in sun_path (pytest's own tmp paths may not)."""
    with tempfile.TemporaryDirectory(prefix="sd-", dir="/tmp") as base:
        yield Path(base) / "sock"


@pytest.fixture
def long_dir(tmp_path: Path) -> Path:
    return tmp_path / ("d" * 120) / ("e" * 120)


def answers(address: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        return True


@pytest.mark.parametrize("which", ["short", "long"])
def test_the_socket_is_private_and_reachable_whatever_the_path_length(
    which: str, short_dir: Path, long_dir: Path
) -> None:
    where = short_dir if which == "short" else long_dir
    with SocketDir(where) as sockdir:
        assert sockdir.try_lock()
        listener = sockdir.bind()
        try:
            assert sockdir.socket_path == where / SOCKET_NAME
            assert len(os.fsencode(sockdir.address)) <= SUN_PATH_MAX
            if which == "short":
                assert sockdir.address == str(where / SOCKET_NAME)
            else:
                assert len(os.fsencode(str(sockdir.socket_path))) > SUN_PATH_MAX
                assert sockdir.address.startswith("/proc/self/fd/")
            assert stat.S_ISSOCK(sockdir.socket_path.lstat().st_mode)
            assert mode(sockdir.socket_path) == 0o600
            assert mode(where) == 0o700
            assert answers(sockdir.address)
        finally:
            listener.close()
            sockdir.remove()
        assert not sockdir.socket_path.exists()


def test_a_loose_directory_is_tightened(short_dir: Path) -> None:
    short_dir.mkdir(mode=0o755)
    short_dir.chmod(0o755)
    with SocketDir(short_dir):
        assert mode(short_dir) == 0o700


def test_a_stale_socket_is_replaced(short_dir: Path) -> None:
    short_dir.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(short_dir / SOCKET_NAME))
    dead.close()  # a crashed run: the file stays, nobody listens
    with SocketDir(short_dir) as sockdir:
        assert sockdir.try_lock()
        with sockdir.bind():
            assert answers(sockdir.address)
        sockdir.remove()


def test_a_live_socket_is_never_replaced(short_dir: Path) -> None:
    short_dir.mkdir(mode=0o700)
    path = short_dir / SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        before = path.lstat().st_ino
        with SocketDir(short_dir) as sockdir:
            assert sockdir.try_lock()
            with pytest.raises(ConfigError, match="answers"):
                sockdir.bind()
            sockdir.remove()  # not ours: left alone
        assert path.lstat().st_ino == before
        assert answers(str(path))


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_a_non_socket_is_never_replaced(short_dir: Path, kind: str) -> None:
    short_dir.mkdir(mode=0o700)
    path = short_dir / SOCKET_NAME
    if kind == "file":
        path.write_text("keep me")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(short_dir / "elsewhere")
    with SocketDir(short_dir) as sockdir:
        assert sockdir.try_lock()
        with pytest.raises(ConfigError, match="not a socket"):
            sockdir.bind()
    assert path.is_symlink() if kind == "symlink" else path.exists()
    if kind == "file":
        assert path.read_text() == "keep me"


def test_one_process_at_a_time_serves_a_directory(short_dir: Path) -> None:
    with SocketDir(short_dir) as first, SocketDir(short_dir) as second:
        assert first.try_lock()
        assert not second.try_lock()
        assert not second.lock(timeout=0.1)
        first.close()
        assert second.try_lock()


def test_remove_leaves_a_socket_bound_by_someone_else_alone(short_dir: Path) -> None:
    with SocketDir(short_dir) as sockdir:
        assert sockdir.try_lock()
        sockdir.bind().close()
        sockdir.socket_path.rename(short_dir / "old.sock")  # kept: its inode cannot be reused
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            other.bind(str(sockdir.socket_path))
            sockdir.remove()
            assert sockdir.socket_path.exists()
