"""A client-side request-rate limit shared by every thread of one remote.

Requests are spaced `60 / requests_per_minute` seconds apart: each caller
reserves the next free slot under a lock, then sleeps outside it, so waiting
threads never block each other's bookkeeping. The clock and the sleep are
injectable so tests can drive the limiter without waiting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces calls to `acquire()` evenly; `per_minute <= 0` means no limit."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Invariant: no request may start before `_next_slot` (clock time).
        self._next_slot = -math.inf

    @property
    def interval(self) -> float:
        """Seconds between two requests (0 when unlimited)."""
        return self._interval

    def reserve(self) -> float:
        """Claim the next slot; return how long the caller must wait before using it."""
        if self._interval == 0.0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next_slot)
            self._next_slot = start + self._interval
            return start - now

    def acquire(self) -> None:
        """Block until this caller may send its request."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
