"""Where an AgentRun data API's answers become syncd errors, once (the transport's own failures
are `syncd.remote.httperrors.converting`'s). The mapping (protocol notes, "Errors"):

=====================================================  =====================
401, 403 (the key, its signature, the clock)             FatalError (the hint
                                                         for a skewed clock)
404 ``SandboxNotFound``, on any call                     PlaceGone: the folder
                                                         pauses
404 ``FileNotFound`` (or any other 404)                  ItemError, status 404
408, 429 (with Retry-After), 5xx                         TransientError
a 2xx JSON answer that is not JSON, or whose ``code``    TransientError /
is there and is not ``SUCCESS``                          ItemError
any other 4xx                                            ItemError
=====================================================  =====================

A message shows the service's ``code``, ``message`` and request id, never a header (the
signature) and never the secret.
"""

from __future__ import annotations

import json

import httpx

from syncd.errors import FatalError, ItemError, PlaceGone, TransientError
from syncd.remote.httperrors import DETAIL_CHARS, Call, parse_retry_after, printable

SKEW_HINT = "this machine's clock is more than 15 minutes off: set it right (e.g. with NTP)"


def check_status(response: httpx.Response, call: Call, sandbox: str) -> None:
    """Raise the syncd error for a non-2xx answer (its body already read)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    code, message = _code(response)
    where = f"HTTP {status}{f' {code}' if code else ''} from {call.endpoint}"
    detail = f": {message}" if message else ""
    request_id = response.headers.get("x-acs-request-id")
    if request_id:
        detail += f" (request id {printable(request_id)[:80]})"
    if status in (401, 403):
        hint = f"; {SKEW_HINT}" if code == "RequestTimeTooSkewed" else ""
        raise FatalError(
            f"authentication failed for remote {call.remote} ({where}) during {call.describe()}{hint}", status=status
        )
    if status == 404 and code == "SandboxNotFound":
        raise PlaceGone(f"sandbox {sandbox!r} is gone (expired or deleted): {call.describe()} got {where}",
                        status=status)
    if status in (408, 429) or status >= 500:
        raise TransientError(f"{call.describe()} failed: {where}{detail}", status=status,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")))
    raise ItemError(f"{call.describe()} failed: {where}{detail}", status=status)


def json_answer(response: httpx.Response, call: Call) -> object:
    """The JSON of a 2xx answer; not JSON is transient, a ``code`` other than SUCCESS an item error."""
    try:
        payload = json.loads(response.content)
    except (ValueError, RecursionError):
        raise TransientError(f"{call.describe()} failed: malformed answer from {call.endpoint} (not JSON)") from None
    if isinstance(payload, dict):
        code = payload.get("code")
        if code is not None and code != "SUCCESS":
            message = payload.get("message")
            text = f": {printable(message)[:DETAIL_CHARS]}" if isinstance(message, str) and message else ""
            answered = printable(str(code))[:40]
            raise ItemError(f"{call.describe()} failed: {call.endpoint} answered code {answered}{text}")
    return payload


def _code(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        payload = json.loads(response.content[: 64 * 1024])
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    code, message = payload.get("code"), payload.get("message")
    return (printable(code)[:60] if isinstance(code, str) else None,
            printable(message)[:DETAIL_CHARS] if isinstance(message, str) and message else None)
