"""Settling: which changed names have been quiet long enough to plan. Pure: a clock value and a
`stat` function in, keys out; the watcher (`syncd.local.watch`) feeds it events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from syncd.core.names import normalize

Key = tuple[str, str]  # (folder name, path relative to the folder as spelled on disk)
Stat = tuple[int, int] | None  # (size, mtime_ns), None when the file does not exist

#: The longest a vanished name waits for the rest of its folder to settle (see `Settler`).
RENAME_WINDOW = 30.0


class Settler:
    """Which (folder, name) keys have been quiet for `settle` seconds with a stable stat.

    Times must not go backwards (use a monotonic clock): keys are kept in order of last touch,
    so the next deadline is the first key's and `due` stops at the first key still busy.

    A key whose file is gone is held back while another key of its folder still waits (for at
    most `rename_window` seconds): a rename whose new name is still being written (a copy, then
    a delete) reaches the planner as both of its halves in one pass, so it is paired as a
    rename instead of being sent as a deletion now and an upload later.
    """

    def __init__(self, settle: float, rename_window: float = RENAME_WINDOW) -> None:
        self.settle = settle
        self.rename_window = rename_window
        self._waiting: OrderedDict[Key, tuple[float, Stat]] = OrderedDict()  # key -> (last touch, stat)
        self._held: dict[Key, float] = {}  # vanished key -> when it was first held back

    def touch(self, key: Key, now: float, stat: Stat) -> None:
        """An event for `key` at `now`, with the stat seen then: (re)start its quiet period."""
        self._held.pop(key, None)
        self._waiting[key] = (now, stat)
        self._waiting.move_to_end(key)

    def due(self, now: float, stat: Callable[[Key], Stat]) -> list[Key]:
        """Remove and return the keys quiet for `settle` whose stat is still the one recorded.

        A key whose stat changed without an event is not due: its quiet period starts again.
        """
        ready: list[Key] = []
        gone: set[Key] = set()
        changed: list[tuple[Key, Stat]] = []
        while self._waiting:
            key, (since, seen) = next(iter(self._waiting.items()))
            if now - since < self.settle:
                break  # every later key was touched later still
            self._waiting.popitem(last=False)
            current = stat(key)
            if current == seen:
                ready.append(key)
                if current is None:
                    gone.add(key)
            else:
                changed.append((key, current))
        for key, current in changed:
            self.touch(key, now, current)
        # A folder is busy while a key of it waits that is not a vanished one held back here.
        busy = {key[0] for key in self._waiting if key not in self._held}
        held = [key for key in ready if key in gone and key[0] in busy and self._holds(key, now)]
        for key in held:
            self._held.setdefault(key, now)
            self._waiting[key] = (now, None)
            self._waiting.move_to_end(key)
        # Held keys whose folder has just settled go now, with the rest of it.
        for key in [k for k in self._held if k[0] not in busy and k in self._waiting]:
            del self._waiting[key]
            ready.append(key)
        released = [key for key in ready if key not in held]
        for key in released:
            self._held.pop(key, None)
        return released

    def _holds(self, key: Key, now: float) -> bool:
        return now - self._held.get(key, now) < self.rename_window

    def next_deadline(self) -> float | None:
        """When the earliest waiting key becomes due; None when nothing waits."""
        return next(iter(self._waiting.values()))[0] + self.settle if self._waiting else None

    def pending(self) -> int:
        """How many keys wait to settle."""
        return len(self._waiting)

    def waiting(self, folder_name: str) -> set[str]:
        """The keys (NFC paths) of one folder that wait to settle."""
        return {normalize(key[1]) for key in self._waiting if key[0] == folder_name}

    def forget(self, folder_name: str) -> None:
        """Drop every waiting key of one folder."""
        for key in [k for k in self._waiting if k[0] == folder_name]:
            del self._waiting[key]
        for key in [k for k in self._held if k[0] == folder_name]:
            del self._held[key]
