"""What the watcher tests share: a recorder of its callbacks, folders with a marker, writes, and
barriers.

Every wait is on a condition. To show that something was *not* reported, a test writes a barrier
file after it and waits for the barrier's report: events reach the settler in order and settle
in order, so by then anything earlier has been reported or never will be.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.local.watch import Watcher
from tests.support.leaks import no_new_threads

SETTLE = 0.3
WAIT = 10.0  # generous: a condition that holds is seen at once
_barriers = itertools.count()


class Recorder:
    """Collects callbacks; `wait_for` blocks until a predicate over them holds."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, frozenset[str]]] = []  # (monotonic time, folder, names)
        self.troubles: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def settled(self, folder: str, names: set[str]) -> None:
        with self._cond:
            self.calls.append((time.monotonic(), folder, frozenset(names)))
            self._cond.notify_all()

    def trouble(self, folder: str, reason: str) -> None:
        with self._cond:
            self.troubles.append((folder, reason))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, WAIT), f"timed out waiting for {what}: {self.calls} {self.troubles}"

    def times(self, folder: str, name: str) -> list[float]:
        """When `name` was reported for `folder`."""
        with self._cond:
            return [t for t, f, names in self.calls if f == folder and name in names]

    def names(self, folder: str | None = None) -> list[str]:
        """Every reported name (with repeats), barriers left out."""
        with self._cond:
            return [
                n for _, f, names in self.calls if folder in (None, f) for n in names if not n.startswith("zz-barrier")
            ]

    def clear(self) -> None:
        with self._cond:
            self.calls.clear()
            self.troubles.clear()


def folder(tmp_path: Path, name: str) -> Path:
    """A new folder `name` under `tmp_path`, with its marker."""
    path = tmp_path / name
    (path / ".syncd" / "tmp").mkdir(parents=True)
    return path


def write(path: Path, data: bytes = b"x", mode: str = "wb") -> float:
    """Write and close; returns the time it was done."""
    with open(path, mode) as f:
        f.write(data)
    return time.monotonic()


def barrier(rec: Recorder, path: Path, name: str = "f") -> None:
    """Wait until everything that happened in the folder before now has settled."""
    marker = f"zz-barrier-{next(_barriers)}"
    write(path / marker)
    rec.wait_for(lambda: bool(rec.times(name, marker)), f"barrier {marker}")


Make = Callable[..., tuple[Watcher, Recorder]]


@pytest.fixture
def make() -> Iterator[Make]:
    """Builds watchers (stopped at the end); fails the test if any thread outlives it."""
    made: list[Watcher] = []

    def build(settle: float = SETTLE) -> tuple[Watcher, Recorder]:
        rec = Recorder()
        watcher = Watcher(settle, rec.settled, rec.trouble)
        made.append(watcher)
        return watcher, rec

    with no_new_threads():
        yield build
        for watcher in made:
            watcher.stop()
