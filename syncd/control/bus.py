"""Events from the daemon's threads to the readers of `GET /events`.

`publish` is called from any thread (workers, the daemon's loop, request handlers) and never
blocks: each reader has a bounded buffer, and a reader that falls more than `BACKLOG` events
behind is cut off with a last `overflow` event rather than holding the daemon back or growing
without bound. `close` ends every stream (the daemon stops), so no reader keeps the service's
shutdown waiting.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

#: The most events one reader may have waiting before it is cut off.
BACKLOG = 10_000

Event = dict[str, Any]
_END: Event = {}


class _Reader:
    """One stream: an asyncio queue fed from other threads through its loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.pending = 0  # events handed to the loop and not yet taken (under the bus's lock)
        self.cut = False

    def offer(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class EventBus:
    """Fan-out of the daemon's events to every connected reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: set[_Reader] = set()
        self._closed = False

    def publish(self, event: str, **fields: Any) -> None:
        """Send one event, stamped with the local time, to every reader (any thread)."""
        doc: Event = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"), "event": event, **fields}
        with self._lock:
            readers = list(self._readers)
            for reader in readers:
                if reader.cut:
                    continue
                if reader.pending >= BACKLOG:
                    reader.cut = True
                    self._send(reader, {**doc, "event": "overflow", "dropped_after": BACKLOG})
                    self._send(reader, _END)
                    continue
                reader.pending += 1
                self._send(reader, doc)

    @staticmethod
    def _send(reader: _Reader, doc: Event) -> None:
        try:
            reader.offer(doc)
        except RuntimeError:  # its loop is closed: the reader is gone
            reader.cut = True

    @property
    def readers(self) -> int:
        with self._lock:
            return len(self._readers)

    def open(self) -> Stream:
        """A reader of the events published from now on (registered at once, so nothing
        published after this call is missed), until the bus closes or the reader is cut off.
        Call from the event loop the reader iterates on."""
        reader = _Reader(asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                reader.cut = True
                reader.queue.put_nowait(_END)
            else:
                self._readers.add(reader)
        return Stream(self, reader)

    def _drop(self, reader: _Reader) -> None:
        with self._lock:
            self._readers.discard(reader)

    def _taken(self, reader: _Reader) -> None:
        with self._lock:
            reader.pending = max(0, reader.pending - 1)

    def close(self) -> None:
        """End every stream; later readers get none."""
        with self._lock:
            self._closed = True
            readers = list(self._readers)
            for reader in readers:
                self._send(reader, _END)


class Stream:
    """One reader's events, as an async iterator; `close` (or the end) unregisters it."""

    def __init__(self, bus: EventBus, reader: _Reader) -> None:
        self._bus = bus
        self._reader = reader

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        try:
            while True:
                doc = await self._reader.queue.get()
                self._bus._taken(self._reader)
                if doc is _END:
                    return
                yield doc
        finally:
            self.close()

    def close(self) -> None:
        self._bus._drop(self._reader)
