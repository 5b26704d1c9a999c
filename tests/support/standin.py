"""What the stand-in servers of `tests/support/` share: a threaded HTTP/1.1 server on loopback
that knows its open connections (so `stop` can wake handlers blocked on idle keep-alive ones and
join every thread), and a handler base that reads bodies (sized or chunked), answers with bytes
and resets connections, with the error it raises when a request's body cannot be read; the
record of a request seen, and the fault planned for a next one."""

from __future__ import annotations

import collections
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

Owner = TypeVar("Owner")


class Named(Protocol):
    @property
    def name(self) -> str: ...


Seen = TypeVar("Seen", bound=Named)
Planned = TypeVar("Planned")


class SeenRequest(NamedTuple):
    """One request a stand-in saw: `path` is the target exactly as sent (query included). Each
    stand-in's `Request` adds its `name`: what its `fail_next` calls the endpoint."""

    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case

    @property
    def route(self) -> str:
        """The target without its query."""
        return urlsplit(self.path).path


@dataclass(frozen=True)
class Fault:
    """What the next matching request meets instead of its answer (a stand-in's `fail_next`):
    `status` with `body` and `headers`, after the work is done when `after`; or a reset; or a
    stall of `stall` seconds; or, for a download, its body cut after `truncate` bytes."""

    status: int = 503
    after: bool = False
    reset: bool = False
    stall: float | None = None
    truncate: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class StandIn(Generic[Seen, Planned]):
    """What every stand-in service keeps for its tests: a clock that `advance` moves on, the
    requests it saw, and the faults planned for the next requests, per endpoint name. The
    service's lock (`_lock`) guards them; a subclass calls `_start_record` first thing."""

    clock: Callable[[], float]

    def _start_record(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._offset = 0.0
        self._seen: list[Seen] = []
        self._faults: dict[str, collections.deque[Planned]] = collections.defaultdict(collections.deque)

    def _name(self, name: str) -> str:
        """How endpoint names are spelled in the record (a stand-in may accept other spellings)."""
        return name

    def now(self) -> float:
        """The service's time: `clock()` moved on by every `advance`."""
        with self._lock:
            offset = self._offset
        return self.clock() + offset

    def advance(self, seconds: float) -> None:
        """Move the service's clock forward (what was signed or issued before may now be stale)."""
        with self._lock:
            self._offset += seconds

    def seen(self, name: str | None = None) -> list[Seen]:
        """Every request so far (only those to endpoint `name`, if given), in order."""
        with self._lock:
            return [r for r in self._seen if name is None or r.name == self._name(name)]

    def _note(self, request: Seen) -> None:
        with self._lock:
            self._seen.append(request)

    def pending_faults(self, name: str) -> int:
        """Faults still queued for `name`."""
        with self._lock:
            return len(self._faults[self._name(name)])

    def _next_fault(self, name: str) -> Planned | None:
        with self._lock:
            queue = self._faults.get(name)
            return queue.popleft() if queue else None


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


class StandInHandler(BaseHTTPRequestHandler):
    """Reading a request's body and answering, as every stand-in does. `BAD_CHUNKS` is the
    message of a malformed chunked body, in the words of the service the stand-in plays."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real services
    timeout = 30
    BLOCK = 64 * 1024
    BAD_CHUNKS = "bad chunked encoding"
    BAD_LENGTH = "bad Content-Length"
    #: An error answered before the body was read: at most this much of it is read (and dropped)
    #: first, so the client sees the answer; more, and the connection is closed unread.
    DRAIN_LIMIT = 16 * 1024 * 1024

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # tests read the stand-in's `seen()`, not stderr

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _handle(self) -> None:
        """Answer the request, whatever its method (each stand-in's dispatch)."""
        raise NotImplementedError

    def _body(self) -> Iterator[bytes]:
        """The request's body, block by block (a stand-in may remember it was read)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunks()
        length = self.headers.get("Content-Length", "0") or "0"
        if not length.isdigit():
            raise BodyError(400, self.BAD_LENGTH)
        return self.read_sized(int(length))

    def _announced_over(self, cap: int) -> bool:
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        return not chunked and length is not None and length.isdigit() and int(length) > cap

    def read_small(self, cap: int) -> bytes | None:
        """The body, or None (and the connection marked for closing) if it is over `cap` bytes."""
        if self._announced_over(cap):
            self.close_connection = True
            return None
        kept = bytearray()
        for block in self._body():
            kept += block
            if len(kept) > cap:
                self.close_connection = True
                return None
        return bytes(kept)

    def drain(self) -> bool:
        """Read the body and drop it; False (and the connection marked for closing) if it was over
        DRAIN_LIMIT and left unread."""
        if self._announced_over(self.DRAIN_LIMIT):
            self.close_connection = True
            return False
        read = 0
        for block in self._body():
            read += len(block)
            if read > self.DRAIN_LIMIT:
                self.close_connection = True
                return False
        return True

    def read_sized(self, length: int) -> Iterator[bytes]:
        """`length` bytes of body, block by block; BodyError when the client hangs up first."""
        left = length
        while left > 0:
            block = self.rfile.read(min(left, self.BLOCK))
            if not block:
                raise BodyError()  # the client hung up mid-body
            left -= len(block)
            yield block

    def read_chunks(self) -> Iterator[bytes]:
        """A chunked body, block by block, its trailers skipped."""
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise BodyError()
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError(400, self.BAD_CHUNKS) from None
            if size == 0:
                while True:  # trailers, up to the blank line
                    trailer = self.rfile.readline(8 * 1024)
                    if trailer in (b"\r\n", b"\n"):
                        return
                    if not trailer:
                        raise BodyError()
            yield from self.read_sized(size)
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise BodyError(400, self.BAD_CHUNKS)

    def reset(self) -> None:
        """Close the connection with a RST instead of an answer (SO_LINGER with a zero timeout)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def send_bytes(self, status: int, body: bytes, headers: Mapping[str, str], *, close: bool = False) -> None:
        """Answer `status` with `body` and `headers` (Content-Length added; none for HEAD)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
