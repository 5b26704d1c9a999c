"""watchdog's Linux observer, extended in one place: it reports what watchdog keeps to itself.

IN_Q_OVERFLOW never reaches watchdog's handlers (it logs a warning and drops pending move
halves), IN_MOVE_SELF is not in its mask (a folder moved away goes unnoticed), a watch limit
reached below a recursive watch's root passes silently, and a reader or emitter thread that dies
takes the events with it. `_Reader` and `_Emitter` report each of these to `alarm` (or `lost`).
They subclass watchdog 7's inotify classes, which are not a public API: hence the pin
`watchdog>=7,<8`. Elsewhere than Linux, `make_observer` is the stock observer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import structlog
from watchdog import events as ev
from watchdog.observers.api import BaseObserver, EventQueue, ObservedWatch

log = structlog.get_logger("syncd.local.watch")

Alarm = Callable[[str | None, str], None]  # (watched path, None meaning every folder; reason)
LostWatch = Callable[[str, OSError], None]  # (a directory that got no watch, why)
_OVERFLOW = "the inotify event queue overflowed (fs.inotify.max_queued_events): file events were lost"


if sys.platform == "linux":
    from watchdog.observers.inotify import InotifyEmitter
    from watchdog.observers.inotify_c import (
        CallbackId,
        InotifyConstants,
        InotifyEvent,
        InotifyFD,
        Mask,
        WatchCallback,
        WatchDescriptor,
    )
    from watchdog.observers.inotify_move_event_grouper import GroupedInotifyEvent, PathedInotifyEvent

    class _Reader(InotifyFD):
        """The observer's inotify reader; also reports queue overflows and its own death."""

        def __init__(self, alarm: Alarm, lost: LostWatch) -> None:
            super().__init__()
            self._alarm, self._lost = alarm, lost

        def add_callback(self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId) -> WatchDescriptor:
            # watchdog passes over a subdirectory it fails to watch (only the root's failure is
            # raised to `schedule`); a watch limit reached there must not go unnoticed.
            try:
                return super().add_callback(path, mask, callback, id_)
            except OSError as exc:
                self._lost(os.fsdecode(path), exc)
                raise

        def _add_callback(self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId) -> WatchDescriptor:
            # A tree made in one go is watched twice over by a recursive watch (its parent's walk
            # finds a directory, then that directory's own IN_CREATE adds it again): the same
            # callback once more is no news, not the warning watchdog gives for it.
            watch = self._get_or_create_watch(path, mask)
            if watch.callbacks.get(id_) is callback:
                return watch.wd
            return super()._add_callback(path, mask, callback, id_)

        def handle_event(self, event: InotifyEvent) -> None:
            if event.is_queue_overflow:
                self._alarm(None, _OVERFLOW)
            super().handle_event(event)

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:
                log.exception("inotify reader died")
                self._alarm(None, f"the inotify reader thread died ({exc!r}): no more file events")

    class _Emitter(InotifyEmitter):
        """watchdog's inotify emitter, plus IN_MOVE_SELF and a report when its thread dies."""

        def __init__(self, event_queue: EventQueue, watch: ObservedWatch, *, alarm: Alarm, **kwargs: Any) -> None:
            super().__init__(event_queue, watch, **kwargs)
            self._alarm = alarm

        def get_event_mask_from_filter(self) -> Mask:
            return Mask(super().get_event_mask_from_filter() | InotifyConstants.IN_MOVE_SELF)

        def build_and_queue_event(self, event: GroupedInotifyEvent, *, full_events: bool = False) -> None:
            if isinstance(event, PathedInotifyEvent) and event.ev.is_move_self:
                # A recursive watch also hears its subdirectories move: their parents' watches
                # reported those moves (as DirMovedEvent); only the folder itself moving matters.
                if os.fsdecode(event.path) == os.fsdecode(self.watch.path):
                    self.queue_event(ev.DirMovedEvent(self.watch.path, ""))  # the watched folder moved away
                    self.stop()  # as watchdog does on IN_DELETE_SELF
            else:
                super().build_and_queue_event(event, full_events=full_events)

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:
                log.exception("inotify emitter died", path=self.watch.path)
                self._alarm(self.watch.path, f"the watch thread died ({exc!r}): no more file events")

    class _Observer(BaseObserver):
        """watchdog's InotifyObserver (one inotify instance per observer) with the classes above."""

        def __init__(self, alarm: Alarm, lost: LostWatch) -> None:
            self._reader = _Reader(alarm, lost)
            self._reader.start()
            super().__init__(_Emitter, inotify_fd=self._reader, alarm=alarm)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._reader.stop()
            self._reader.join()

    def make_observer(alarm: Alarm, lost: LostWatch) -> BaseObserver:
        return _Observer(alarm, lost)

else:  # pragma: no cover
    from watchdog.observers import Observer

    def make_observer(alarm: Alarm, lost: LostWatch) -> BaseObserver:
        return Observer()
