"""sd_notify: exact datagrams on a real AF_UNIX socket, no-ops outside systemd, watchdog timing,
and sends that never block: a full, vanished or refusing socket drops the message, counted and
logged once."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.daemon.notify import Notifier, watchdog_interval

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


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "syncd.daemon.notify" and r.levelno >= logging.WARNING]


def test_unreachable_socket_is_logged_once_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="syncd.daemon.notify")
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.stopping()
    assert notifier.dropped == 2
    [warning] = warnings(caplog)
    assert "sd_notify" in warning.getMessage() and "dropped" in warning.getMessage()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG]


def test_socket_closed_by_the_listener_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = Notifier(str(path))
    assert notifier.ready()
    sock.close()  # systemd went away; the path stays behind (ECONNREFUSED)
    assert not notifier.watchdog()
    assert notifier.dropped == 1


def in_thread(fn: Callable[[], object], what: str) -> object:
    """Run `fn` in a thread and return what it returned; fail if the thread is still stuck
    after a few seconds (a blocking send never returns, since nobody reads the socket)."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(10.0)
    assert not worker.is_alive(), f"{what} is stuck"
    [value] = result
    return value


def test_a_full_socket_drops_messages_instead_of_blocking(
    listener: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, address = listener
    caplog.set_level(logging.DEBUG, logger="syncd.daemon.notify")
    notifier = Notifier(address)

    def fill() -> list[bool]:
        """Send until the receiver's queue (net.unix.max_dgram_qlen) refuses, then five more."""
        outcomes: list[bool] = []
        while len(outcomes) < 10_000 and outcomes.count(False) < 6:
            outcomes.append(notifier.status(f"update {len(outcomes)}"))
        return outcomes

    outcomes = in_thread(fill, "a send to a socket nobody reads")
    assert isinstance(outcomes, list)
    delivered = outcomes.index(False)
    assert delivered > 0 and outcomes[delivered:] == [False] * 6  # once full, it stays full
    assert notifier.dropped == 6
    assert len(warnings(caplog)) == 1  # the first drop warns; the other five are debug lines

    # The messages that did go are intact and in order; the dropped ones never arrive.
    for i in range(delivered):
        assert recv(sock) == f"STATUS=update {i}".encode()
    assert_nothing_more(sock)
    # Room again: the same notifier delivers, and does not warn again.
    assert notifier.watchdog()
    assert recv(sock) == b"WATCHDOG=1"
    assert len(warnings(caplog)) == 1


@pytest.mark.parametrize("how", ["unlinked", "closed"])
def test_a_vanished_socket_drops_messages_and_a_new_one_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="syncd.daemon.notify")
    path = tmp_path / "notify.sock"
    first = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first.bind(str(path))
    notifier = Notifier(str(path))
    assert notifier.ready()
    assert first.recv(4096) == b"READY=1"
    first.close()  # the supervisor is gone: ECONNREFUSED with the path left, ENOENT without it
    if how == "unlinked":
        path.unlink()

    assert in_thread(lambda: [notifier.watchdog() for _ in range(20)], "a send to a vanished socket") == [False] * 20
    assert notifier.dropped == 20
    assert len(warnings(caplog)) == 1

    # The supervisor is back at the same address (systemd re-executed): messages flow again.
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as second:
        second.bind(str(path))
        second.settimeout(2.0)
        assert notifier.status("back")
        assert second.recv(4096) == b"STATUS=back"
    assert notifier.dropped == 20


def test_threads_share_one_notifier(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    sock.settimeout(None)
    notifier = Notifier(address)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(sock.recv(4096) for _ in range(200)), daemon=True)

    def send_many(thread: int) -> None:
        for i in range(50):
            while not notifier.send(f"T{thread}={i}"):
                pass  # the queue was full and the message dropped: send it again until it goes

    senders = [threading.Thread(target=send_many, args=(t,)) for t in range(4)]
    reader.start()
    for t in senders:
        t.start()
    for t in senders:
        t.join(20.0)
        assert not t.is_alive()
    reader.join(10.0)
    assert not reader.is_alive()
    # Every datagram whole, each thread's in its own order.
    for thread in range(4):
        mine = [m for m in received if m.startswith(f"T{thread}=".encode())]
        assert mine == [f"T{thread}={i}".encode() for i in range(50)]
    notifier.close()
    assert notifier.send("AFTER_CLOSE=1")  # a new socket is made on demand
    sock.settimeout(2.0)
    assert recv(sock) == b"AFTER_CLOSE=1"


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
