"""A misbehaving HTTP proxy for tests: real sockets on loopback, programmable faults.

`FaultProxy(upstream_url)` listens on a free loopback port and forwards every
request to the upstream service (the reference file service, usually), unless
its plan says otherwise. Point the client under test at `proxy.url`.

What each request meets is decided, in order, by:

1. the rule (`proxy.rule = fn`, called with the `Seen` request; returns a
   `Fault` or None) - for faults that depend on the request, e.g. "reset every
   upload of part 3";
2. the queue of faults planned for its path (`proxy.plan("/deleteFile", ...)`),
   consumed one per request, first in first out;
3. otherwise `Forward()`.

Faults: `Forward`, `Respond` (any status, body and headers; optionally after
forwarding, the ambiguous case), `Reset` (close with RST, no answer), `Stall`
(say nothing until the client gives up), `Truncate` (announce the whole body,
send part of it, close), `Hold` (keep the whole request, say nothing, and
forward it only when the test calls `proxy.release()` - a buffering proxy's
late delivery, after the client has long given up or died). Helpers build the usual ones: `unavailable`,
`too_many_requests`, `html_page`, `invalid_json`, `envelope`,
`error_after_forward`.

Every request is recorded (`proxy.seen()`, `proxy.count(path)`) with its
arrival time and the number of body bytes received (`proxy.received()` sums
them: the bytes a client put on the wire), so tests can assert "retried N
times", "not retried", or "waited at least Retry-After". Bodies are buffered
whole while a request is forwarded: this is for test-sized requests. The
record keeps each body whole too, unless `keep_body` caps what it keeps (for
big transfers; the multipart `params` field comes first in syncd's forms).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

#: Request headers not passed on (hop-by-hop, or recomputed by the proxy).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)
#: Response headers not passed on (BaseHTTPRequestHandler writes its own).
_NOT_RELAYED = _HOP_BY_HOP | {"server", "date"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: bytes  # at most the proxy's `keep_body` bytes of it
    at: float  # time.monotonic() on arrival
    index: int  # 1 for the first request to this path, 2 for the next, ...
    size: int  # body bytes received (a client that died mid-body sent fewer than it announced)


class Fault:
    """What the proxy does with one request."""


@dataclass(frozen=True)
class Forward(Fault):
    """Pass the request on and relay the answer (the default)."""


@dataclass(frozen=True)
class Respond(Fault):
    """Answer `status` with `body`; with `forward_first`, only after the upstream handled it."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    forward_first: bool = False


@dataclass(frozen=True)
class Reset(Fault):
    """Close the connection with a TCP RST, no answer (optionally after forwarding)."""

    forward_first: bool = False


@dataclass(frozen=True)
class Stall(Fault):
    """Answer nothing for `seconds` (or until the proxy stops), then close."""

    seconds: float = 30.0
    forward_first: bool = False


@dataclass(frozen=True)
class Truncate(Fault):
    """Forward, send the upstream's status and full Content-Length, then only `keep` bytes, close."""

    keep: int = 0


@dataclass(frozen=True)
class Hold(Fault):
    """Keep the fully received request: forward nothing, answer nothing. `proxy.release()`
    forwards it later (the upstream acts then); the client's connection is closed unanswered."""


@dataclass
class Held:
    """A request kept by `Hold`, until `release()`."""

    seen: Seen
    target: str  # the request target as received: path and query
    body: bytes  # all of it (the record may keep only the start)
    let_go: threading.Event = field(default_factory=threading.Event)


def unavailable(retry_after: float | str | None = None) -> Respond:
    """503, optionally with Retry-After."""
    return _with_retry_after(503, retry_after)


def too_many_requests(retry_after: float | str | None = None) -> Respond:
    """429, optionally with Retry-After."""
    return _with_retry_after(429, retry_after)


def _with_retry_after(status: int, retry_after: float | str | None) -> Respond:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Respond(
        status, json.dumps({"code": status, "data": None, "message": "slow down"}).encode(), headers
    )


