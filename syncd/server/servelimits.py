"""How long and how many: the limits `syncd serve` puts on its clients, as one value.

Invariants: a `ServeLimits` is valid once built (every timeout and `min_rate` positive,
`shutdown_timeout` not negative, `max_connections` at least 1), so nothing that reads one
checks it again. The automatic connection limit leaves every connection the descriptors an
upload holds (its socket, its temp or part file, a spool file) and keeps FDS_RESERVED for
everything else, so the service runs out of connections before it runs out of descriptors.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

#: Descriptors an upload connection may hold: its socket, its temp or part file, a spool file.
FDS_PER_CONNECTION = 3
#: Descriptors kept for everything else: the listening socket, the database, logs, threads.
FDS_RESERVED = 64


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """How long and how many: the limits `syncd serve` puts on its clients."""

    #: Seconds to send the request headers, extended by 1 s per `min_rate` bytes, at most doubled.
    header_timeout: float = 20.0
    #: Seconds for the body after the headers, extended by 1 s per `min_rate` bytes; also the longest pause.
    body_timeout: float = 20.0
    #: Bytes that earn a header or body deadline one more second.
    min_rate: int = 500
    #: Seconds a client may leave a response unread before the connection is aborted.
    send_timeout: float = 60.0
    #: Seconds an idle kept-alive connection stays open.
    keep_alive_timeout: int = 30
    #: Open connections at most; None: derived from the soft RLIMIT_NOFILE (`auto_max_connections`).
    max_connections: int | None = None
    #: Seconds a SIGTERM waits for requests in flight.
    shutdown_timeout: int = 10

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "send_timeout", "keep_alive_timeout", "min_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, not {self.shutdown_timeout!r}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections!r}")

    def connection_limit(self) -> int:
        return self.max_connections if self.max_connections is not None else auto_max_connections()


def auto_max_connections(soft_limit: int | None = None) -> int:
    """As many connections as the descriptors allow (soft RLIMIT_NOFILE), between 16 and 1000."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return 1000
    return max(16, min(1000, (soft_limit - FDS_RESERVED) // FDS_PER_CONNECTION))
