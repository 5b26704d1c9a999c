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

The limits themselves are `syncd.server.servelimits`; the loop that keeps accepting from
spinning when descriptors run out all the same is `syncd.server.acceptloop`; connections cut
here are logged as counts, at most once per `LOG_EVERY` seconds (`syncd.server.lograte`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from syncd.server.lograte import CutTally
from syncd.server.servelimits import ServeLimits

Phase = Literal["headers", "body", "busy", "idle", "closed"]


OVER_LIMIT = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\ntoo many connections"
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest too slow"
)


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
    tally: ClassVar[CutTally] = CutTally()

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
    Guarded.tally = CutTally()
    return Guarded
