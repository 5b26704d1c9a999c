"""Leak checks for tests: threads a test started must be gone when it ends; how far memory rose."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_new_threads(grace: float = 5.0) -> Iterator[None]:
    """Fail if threads started inside the block are still alive `grace` seconds after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + grace
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"threads leaked: {[t.name for t in leaked]}")
        leaked[0].join(0.05)  # wait on the condition, not a fixed sleep


class MemoryPeak:
    """How far this process's resident memory rose above where it stood when measuring began."""

    def __init__(self) -> None:
        self.growth = 0  # bytes, known once the `peak_memory` block has ended


@contextmanager
def peak_memory() -> Iterator[MemoryPeak]:
    """Measure the peak RSS growth of this process (every thread) over the block.

    The kernel's high-water mark (VmHWM) is reset first (`/proc/self/clear_refs`), so a peak
    reached by an earlier test cannot hide this block's one, as `ru_maxrss` would. Where the reset
    is not allowed, a thread samples VmRSS every millisecond instead.
    """
    result = MemoryPeak()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak RSS to the current RSS
        sampler: _Sampler | None = None
    except OSError:
        sampler = _Sampler()
    before = _status_bytes("VmRSS")
    try:
        yield result
    finally:
        if sampler is None:
            result.growth = _status_bytes("VmHWM") - before
        else:
            result.growth = sampler.stop() - before


class _Sampler:
    def __init__(self) -> None:
        self.highest = _status_bytes("VmRSS")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.001):
            self.highest = max(self.highest, _status_bytes("VmRSS"))

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.highest, _status_bytes("VmRSS"))


def _status_bytes(field: str) -> int:
    """A `kB` field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")
