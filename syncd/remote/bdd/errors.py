"""Where HTTP failures become syncd errors, once (cf. httpx `map_httpcore_exceptions`).

Every remote call of `BddRemote` runs inside `converting(call)` (the transport's failures,
shared by every kind: `syncd.remote.httperrors`) and hands its answer to
`check_status`/`envelope_data` (in `bdd_wire`); nothing else in syncd looks at httpx
exceptions or BDD's status codes. The mapping:

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

import json

import httpx

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.httperrors import (
    DETAIL_CHARS,
    Call,
    converting,
    parse_retry_after,
    printable,
    request_may_have_arrived,
    safe_origin,
)

__all__ = [
    "Call", "check_status", "converting", "malformed", "parse_retry_after", "request_may_have_arrived", "safe_origin",
]


def malformed(call: Call, why: str) -> TransientError:
    """The error for an answer that does not follow the protocol."""
    return TransientError(f"{call.describe()} failed: malformed answer from {call.endpoint} ({why})")


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
            return f": {printable(message)}"
        return ""
    if "json" in response.headers.get("Content-Type", "") or "html" in response.headers.get(
        "Content-Type", ""
    ):
        return ""  # an HTML error page says nothing a user needs
    text = response.content[:DETAIL_CHARS].decode("utf-8", "replace").strip()
    return f": {printable(text)}" if text else ""