def html_page(status: int = 502) -> Respond:
    """What a load balancer says when the service behind it is down."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    return Respond(status, page, {"Content-Type": "text/html"})


def invalid_json(status: int = 200) -> Respond:
    """A JSON content type with a body that does not parse."""
    return Respond(status, b'{"code": 0, "data": ', {"Content-Type": "application/json"})


def envelope(payload: object, status: int = 200) -> Respond:
    """Any JSON body, e.g. an envelope with fields missing."""
    return Respond(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def error_after_forward(status: int = 500) -> Respond:
    """The ambiguous failure: the upstream did the work, the client hears an error."""
    return Respond(status, b"internal error", {"Content-Type": "text/plain"}, forward_first=True)


Rule = Callable[[Seen], Fault | None]


class FaultProxy:
    """A threaded HTTP/1.1 proxy on loopback with a programmable fault plan."""

    def __init__(
        self, upstream: str, *, host: str = "127.0.0.1", port: int = 0, keep_body: int | None = None
    ) -> None:
        split = urlsplit(upstream)
        self._keep_body = keep_body
        if split.scheme != "http" or split.hostname is None:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self._upstream = (split.hostname, split.port or 80)
        self._lock = threading.Lock()
        self._plans: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self._seen: list[Seen] = []
        self._held: list[Held] = []
        self.rule: Rule | None = None
        self.stopping = threading.Event()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fault-proxy", daemon=True
        )
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"

    # -- the plan ------------------------------------------------------------------------------

    def plan(self, path: str, *faults: Fault) -> None:
        """Queue `faults` for the next requests to `path`, in order."""
        with self._lock:
            self._plans[path].extend(faults)

    def pending(self, path: str) -> int:
        """Faults still queued for `path`."""
        with self._lock:
            return len(self._plans[path])

    def clear(self) -> None:
        """Drop every planned fault and the rule (the record of requests stays)."""
        with self._lock:
            self._plans.clear()
            self.rule = None

    def choose(self, seen: Seen) -> Fault:
        """The fault this request meets (rule, then the path's queue, then Forward)."""
        rule = self.rule
        if rule is not None:
            chosen = rule(seen)
            if chosen is not None:
                return chosen
        with self._lock:
            queue = self._plans[seen.path]
            return queue.popleft() if queue else Forward()

    # -- the record ----------------------------------------------------------------------------

    def record(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Seen:
        """Note a request as it arrives."""
        split = urlsplit(target)
        with self._lock:
            index = 1 + sum(1 for s in self._seen if s.path == split.path)
            kept = body if self._keep_body is None else body[: self._keep_body]
            seen = Seen(
                method, split.path, dict(parse_qsl(split.query)), headers, kept, time.monotonic(), index, len(body)
            )
            self._seen.append(seen)
            return seen

    def seen(self, path: str | None = None) -> list[Seen]:
        """Requests received so far (to `path`, or all), in arrival order."""
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def count(self, path: str | None = None) -> int:
        """How many requests (to `path`, or in all) the proxy received."""
        return len(self.seen(path))

    def received(self, path: str | None = None) -> int:
        """Body bytes of the requests (to `path`, or all) the proxy received."""
        return sum(s.size for s in self.seen(path))

    # -- held requests -------------------------------------------------------------------------

    def hold(self, seen: Seen, target: str, body: bytes) -> Held:
        """Keep a request until `release()`."""
        held = Held(seen, target, body)
        with self._lock:
            self._held.append(held)
            if self.stopping.is_set():
                held.let_go.set()
        return held

    def held(self) -> list[Seen]:
        """The requests held now, in arrival order."""
        with self._lock:
            return [h.seen for h in self._held]

    def release(self) -> list[tuple[int, bytes]]:
        """Forward every held request upstream, in arrival order, and wait for the answers:
        (status, body) of each, as the upstream gave them (the clients never hear them)."""
        with self._lock:
            held, self._held = self._held, []
        answers = []
        for h in held:
            answer = self.forward(h.seen.method, h.target, h.seen.headers, h.body)
            answers.append((answer.status, answer.body))
            h.let_go.set()
        return answers

    # -- forwarding ----------------------------------------------------------------------------

    def forward(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        """Send the request upstream; its answer, body read whole."""
        conn = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
            sent["content-length"] = str(len(body))
            conn.request(method, target, body=body, headers=sent)
            response = conn.getresponse()
            payload = response.read()
            relayed = [(k, v) for k, v in response.getheaders() if k.lower() not in _NOT_RELAYED]
            return _Answer(response.status, relayed, payload)
        except OSError as exc:
            message = f"fault proxy: upstream unreachable: {exc}".encode()
            return _Answer(502, [("Content-Type", "text/plain")], message)
        finally:
            conn.close()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end stalls and holds (held requests are never forwarded), cut open
        connections, and join every thread."""
        self.stopping.set()
        with self._lock:
            for held in self._held:
                held.let_go.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.cut_connections()
        self._server.server_close()  # joins the handler threads
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: no leaks between tests
    block_on_close = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client: object) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real service
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # tests read `proxy.seen()`, not stderr

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = proxy.record(self.command, self.path, headers, body)
        fault = proxy.choose(seen)

        if isinstance(fault, Truncate):
            answer = proxy.forward(self.command, self.path, headers, body)
            self._send_head(answer.status, answer.headers, len(answer.body))
            self.wfile.write(answer.body[: fault.keep])
            self.wfile.flush()
            self.close_connection = True
            return
        if isinstance(fault, Forward):
            answer = proxy.forward(self.command, self.path, headers, body)
            self._send(answer.status, answer.headers, answer.body)
            return
        if isinstance(fault, Hold):
            proxy.hold(seen, self.path, body).let_go.wait()
            self.close_connection = True
            return
        if isinstance(fault, Respond | Reset | Stall) and fault.forward_first:
            proxy.forward(self.command, self.path, headers, body)
        if isinstance(fault, Respond):
            self._send(fault.status, list(fault.headers.items()), fault.body)
        elif isinstance(fault, Reset):
            self._reset()
        elif isinstance(fault, Stall):
            proxy.stopping.wait(fault.seconds)
            self.close_connection = True
        else:
            raise TypeError(f"unknown fault {fault!r}")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def _send_head(self, status: int, headers: list[tuple[str, str]], length: int) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _NOT_RELAYED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._send_head(status, headers, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


__all__ = [
    "Fault",
    "FaultProxy",
    "Forward",
    "Hold",
    "Held",
    "Reset",
    "Respond",
    "Seen",
    "Stall",
    "Truncate",
    "envelope",
    "error_after_forward",
    "html_page",
    "invalid_json",
    "too_many_requests",
    "unavailable",
]
