"""Where HTTP failures become syncd errors, once (cf. httpx `map_httpcore_exceptions`).

Every remote call of `BddRemote` runs inside `converting(call)` and hands its
answer to `check_status`/`envelope_data` (in `bdd_wire`); nothing else in
syncd looks at httpx exceptions or status codes. The mapping:

=================================================  ==============
connection refused/reset, timeouts, protocol errors  TransientError
408, 429 (with Retry-After), 5xx                     TransientError
401, 403                                             FatalError
other 4xx (and 3xx: redirects are not followed)      ItemError
answer that is not the JSON envelope                 TransientError
envelope with ``code != 0``                          ItemError
=================================================  ==============

Messages name the operation and its file; they never carry a header value,
so the API key cannot leak through them.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from syncd.errors import FatalError, ItemError, RemoteError, TransientError

#: How much of an error answer's body is kept for its message.
_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Call:
    """One remote operation, as its messages describe it."""

    action: str  # "upload", "download", "list", ...
    subject: str  # "'a.txt' in chat 'c1'", "file 42"
    endpoint: str  # "/uploadSimpleFile"
    remote: str  # scheme://host[:port] of the service, never with credentials

    def describe(self) -> str:
        """`action subject`, the start of every message about this call."""
        return f"{self.action} {self.subject}"


def safe_origin(url: httpx.URL) -> str:
    """`scheme://host[:port]` of `url`: what messages may say about a remote."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def malformed(call: Call, why: str) -> TransientError:
    """The error for an answer that does not follow the protocol."""
    return TransientError(f"{call.describe()} failed: malformed answer from {call.endpoint} ({why})")


@contextmanager
def converting(call: Call) -> Iterator[None]:
    """Run an exchange with the remote, turning httpx exceptions into syncd errors."""
    try:
        yield
    except RemoteError:
        raise
    except httpx.TimeoutException as exc:
        raise TransientError(f"{call.describe()} failed: {_timeout_kind(exc)} ({call.endpoint})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError, httpx.DecodingError) as exc:
        raise TransientError(f"{call.describe()} failed: {_network_kind(exc)} ({call.endpoint})") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise FatalError(f"{call.describe()} failed: bad remote url for {call.remote}") from exc
    except httpx.TransportError as exc:
        # Anything else the transport reports (e.g. a local protocol error) may pass on a fresh try.
        raise TransientError(f"{call.describe()} failed: {type(exc).__name__} ({call.endpoint})") from exc
    except httpx.TooManyRedirects as exc:
        raise ItemError(f"{call.describe()} failed: too many redirects ({call.endpoint})") from exc


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.PoolTimeout):
        return "timed out waiting for a free connection"
    if isinstance(exc, httpx.WriteTimeout):
        return "timed out sending"
    return "timed out waiting for the answer"


def _network_kind(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection lost or broken answer"
    return "connection lost"


def request_may_have_arrived(exc: BaseException) -> bool:
    """False only when the failed request certainly never reached the service.

    A retried upload after a failure where this is True may find that the
    failed attempt created the file after all (SPEC, "No duplicates").
    """
    cause = exc.__cause__
    if isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    return not (isinstance(exc, RemoteError) and exc.status == 429)


def check_status(response: httpx.Response, call: Call) -> None:
    """Raise the syncd error for a non-2xx answer; the body must already be read."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = _detail(response)
    where = f"HTTP {status} from {call.endpoint}"
    if status in (401, 403):
        raise FatalError(
            f"authentication failed for remote {call.remote} ({where}) during {call.describe()}",
            status=status,
        )
    if status in (408, 429) or status >= 500:
        raise TransientError(
            f"{call.describe()} failed: {where}{detail}",
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise ItemError(f"{call.describe()} failed: {where}{detail}", status=status)


def _detail(response: httpx.Response) -> str:
    """`: <server message>` from an error answer, or "" when it has none worth showing."""
    try:
        payload = json.loads(response.content)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, str) and message:
            return f": {_printable(message)}"
        return ""
    if "json" in response.headers.get("Content-Type", "") or "html" in response.headers.get(
        "Content-Type", ""
    ):
        return ""  # an HTML error page says nothing a user needs
    text = response.content[:_DETAIL_CHARS].decode("utf-8", "replace").strip()
    return f": {_printable(text)}" if text else ""


def _printable(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:_DETAIL_CHARS]


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
