"""What the stand-in servers of `tests/support/` share: a threaded HTTP/1.1 server on loopback
that knows its open connections (so `stop` can wake handlers blocked on idle keep-alive ones and
join every thread), and the error a handler raises when a request's body cannot be read."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

Owner = TypeVar("Owner")


class StandInServer(ThreadingHTTPServer, Generic[Owner]):
    """`ThreadingHTTPServer` serving `handler` for `owner` (the stand-in its handlers read)."""

    daemon_threads = False  # server_close() joins handler threads: no leaks between tests
    block_on_close = True

    def __init__(self, address: tuple[str, int], owner: Owner, handler: type[BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        self._open_sockets: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client: Any) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open_sockets.add(request)
        super().process_request(request, client)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open_sockets.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self._open_lock:
            for sock in list(self._open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class BodyError(Exception):
    """The request's body could not be read: answer `status` (0: none) and close."""

    def __init__(self, status: int = 0, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
