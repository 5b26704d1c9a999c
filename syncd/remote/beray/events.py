"""A BeRay task's event stream (server-sent events), read as hints to list the task now.

The service promises no event schema, so every event counts, and so does a (re)connection:
events may have been missed while the stream was down. The stream is read line by line as the
bytes arrive; ``data:`` lines of one event are joined, comments (``: keepalive``) and the
``event:``/``id:``/``retry:`` fields are not hints. A stream that ends or fails is opened again
after a backoff (1 s, doubling to 30 s; back to 1 s once a stream delivered an event). The read
timeout is well above the service's keepalive, so a silent, dead connection is noticed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import structlog

log = structlog.get_logger("syncd.remote.beray.events")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0


def events(lines: Iterable[str]) -> Iterable[str]:
    """The data of each complete event in an SSE stream's lines (comments and fields skipped)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # a comment: a keepalive, not an event
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def follow(open_stream: Callable[[], Iterable[str]], on_hint: Callable[[], object], stop: threading.Event,
           *, what: str) -> None:
    """Read the stream `open_stream` gives, calling `on_hint` on connecting and on every event,
    until `stop`; reconnect with backoff whenever it ends or fails."""
    backoff = FIRST_BACKOFF
    while not stop.is_set():
        try:
            lines = open_stream()
            on_hint()  # connected: whatever happened while we were not listening
            for _ in events(_until(lines, stop)):
                on_hint()
                backoff = FIRST_BACKOFF
        except Exception as exc:  # noqa: BLE001 - any failure of the stream: reconnect later
            log.info("event stream interrupted", stream=what, error=str(exc), retry_in=backoff)
        else:
            log.debug("event stream ended", stream=what)
        if stop.wait(backoff):
            return
        backoff = min(MAX_BACKOFF, backoff * 2)


def _until(lines: Iterable[str], stop: threading.Event) -> Iterable[str]:
    for line in lines:
        if stop.is_set():
            return
        yield line
