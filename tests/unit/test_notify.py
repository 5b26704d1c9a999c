"""sd_notify: exact datagrams on a real AF_UNIX socket, no-ops outside systemd, watchdog timing."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.notify import Notifier, watchdog_interval

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX sockets")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, as systemd's notify socket; yields (socket, $NOTIFY_SOCKET)."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        yield sock, str(path)


def recv(sock: socket.socket) -> bytes:
    return sock.recv(4096)


def assert_nothing_more(sock: socket.socket) -> None:
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_each_method_sends_its_exact_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled

    assert notifier.ready()
    assert recv(sock) == b"READY=1"
    assert notifier.status("watching 3 folders")
    assert recv(sock) == b"STATUS=watching 3 folders"
    assert notifier.watchdog()
    assert recv(sock) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert recv(sock) == b"STOPPING=1"
    assert_nothing_more(sock)


def test_reloading_carries_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    before = time.monotonic_ns() // 1000
    assert Notifier(address).reloading()
    after = time.monotonic_ns() // 1000
    first, second = recv(sock).decode().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_send_joins_lines_and_fields_into_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier(address)
    assert notifier.send("READY=1", STATUS="up", MAINPID=42)
    assert recv(sock) == b"READY=1\nSTATUS=up\nMAINPID=42"
    assert notifier.send("EXTEND_TIMEOUT_USEC=5000000")
    assert recv(sock) == b"EXTEND_TIMEOUT_USEC=5000000"
    assert not notifier.send()  # nothing to say: nothing sent
    assert_nothing_more(sock)


def test_status_stays_on_one_line(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    Notifier(address).status("first\nREADY=1")
    assert recv(sock) == b"STATUS=first READY=1"


def test_status_is_utf8(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    Notifier(address).status("synced café.txt")
    assert recv(sock) == "STATUS=synced café.txt".encode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_socket_name() -> None:
    name = f"syncd-test-notify-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert recv(sock) == b"READY=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_notify_socket_everything_is_a_no_op(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sockets(*args: object, **kwargs: object) -> None:
        raise AssertionError("no socket may be created without $NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_sockets)
    notifier = Notifier.from_env(env)
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.reloading()
    assert not notifier.stopping()
    assert not notifier.send("READY=1", STATUS="x")


def test_unreachable_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncd.notify")
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.stopping()
    assert "sd_notify" in caplog.text
    assert all(record.levelno == logging.DEBUG for record in caplog.records)


def test_socket_closed_by_the_listener_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = Notifier(str(path))
    assert notifier.ready()
    sock.close()  # systemd went away; the path stays behind
    assert not notifier.watchdog()


def test_from_env_reads_os_environ_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert Notifier.from_env().ready()
    assert recv(sock) == b"READY=1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "1000"}, 0.0005),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "nope"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env) == expected


def test_watchdog_interval_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 5.0
