"""Leak checks for tests: threads a test started must be gone when it ends."""

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
