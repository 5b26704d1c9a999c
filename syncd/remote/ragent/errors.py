"""Where a ragent-oss gateway's answers become syncd errors, once (the transport's own failures
are `syncd.remote.httperrors.converting`'s). The mapping (protocol notes, "Errors"):

======================================================  ===================
401 (a JSON endpoint: the key is wrong)                  FatalError
403 on a presigned or signed URL (expired or mangled)    UrlRefused: presign
                                                         or sign again
404 on a signed URL                                      ItemError: the
                                                         object is gone
408, 429 (with Retry-After), 5xx                         TransientError
a 2xx of a JSON endpoint that is not the JSON expected   TransientError
any other 4xx (422, 413, ...)                            ItemError
======================================================  ===================

A message shows the gateway's ``error`` or ``detail`` text when it has one, and nothing else of
the answer; never a header, and never a URL's query (where the signature is).
"""

from __future__ import annotations

import json

import httpx

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.httperrors import DETAIL_CHARS, Call, parse_retry_after, printable


class UrlRefused(TransientError):
    """A presigned or signed URL was refused (403): it expired, or was mangled on the way. Ask
    for a fresh one; retried as it is, it fails again."""


def check_status(response: httpx.Response, call: Call, *, url: bool = False) -> None:
    """Raise the syncd error for a non-2xx answer (its body already read). `url`: the answer is
    to a URL the gateway returned (a PUT or GET of an object), not to a JSON endpoint."""
    status = response.status_code
    if 200 <= status < 300:
        return
    where = f"HTTP {status} from {call.endpoint}"
    detail = _detail(response)
    if status == 401 or (status == 403 and not url):
        raise FatalError(
            f"authentication failed for remote {call.remote} ({where}) during {call.describe()}", status=status
        )
    if status == 403:
        raise UrlRefused(f"{call.describe()} failed: the gateway refused its URL ({where}{detail})", status=status)
    if status == 404 and url:
        raise ItemError(f"{call.describe()} failed: the object is gone from the gateway ({where})", status=status)
    if status in (408, 429) or status >= 500:
        raise TransientError(
            f"{call.describe()} failed: {where}{detail}",
            status=status, retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise ItemError(f"{call.describe()} failed: {where}{detail}", status=status)


def json_object(response: httpx.Response, call: Call) -> dict[str, object]:
    """The JSON object a JSON endpoint answered with (2xx checked by the caller); a body that is
    not one is a malformed, transient answer."""
    try:
        payload = json.loads(response.content)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise malformed(call, "not a JSON object")
    return payload


def text_field(payload: dict[str, object], key: str, call: Call) -> str:
    """`payload[key]`, a non-empty string, or a malformed answer."""
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise malformed(call, f"no {key!r}")
    return value


def malformed(call: Call, why: str) -> TransientError:
    """The error for an answer that does not follow the protocol."""
    return TransientError(f"{call.describe()} failed: malformed answer from {call.endpoint} ({why})")


def _detail(response: httpx.Response) -> str:
    """`: <gateway message>` from an error body's ``error`` or ``detail``, else ""."""
    try:
        payload = json.loads(response.content[: 64 * 1024])
    except (ValueError, RecursionError):
        return ""
    if isinstance(payload, dict):
        for key in ("error", "detail"):
            message = payload.get(key)
            if isinstance(message, str) and message:
                return f": {printable(message)[:DETAIL_CHARS]}"
    return ""
