"""Logging that a flood of clients cannot turn into a flood of lines.

A client (or a failing accept()) can make the `asyncio` and `uvicorn.error` loggers repeat one
line as fast as it likes, and the connection guard cuts connections as fast as they come.
Invariants: `RateLimitFilter` lets one message (its logger, level, first line and exception)
through at most once per LOG_EVERY seconds, and says how many it held back when it next lets
it through; `CutTally` logs the connections cut as counts per reason, at most one line per
LOG_EVERY seconds, and while the loop runs no count added goes unlogged (a later flush is
always scheduled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

import structlog

log = structlog.get_logger("syncd.server")

#: At most one summary line of cut connections (and of one repeated asyncio/uvicorn message) per this many seconds.
LOG_EVERY = 10.0


class CutTally:
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
