"""Where any HTTP remote's transport failures become syncd errors, once (cf. httpx
`map_httpcore_exceptions`): what every kind's client shares. Each kind's own package then reads
its protocol's answers (status codes, bodies) through its own error seam.

==================================================  ==============
connection refused/reset, timeouts, protocol errors  TransientError
a bad remote URL                                     FatalError
too many redirects                                   ItemError
==================================================  ==============

Messages name the operation, its subject and, when the transport failed, where it went (the
remote's `scheme://host:port`, or the Unix socket an embedded remote is reached through, so a
"could not connect" says to what); they never carry a header value or a URL's user info, path
or query, so neither a key nor a signature can leak through them.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from syncd.errors import FatalError, ItemError, RemoteError, TransientError

#: How much of an error answer's text a message keeps.
DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Call:
    """One remote operation, as its messages describe it."""

    action: str  # "upload", "download", "list", ...
    subject: str  # "'a.txt' in chat 'c1'", "file 42"
    endpoint: str  # "/uploadSimpleFile"
    remote: str  # scheme://host[:port] the call goes to, never with credentials (or a Unix socket)

    def describe(self) -> str:
        """`action subject`, the start of every message about this call."""
        return f"{self.action} {self.subject}"


def safe_origin(url: httpx.URL) -> str:
    """`scheme://host[:port]` of `url` (an IPv6 host in brackets): what messages may say about
    a remote. Never the user info, path or query, where credentials or signatures may sit."""
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}"


@contextmanager
def converting(call: Call) -> Iterator[None]:
    """Run an exchange with the remote, turning httpx exceptions into syncd errors."""
    try:
        yield
    except RemoteError:
        raise
    except httpx.TimeoutException as exc:
        raise TransientError(f"{call.describe()} failed: {_timeout_kind(exc)} {call.remote} ({call.endpoint})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError, httpx.DecodingError) as exc:
        raise TransientError(f"{call.describe()} failed: {_network_kind(exc)} {call.remote} ({call.endpoint})") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FatalError(f"{call.describe()} failed: bad remote url for {call.remote}") from exc
    except httpx.TransportError as exc:
        # Anything else the transport reports (e.g. a local protocol error) may pass on a fresh try.
        raise TransientError(f"{call.describe()} failed: {type(exc).__name__} ({call.endpoint})") from exc
    except httpx.TooManyRedirects as exc:
        raise ItemError(f"{call.describe()} failed: too many redirects ({call.endpoint})") from exc


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    """What went wrong, worded to be followed by the remote's origin."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting to"
    if isinstance(exc, httpx.PoolTimeout):
        return "timed out waiting for a free connection to"
    if isinstance(exc, httpx.WriteTimeout):
        return "timed out sending to"
    return "timed out waiting for the answer of"


def _network_kind(exc: Exception) -> str:
    """What went wrong, worded to be followed by the remote's origin."""
    if isinstance(exc, httpx.ConnectError):
        return "could not connect to"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection lost or broken answer from"
    return "connection lost to"


def request_may_have_arrived(exc: BaseException) -> bool:
    """False only when the failed request certainly never reached the service.

    A retried upload after a failure where this is True may find that the
    failed attempt created the file after all (SPEC, "No duplicates").
    """
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return not (isinstance(exc, RemoteError) and exc.status == 429)


def printable(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:DETAIL_CHARS]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
