"""The event loop `syncd serve` runs on: asyncio's, with an accept loop that does not spin
when descriptors run out.

When descriptors do run out all the same (a `max_connections` set above what the limit
allows, or descriptors held elsewhere), CPython's accept loop (3.11; python/cpython#151615)
goes on calling accept() for the whole backlog after the first "Too many open files", each
failure logging a traceback and scheduling another retry: thousands of lines a second and a
spinning core. Invariants of `GuardedEventLoop`: a round of accept() calls ends at its first
resource error (one log line and one retry a second, as asyncio intends), and takes at most
ACCEPT_ROUND connections, so the connection guard closes the ones over its limit before more
descriptors are taken.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

#: accept() errors after which asyncio pauses accepting for a second.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _AcceptUntilResourceError:
    """A listening socket as the loop's accept round sees it: once one accept() failed for want
    of descriptors or memory, the next ones in the round report nothing to accept."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.failed = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failed:
            raise BlockingIOError(errno.EAGAIN, "accepting paused after a resource error")
        try:
            return self.sock.accept()
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:
                self.failed = True
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


#: Connections accepted in one go before the loop runs its callbacks again.
ACCEPT_ROUND = 32


class GuardedEventLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, with an accept round that stops at its first resource error.

    CPython 3.11's `_accept_connection` (python/cpython#151615) pauses accepting for a second
    after accept() fails with EMFILE and the like, but finishes its round of `backlog` (2048)
    accept() calls first: each fails again, logs a traceback and schedules one more retry,
    and the retries feed each other. Here the round ends at the first such failure. (On a
    Python whose loop has no such method this class changes nothing.)
    """

    def _accept_connection(self, protocol_factory: Any, sock: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(sock, _AcceptUntilResourceError):  # a retry scheduled by an earlier round
            sock = sock.sock
        # (sslcontext, server, backlog, ...): a round accepts at most ACCEPT_ROUND connections, so
        # that the ones over `max_connections` are closed (their `connection_made` runs between
        # rounds) before more descriptors are taken; a round of 2048 could exhaust them alone.
        if len(args) >= 3:
            args = (*args[:2], min(args[2], ACCEPT_ROUND), *args[3:])
        elif "backlog" in kwargs:
            kwargs["backlog"] = min(kwargs["backlog"], ACCEPT_ROUND)
        accept_round = getattr(super(), "_accept_connection")  # noqa: B009 - private, not in the stubs
        accept_round(protocol_factory, _AcceptUntilResourceError(sock), *args, **kwargs)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop uvicorn runs the service on (its `loop=` option)."""
    return GuardedEventLoop()
