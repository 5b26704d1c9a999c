"""Where a BeRay service's answers become syncd errors, once (the transport's own failures are
`syncd.remote.httperrors.converting`'s). The mapping (protocol notes, "Errors"):

==================================================  ====================================
401, 403                                             Refused: log in again once, then
                                                     FatalError (the remote pauses)
404 on the task (``Task not found``)                 PlaceGone: the folder pauses
404 on a path                                        ItemError, status 404
400, 422 and other 4xx                               ItemError (a bad path: that item)
408, 429 (with Retry-After), 5xx                     TransientError
==================================================  ====================================

A message shows the service's ``detail`` (a string, or a summary of a list), never a header:
neither the token nor the password can leak through one.
"""

from __future__ import annotations

import json

import httpx

from syncd.core.words import counted
from syncd.errors import FatalError, ItemError, PlaceGone, TransientError
from syncd.remote.httperrors import DETAIL_CHARS, Call, parse_retry_after, printable


class Refused(FatalError):
    """401/403: the token was refused. The client logs in again once before it gives up."""


def check_status(response: httpx.Response, call: Call, task_id: int) -> None:
    """Raise the syncd error for a non-2xx answer (its body already read)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = _detail(response)
    where = f"HTTP {status} from {call.endpoint}"
    if status in (401, 403):
        raise Refused(f"authentication failed for remote {call.remote} ({where}) during {call.describe()}",
                      status=status)
    if status == 404 and detail.lower().startswith("task not found"):
        raise PlaceGone(f"task {task_id} is gone: {call.describe()} got {where}", status=status)
    shown = f": {detail}" if detail else ""
    if status in (408, 429) or status >= 500:
        raise TransientError(f"{call.describe()} failed: {where}{shown}", status=status,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")))
    raise ItemError(f"{call.describe()} failed: {where}{shown}", status=status)


def _detail(response: httpx.Response) -> str:
    try:
        payload = json.loads(response.content[: 64 * 1024])
    except (ValueError, RecursionError):
        return ""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):
        return printable(detail)[:DETAIL_CHARS]
    if isinstance(detail, list):
        return counted(len(detail), "validation error")
    return ""
