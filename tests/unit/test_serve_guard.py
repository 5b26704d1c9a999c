"""The pieces of the connection guard that need no running service: the limits
(`syncd.server.servelimits`), the log rate limit (`syncd.server.lograte`), and the accept round
that stops at its first resource error (`syncd.server.acceptloop`)."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from typing import Any

import pytest

from syncd.cli.parser import build_parser as _parser
from syncd.server.acceptloop import ACCEPT_ROUND, GuardedEventLoop
from syncd.server.lograte import RateLimitFilter
from syncd.server.servelimits import ServeLimits, auto_max_connections


@pytest.mark.parametrize(
    ("soft_limit", "expected"),
    [(1024, 320), (256, 64), (100, 16), (20_000, 1000), (resource.RLIM_INFINITY, 1000)],
)
def test_auto_max_connections_leaves_descriptors_for_every_connection(soft_limit: int, expected: int) -> None:
    assert auto_max_connections(soft_limit) == expected


def test_auto_max_connections_follows_the_process_limit() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert ServeLimits().connection_limit() == auto_max_connections(soft)
    assert ServeLimits(max_connections=7).connection_limit() == 7


@pytest.mark.parametrize(
    "bad",
    [{"header_timeout": 0}, {"body_timeout": -1}, {"send_timeout": 0}, {"keep_alive_timeout": 0},
     {"max_connections": 0}, {"shutdown_timeout": -1}],
)
def test_limits_refuse_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServeLimits(**bad)


def test_serve_options_and_their_defaults() -> None:
    args = _parser().parse_args(["serve"])
    assert (args.header_timeout, args.body_timeout, args.send_timeout) == (20.0, 20.0, 60.0)
    assert (args.keep_alive_timeout, args.max_connections, args.shutdown_timeout) == (30, None, 10)
    given = _parser().parse_args([
        "serve", "--header-timeout", "1.5", "--body-timeout", "2", "--send-timeout", "3",
        "--keep-alive-timeout", "4", "--max-connections", "50", "--shutdown-timeout", "0",
    ])
    assert (given.header_timeout, given.body_timeout, given.send_timeout) == (1.5, 2.0, 3.0)
    assert (given.keep_alive_timeout, given.max_connections, given.shutdown_timeout) == (4, 50, 0)
    assert _parser().parse_args(["serve", "--max-connections", "auto"]).max_connections is None
    for bad in (["--header-timeout", "0"], ["--body-timeout", "x"], ["--max-connections", "0"],
                ["--keep-alive-timeout", "1.5"], ["--shutdown-timeout", "-1"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(["serve", *bad])


def _record(msg: str, exc: BaseException | None = None, name: str = "asyncio") -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, exc_info)


def test_rate_limit_lets_one_of_a_flood_through_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    limit = RateLimitFilter(every=10, clock=lambda: now[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    storm = [_record(f"socket.accept() out of system resource\nsocket: fd={i}", emfile) for i in range(20_000)]
    assert sum(limit.filter(r) for r in storm) == 1
    assert limit.filter(_record("something else")) is True  # other messages are not held back
    assert limit.filter(_record("socket.accept() out of system resource", OSError(errno.ENOMEM, "no memory")))
    now[0] = 10.0
    later = _record("socket.accept() out of system resource\nsocket: fd=1", emfile)
    assert limit.filter(later) is True
    assert "19999 more like this in the last 10 s not logged" in later.getMessage()
    assert limit.filter(_record("socket.accept() out of system resource", emfile)) is False


def test_the_accept_round_stops_at_the_first_resource_error() -> None:
    class OutOfDescriptors:
        """A listening socket whose every accept() fails as when the process has no descriptors left."""

        def __init__(self) -> None:
            self.sock = socket.socket()
            self.accepts = 0

        def accept(self) -> tuple[socket.socket, Any]:
            self.accepts += 1
            raise OSError(errno.EMFILE, "Too many open files")

        def fileno(self) -> int:
            return self.sock.fileno()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.sock, name)

    loop = GuardedEventLoop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    listening = OutOfDescriptors()
    try:
        loop._accept_connection(lambda: None, listening, None, None, 2048)
        assert listening.accepts == 1  # CPython 3.11's own round: 2048 accept()s, each reported
        assert len(reported) == 1
        assert "out of system resource" in reported[0]["message"]
    finally:
        listening.sock.close()
        loop.close()


def test_an_accept_round_takes_a_bounded_number_of_connections() -> None:
    """Connections over the limit are closed between rounds: a round of uvicorn's backlog (2048)
    could take every descriptor before the first of them is closed."""
    server = socket.create_server(("127.0.0.1", 0), backlog=200)
    server.setblocking(False)
    clients = [socket.create_connection(server.getsockname()) for _ in range(100)]
    loop = GuardedEventLoop()
    accepted: list[socket.socket] = []

    class Counting:
        def accept(self) -> tuple[socket.socket, Any]:
            conn, addr = server.accept()
            accepted.append(conn)
            return conn, addr

        def fileno(self) -> int:
            return server.fileno()

        def __getattr__(self, name: str) -> Any:
            return getattr(server, name)

    try:
        loop._accept_connection(lambda: None, Counting(), None, None, 2048)
        assert len(accepted) == ACCEPT_ROUND
        pending = asyncio.all_tasks(loop)  # the connections' set-up, never run here
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        for s in (*accepted, *clients, server):
            s.close()
        loop.close()
