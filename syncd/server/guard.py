"""The file service's defences against slow, silent and greedy clients.

uvicorn bounds none of: how long a client may take to send its request headers, how slowly
it may send a body, how long it may leave a response unread, how many connections it may
hold open. All of that is done here, in one place: `GuardedH11Protocol`, uvicorn's h11
protocol with a per-connection watchdog, following Apache's mod_reqtimeout:

* headers: complete within `header_timeout` of the connection (or of the first byte of a
  request on a kept-alive connection), extended by 1 s per `min_rate` bytes received, at
  most twice `header_timeout`. A silent connection is closed, a trickled one gets a 408.
* body: `body_timeout` from the end of the headers, extended by 1 s per `min_rate` bytes
  received, and never more than `body_timeout` without a byte. The application's
  `receive()` then sees `http.disconnect` (so an upload handler removes its temp files)
  and the connection is closed.
* Both clocks only run while the service waits for the client: not while uvicorn has
  paused reading because the application has yet to consume what arrived.
* send: a response the client does not read (the transport's writes paused), or a closing
  connection whose last bytes the client does not take, for `send_timeout`: aborted.
* keep-alive: uvicorn's own idle timer (`keep_alive_timeout`).
* connections: beyond `max_connections` open at once a new one gets a 503 and is closed
  at once, which frees its descriptor straight away; "auto" derives the limit from the
  soft RLIMIT_NOFILE so that descriptors do not run out (an upload holds about three: its
  socket, its temp or part file, a spool file).
* shutdown: on SIGTERM uvicorn stops accepting and waits up to `shutdown_timeout` for the
  requests in flight; the guard disconnects whatever is still running shortly before that
  deadline, so handlers clean up rather than being cancelled.

When descriptors do run out all the same (a `max_connections` set above what the limit
allows, or descriptors held elsewhere), CPython's accept loop (3.11; python/cpython#151615)
goes on calling accept() for the whole backlog after the first "Too many open files", each
failure logging a traceback and scheduling another retry: thousands of lines a second and a
spinning core. `new_event_loop` gives uvicorn a loop that ends such a round at its first
resource error (one log line and one retry a second, as asyncio intends), and
`RateLimitFilter` lets one message of the `asyncio` and `uvicorn.error` loggers through at
most once per `LOG_EVERY` seconds. Connections cut by the guard are logged as counts, at most
once per `LOG_EVERY` seconds too.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = structlog.get_logger("syncd.server")

#: At most one summary line of cut connections (and of one repeated asyncio/uvicorn message) per this many seconds.
LOG_EVERY = 10.0
#: Descriptors an upload connection may hold: its socket, its temp or part file, a spool file.
FDS_PER_CONNECTION = 3
#: Descriptors kept for everything else: the listening socket, the database, logs, threads.
FDS_RESERVED = 64

Phase = Literal["headers", "body", "busy", "idle", "closed"]


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """How long and how many: the limits `syncd serve` puts on its clients."""

    #: Seconds to send the request headers, extended by 1 s per `min_rate` bytes, at most doubled.
    header_timeout: float = 20.0
    #: Seconds for the body after the headers, extended by 1 s per `min_rate` bytes; also the longest pause.
    body_timeout: float = 20.0
    #: Bytes that earn a header or body deadline one more second.
    min_rate: int = 500
    #: Seconds a client may leave a response unread before the connection is aborted.
    send_timeout: float = 60.0
    #: Seconds an idle kept-alive connection stays open.
    keep_alive_timeout: int = 30
    #: Open connections at most; None: derived from the soft RLIMIT_NOFILE (`auto_max_connections`).
    max_connections: int | None = None
    #: Seconds a SIGTERM waits for requests in flight.
    shutdown_timeout: int = 10

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "send_timeout", "keep_alive_timeout", "min_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, not {self.shutdown_timeout!r}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections!r}")

    def connection_limit(self) -> int:
        return self.max_connections if self.max_connections is not None else auto_max_connections()


def auto_max_connections(soft_limit: int | None = None) -> int:
    """As many connections as the descriptors allow (soft RLIMIT_NOFILE), between 16 and 1000."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return 1000
    return max(16, min(1000, (soft_limit - FDS_RESERVED) // FDS_PER_CONNECTION))


OVER_LIMIT = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\ntoo many connections"
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest too slow"
)


class _Tally:
    """Counts of connections cut, per reason, logged at most once per LOG_EVERY seconds."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last = -LOG_EVERY
        self.flush_scheduled = False

    def add(self, loop: asyncio.AbstractEventLoop, reason: str) -> None:
        self.counts[reason] += 1
        if loop.time() - self.last >= LOG_EVERY:
            self.flush(loop)
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            loop.call_at(self.last + LOG_EVERY, self.flush, loop)

    def flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self.flush_scheduled = False
        if self.counts:
            self.last = loop.time()
            log.info("connections cut", **dict(self.counts))
            self.counts.clear()


class _WatchedFlow(FlowControl):
    """uvicorn's flow control, telling the protocol when reading pauses or resumes."""

    def __init__(self, transport: asyncio.Transport, changed: Callable[[], None]) -> None:
        super().__init__(transport)
        self._changed = changed

    def pause_reading(self) -> None:
        paused = self.read_paused
        super().pause_reading()
        if not paused:
            self._changed()

    def resume_reading(self) -> None:
        paused = self.read_paused
        super().resume_reading()
        if paused:
            self._changed()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header, body, send and shutdown deadlines and a connection
    limit. Use `guarded_protocol(limits)` for a class bound to a set of limits."""

    limits: ClassVar[ServeLimits] = ServeLimits()
    max_connections: ClassVar[int] = 1000
    tally: ClassVar[_Tally] = _Tally()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase = "closed"
        self._rejected = False
        self._lost = False
        # The phase's clock: seconds spent waiting for the client, and since when it runs (None: stopped).
        self._spent = 0.0
        self._running_since: float | None = None
        self._phase_bytes = 0
        self._last_byte_at = 0.0  # on the phase's clock
        self._write_paused_since: float | None = None
        self._closing_since: float | None = None
        self._cut_at: float | None = None  # shutdown: disconnect whatever still runs then
        self._timer: asyncio.TimerHandle | None = None

    # -- the connection limit -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._rejected = True
            self.transport = transport
            transport.write(OVER_LIMIT)
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
            self.tally.add(self.loop, "over_limit")
            return
        super().connection_made(transport)
        self.flow = _WatchedFlow(transport, self._reading_changed)
        self._enter("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._phase = "closed"
        self._cancel_timer()
        if self._rejected:
            return
        super().connection_lost(exc)

    # -- following the request through its phases -----------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if self._phase == "idle":  # the first bytes of the next request on a kept-alive connection
            self._enter("headers")
        self._phase_bytes += len(data)
        self._last_byte_at = self._elapsed()
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next request's cycle: handle_events follows it
        self._follow()

    def _follow(self) -> None:
        """Set the phase from h11's view of the client."""
        if self._lost or self._phase == "closed":
            return
        if self.transport.is_closing():
            self._closed_by_us()
            return
        theirs = self.conn.their_state
        phase: Phase
        if theirs is h11.SEND_BODY:
            phase = "body"
        elif theirs is h11.IDLE:
            if self._phase in ("headers", "idle"):
                phase = self._phase
            else:  # a response just completed: wait for the next request
                phase = "headers" if self.conn.trailing_data[0] else "idle"
        else:
            phase = "busy"  # the request is in; the application has the turn
        if phase != self._phase:
            self._enter(phase)

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._spent = 0.0
        self._phase_bytes = 0
        self._last_byte_at = 0.0
        self._running_since = self.loop.time() if self._clock_runs() else None
        if phase == "headers":
            self._unset_keepalive_if_required()  # the request under way has its own deadline
        self._arm()

    # -- the clock ---------------------------------------------------------------------------

    def _clock_runs(self) -> bool:
        return self._phase in ("headers", "body") and not (self.flow is not None and self.flow.read_paused)

    def _elapsed(self) -> float:
        if self._running_since is None:
            return self._spent
        return self._spent + self.loop.time() - self._running_since

    def _reading_changed(self) -> None:
        runs = self._clock_runs()
        if runs and self._running_since is None:
            self._running_since = self.loop.time()
        elif not runs and self._running_since is not None:
            self._spent = self._elapsed()
            self._running_since = None
        self._arm()

    def _phase_left(self) -> float | None:
        """Seconds of the phase's clock left before its deadline; None when there is none."""
        if self._phase not in ("headers", "body"):
            return None
        limits = self.limits
        earned = self._phase_bytes / limits.min_rate
        elapsed = self._elapsed()
        if self._phase == "headers":
            return min(limits.header_timeout + earned, 2 * limits.header_timeout) - elapsed
        return min(limits.body_timeout + earned - elapsed, limits.body_timeout - (elapsed - self._last_byte_at))

    # -- the watchdog ----------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        """(Re)schedule the watchdog for the nearest deadline; at least every `send_timeout`
        seconds it also looks for a connection stuck closing."""
        self._cancel_timer()
        if self._lost or self._rejected:
            return
        now = self.loop.time()
        send = self.limits.send_timeout
        wake = now + send
        left = self._phase_left()
        if left is not None and self._running_since is not None:
            wake = min(wake, now + left)
        for since in (self._write_paused_since, self._closing_since):
            if since is not None:
                wake = min(wake, since + send)
        if self._cut_at is not None:
            wake = min(wake, self._cut_at)
        self._timer = self.loop.call_at(max(wake, now) + 0.001, self._watch)

    def _watch(self) -> None:
        self._timer = None
        if self._lost:
            return
        now = self.loop.time()
        send = self.limits.send_timeout
        if self.transport.is_closing() and self._closing_since is None:
            self._closing_since = now
        if (self._closing_since is not None and now - self._closing_since >= send) or (
            self._write_paused_since is not None and now - self._write_paused_since >= send
        ):
            self._cut("send_timeout")
            return
        if self._cut_at is not None and now >= self._cut_at:
            self._cut("shutdown")
            return
        left = self._phase_left()
        if left is not None and left <= 0:
            self._cut("header_timeout" if self._phase == "headers" else "body_timeout")
            return
        self._arm()

    # -- cutting -------------------------------------------------------------------------------

    def _cut(self, reason: str) -> None:
        """End the connection: a 408 to a client still sending its request, `http.disconnect` to
        the application, then close, or abort when the client is not reading anyway."""
        self.tally.add(self.loop, reason)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if reason == "send_timeout" or self.transport.is_closing():
            self.transport.abort()
            return
        if self._phase == "headers":  # (any cycle is the previous request's)
            answer = self._phase_bytes > 0  # a silent connection is just closed
        else:
            answer = self._phase == "body" and cycle is not None and not cycle.response_started
        if answer:
            self.transport.write(TIMED_OUT)
        self.transport.close()
        self._closed_by_us()

    def _closed_by_us(self) -> None:
        self._phase = "closed"
        self._running_since = None
        if self._closing_since is None:
            self._closing_since = self.loop.time()
        self._arm()

    # -- uvicorn's other ways to end a connection ------------------------------------------

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._follow()

    def send_400_response(self, msg: str) -> None:
        super().send_400_response(msg)
        self._follow()

    def shutdown(self) -> None:
        super().shutdown()
        if self.transport.is_closing():
            self._follow()
            return
        grace = float(self.config.timeout_graceful_shutdown or 0)
        self._cut_at = self.loop.time() + grace - min(1.0, grace / 2)
        self._arm()

    # -- a client that does not read --------------------------------------------------------

    def pause_writing(self) -> None:
        if self._rejected:
            return
        super().pause_writing()
        if self._write_paused_since is None:
            self._write_paused_since = self.loop.time()
            self._arm()

    def resume_writing(self) -> None:
        if self._rejected:
            return
        super().resume_writing()
        self._write_paused_since = None


def guarded_protocol(limits: ServeLimits) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class bound to `limits` (uvicorn's `http=`); one per server."""

    class Guarded(GuardedH11Protocol):
        pass

    Guarded.limits = limits
    Guarded.max_connections = limits.connection_limit()
    Guarded.tally = _Tally()
    return Guarded


class RateLimitFilter(logging.Filter):
    """Lets one message through at most once per `every` seconds (with the count of the ones held
    back since), a message being its logger, level, first line and exception."""

    def __init__(self, every: float = LOG_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self.seen: dict[tuple[str, int, str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        first_line = record.getMessage().partition("\n")[0]
        key = (record.name, record.levelno, first_line, repr(exc) if exc is not None else "")
        now = self.clock()
        seen = self.seen.get(key)
        if seen is not None and now - seen[0] < self.every:
            self.seen[key] = (seen[0], seen[1] + 1)
            return False
        if len(self.seen) > 1000:  # forget messages not seen for a while
            self.seen = {k: v for k, v in self.seen.items() if now - v[0] < self.every}
        self.seen[key] = (now, 0)
        if seen is not None and seen[1]:
            held, since = seen[1], now - seen[0]
            record.msg = f"{record.getMessage()}\n({held} more like this in the last {since:.0f} s not logged)"
            record.args = None
        return True


#: Loggers that can repeat one line as fast as clients (or a failing accept()) make them.
FLOODABLE = ("asyncio", "uvicorn.error")


def install_log_rate_limit() -> None:
    """Rate-limit the FLOODABLE loggers (once per process)."""
    for name in FLOODABLE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())


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
