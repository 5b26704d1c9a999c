"""The BDD protocol's JSON answers, checked and turned into syncd values.

Pure functions over an already-read `httpx.Response` (or its decoded data):
anything that is not the envelope `{"code": 0, "data": ..., "message": ...}`
with the types the SDK's pydantic models declare is a malformed answer, which
is transient (a proxy's HTML page, a half-deployed service).

One exception: a listed file whose name is not valid Unicode (JSON can carry a
lone surrogate, `"\\ud800"`) is left out of the listing with a warning. No
filesystem, journal or report can hold such a name, so it can never be synced;
rejecting the whole page instead would stop the folder for good.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog

from syncd.errors import ItemError
from syncd.remote.base import FileStatus, RemoteFile
from syncd.remote.bdd_errors import Call, check_status, malformed

log = structlog.get_logger(__name__)

@dataclass(frozen=True, slots=True)
class MultipartStatus:
    """Where a multipart upload stands (`GET /getMultipartUploadFileStatus`)."""

    file_id: int
    status: FileStatus
    part_size: int
    uploaded_parts: tuple[int, ...]
    remaining_parts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `GET /listChatFiles`."""

    total: int
    items: tuple[RemoteFile, ...]


def envelope_data(response: httpx.Response, call: Call) -> object:
    """The `data` of a successful answer; raises the matching syncd error otherwise."""
    check_status(response, call)
    try:
        payload = json.loads(response.content)
    except ValueError:
        raise malformed(call, "not JSON") from None
    if not isinstance(payload, dict):
        raise malformed(call, "not a JSON object")
    code = payload.get("code")
    if not _is_int(code):
        raise malformed(call, "no integer 'code'")
    message = payload.get("message")
    if message is not None and not isinstance(message, str):
        raise malformed(call, "'message' is not a string")
    if code != 0:
        text = message or f"error code {code}"
        raise ItemError(f"{call.describe()} failed: {text}", status=response.status_code)
    if "data" not in payload or payload["data"] is None:
        raise malformed(call, "no 'data'")
    return payload["data"]


def expect_int(data: object, call: Call) -> int:
    """`data` when it is an int (the answer of uploads, deletes, completes)."""
    if not _is_int(data):
        raise malformed(call, "'data' is not an integer")
    assert isinstance(data, int)
    return data


def expect_str(data: object, call: Call) -> str:
    """`data` when it is a non-empty string (download URLs)."""
    if not isinstance(data, str) or not data:
        raise malformed(call, "'data' is not a string")
    return data


def parse_page(data: object, call: Call) -> Page:
    """A `{"total", "items": [FileInfo]}` page."""
    if not isinstance(data, dict):
        raise malformed(call, "page is not an object")
    total = data.get("total")
    items = data.get("items")
    if not _is_int(total) or not isinstance(items, list):
        raise malformed(call, "page lacks 'total' or 'items'")
    assert isinstance(total, int)
    return Page(total=total, items=tuple(parse_file_info(item, call) for item in items))


def representable(file: RemoteFile, call: Call) -> bool:
    """False (and a warning) for a file whose name is not valid Unicode: the listing leaves it out."""
    try:
        file.filename.encode("utf-8")
    except UnicodeEncodeError:
        shown = file.filename.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        log.warning("remote.unusable_name", call=call.describe(), file_id=file.id, name=shown,
                    reason="name is not valid Unicode; skipped")
        return False
    return True


def parse_file_info(item: object, call: Call) -> RemoteFile:
    """One FileInfo of a listing."""
    if not isinstance(item, dict):
        raise malformed(call, "file entry is not an object")
    file_id, filename, size = item.get("id"), item.get("filename"), item.get("size")
    hashcode, upload_at, status = item.get("hashcode"), item.get("upload_at"), item.get("status")
    if not _is_int(file_id) or not _is_int(size):
        raise malformed(call, "file entry lacks an integer 'id' or 'size'")
    if not isinstance(filename, str) or not isinstance(hashcode, str):
        raise malformed(call, f"file {file_id} lacks 'filename' or 'hashcode'")
    if not isinstance(upload_at, str) or not isinstance(status, str):
        raise malformed(call, f"file {file_id} lacks 'upload_at' or 'status'")
    assert isinstance(file_id, int) and isinstance(size, int)
    return RemoteFile(
        id=file_id,
        filename=filename,
        size=size,
        hashcode=hashcode,
        upload_at=parse_time(upload_at, call),
        status=parse_status(status),
    )


def parse_multipart_status(data: object, call: Call) -> MultipartStatus:
    """The answer of `GET /getMultipartUploadFileStatus`."""
    if not isinstance(data, dict):
        raise malformed(call, "status is not an object")
    file_id, part_size, status = data.get("file_id"), data.get("part_size"), data.get("status")
    if not _is_int(file_id) or not _is_int(part_size) or not isinstance(status, str):
        raise malformed(call, "status lacks 'file_id', 'part_size' or 'status'")
    assert isinstance(file_id, int) and isinstance(part_size, int)
    if part_size <= 0:
        raise malformed(call, "'part_size' is not positive")
    return MultipartStatus(
        file_id=file_id,
        status=parse_status(status),
        part_size=part_size,
        uploaded_parts=_part_numbers(data.get("uploaded_parts"), call),
        remaining_parts=_part_numbers(data.get("remaining_parts"), call),
    )


def parse_time(text: str, call: Call) -> datetime:
    """An ISO 8601 timestamp as an aware datetime (naive ones are taken as UTC)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise malformed(call, f"bad timestamp {text[:40]!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_status(text: str) -> FileStatus:
    """A file status; one this client does not know is treated as `error` (never synced)."""
    try:
        return FileStatus(text)
    except ValueError:
        return FileStatus.ERROR


def _part_numbers(value: object, call: Call) -> tuple[int, ...]:
    # The SDK model allows null here; it means "none".
    if value is None:
        return ()
    if not isinstance(value, list):
        raise malformed(call, "part list is not a list")
    numbers = [n for n in value if _is_int(n) and n >= 1]
    if len(numbers) != len(value):
        raise malformed(call, "part list holds something other than part numbers")
    return tuple(sorted(numbers))


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `true` is not a valid id or size.
    return isinstance(value, int) and not isinstance(value, bool)
