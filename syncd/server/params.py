"""Validation of everything a client sends the file service.

All untrusted input passes through here and comes out typed, or becomes an
`ApiError(400, ...)` that says which field is wrong and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from syncd.core.names import unsafe_reason
from syncd.server.problems import ApiError
from syncd.server.store import BIZ

MAX_USER_ID = 128
#: The largest integer SQLite (and the protocol's ids) can hold.
MAX_INT = 2**63 - 1
#: JSON request bodies (and a form's `params` field) are small; anything bigger is refused unread.
MAX_JSON_BYTES = 64 * 1024
#: Deeper nesting than any real client sends; also keeps every JSON parse far from recursion limits.
MAX_JSON_DEPTH = 32
MAX_PAGE_NUMBER = 10**9
_INTEGER = re.compile(r"-?[0-9]{1,19}")
DIRECTORY_ORDER = {
    "name_asc": "name ASC",
    "name_desc": "name DESC",
    "created_at_asc": "created_at ASC",
    "created_at_desc": "created_at DESC",
}
FILE_ORDER = {
    "name_asc": "filename ASC",
    "name_desc": "filename DESC",
    "upload_at_asc": "upload_at ASC",
    "upload_at_desc": "upload_at DESC",
}


@dataclass(frozen=True, slots=True)
class UploadParams:
    filename: str
    biz: str
    biz_params: Any
    size: int
    hashcode: str | None


def user_of(request: Request) -> str:
    """The caller's user id from `X-User-Id` (required)."""
    user = request.headers.get("x-user-id", "").strip()
    if not user:
        raise ApiError(400, "missing X-User-Id header")
    if len(user) > MAX_USER_ID or any(ord(c) < 32 for c in user):
        raise ApiError(400, "invalid X-User-Id header")
    return user


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() and len(raw) <= 19 else None


def query_int(
    request: Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(400, f"missing query parameter {name!r}")
        return default
    if not _INTEGER.fullmatch(raw):  # ASCII digits only, and never a huge string for int()
        raise ApiError(400, f"query parameter {name!r} must be an integer")
    return _in_range(name, int(raw), minimum, maximum)


def _in_range(name: str, value: int, minimum: int | None, maximum: int | None) -> int:
    """`value` unless it is outside [minimum, maximum]; the maximum is never above `MAX_INT`."""
    top = MAX_INT if maximum is None else min(maximum, MAX_INT)
    if minimum is not None and value < minimum:
        raise ApiError(400, f"{name!r} must be at least {minimum}")
    if value > top:
        raise ApiError(400, f"{name!r} must be at most {top}")
    return value


def page(request: Request) -> tuple[int, int]:
    """(limit, offset) from the SDK's 1-based `page_size` / `page_number`."""
    size = query_int(request, "page_size", default=10, minimum=1, maximum=1000)
    number = query_int(request, "page_number", default=1, minimum=1, maximum=MAX_PAGE_NUMBER)
    return size, (number - 1) * size


def sort_order(request: Request, orders: dict[str, str]) -> str:
    raw = request.query_params.get("sort_by")
    if not raw:
        return "id ASC"
    if raw not in orders:
        raise ApiError(400, f"'sort_by' must be one of {', '.join(orders)}")
    return orders[raw]


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read up to `MAX_JSON_BYTES` (a bigger body is refused unread)."""
    declared = content_length(request)
    if declared is not None and declared > MAX_JSON_BYTES:
        raise ApiError(413, f"request body is larger than {MAX_JSON_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise ApiError(413, f"request body is larger than {MAX_JSON_BYTES} bytes")
    return parse_json_object(bytes(raw), "request body")


def parse_json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object from untrusted text: valid, an object, and nested at most `MAX_JSON_DEPTH` deep."""
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, f"{what} is larger than {MAX_JSON_BYTES} bytes")
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, f"{what} is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return body


def _nesting(raw: bytes | str) -> int:
    """How deep brackets nest in JSON text, strings skipped (an upper bound of the value's depth)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def int_field(body: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name!r} must be an integer")
    return _in_range(name, value, minimum, maximum)


def upload_params(raw: str | None) -> UploadParams:
    """The `params` form field of a simple upload."""
    return upload_params_from(_params_field(raw))


def upload_params_from(body: dict[str, Any]) -> UploadParams:
    filename = body.get("filename")
    if not isinstance(filename, str):
        raise ApiError(400, "'filename' must be a string")
    reason = unsafe_reason(filename)
    if reason:
        raise ApiError(400, f"unsafe filename {filename!r}: {reason}")
    biz = body.get("biz")
    if biz not in BIZ:
        raise ApiError(400, f"'biz' must be one of {', '.join(BIZ)}")
    hashcode = body.get("hashcode")
    if hashcode is not None and not isinstance(hashcode, str):
        raise ApiError(400, "'hashcode' must be a string or null")
    biz_params = body.get("biz_params")
    if isinstance(biz_params, dict) and isinstance(biz_params.get("directory_id"), int):
        int_field(biz_params, "directory_id", minimum=0)  # it becomes a column: in SQLite's range
    return UploadParams(
        filename=filename,
        biz=biz,
        biz_params=biz_params,
        size=int_field(body, "size", minimum=0),
        hashcode=hashcode or None,
    )


def check_received(upload: UploadParams, size: int, sha256: str) -> None:
    """The bytes received must be the ones announced."""
    if size != upload.size:
        raise ApiError(400, f"received {size} bytes but 'size' says {upload.size}")
    if upload.hashcode is not None and upload.hashcode.lower() != sha256:
        raise ApiError(400, "'hashcode' does not match the received content (sha256)")


def part_params(raw: str | None) -> tuple[int, int]:
    """(file_id, part_number) from an uploadFilePart `params` field."""
    body = _params_field(raw)
    return int_field(body, "file_id", minimum=1), int_field(body, "part_number", minimum=1)


def _params_field(raw: str | None) -> dict[str, Any]:
    """The JSON object a multipart form carries in its `params` text field."""
    if raw is None:
        raise ApiError(400, "missing form field 'params'")
    return parse_json_object(raw, "form field 'params'")
