"""The BDD protocol's JSON answers, read within bounds, checked and turned into syncd values.

An answer's body is read here and nowhere else, as a stream, decompressed by
`DecodedBody` one bounded step at a time (gzip and deflate only, the
`ACCEPT_ENCODING` the client asks for): a JSON answer is read to at most a cap
(`read_json_capped`, `MAX_JSON_BYTES` by default) and an error answer to
`ERROR_BODY_LIMIT`, whatever the service sends, so a hostile one cannot make
the client hold a gibibyte (a gzip bomb, an endless answer). The rest are pure
functions over the read answer (or its decoded data): anything that is not the
envelope `{"code": 0, "data": ..., "message": ...}` with the types the SDK's
pydantic models declare is a malformed answer, which is transient (a proxy's
HTML page, a half-deployed service); so is an answer past the cap, or one in an
encoding the client cannot decode.

One exception: a listed file whose name is not valid Unicode (JSON can carry a
lone surrogate, `"\\ud800"`) is left out of the listing with a warning. No
filesystem, journal or report can hold such a name, so it can never be synced;
rejecting the whole page instead would stop the folder for good.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

import httpx
import structlog

from syncd.core.frozen import maker
from syncd.errors import ItemError, TransientError
from syncd.remote.bdd.chatfile import ChatFile, FileStatus
from syncd.remote.bdd.errors import Call, check_status, malformed

log = structlog.get_logger(__name__)

#: A listing page makes one of these per file: made without `ChatFile.__init__`'s cost.
_make_chat_file = maker(ChatFile)
_STATUSES = {status.value: status for status in FileStatus}

KiB = 1024
MiB = 1024 * KiB

#: The most of a JSON answer (decompressed) the client reads before it calls the answer malformed.
#: A listing page of 1000 files, the largest honest answer, is a few hundred KiB (a few MiB if
#: every name were 255 escaped characters).
MAX_JSON_BYTES = 16 * MiB
#: At most this much of an error answer (decompressed) is read, for its message.
ERROR_BODY_LIMIT = 64 * KiB
#: The encodings `DecodedBody` decodes: all a JSON call may ask for.
ACCEPT_ENCODING = "gzip, deflate"
#: The most one decompression step may produce (httpx's decoders inflate a whole network read at
#: once: 64 KiB of a gzip bomb make some 64 MiB).
_STEP = 64 * KiB
_GZIP = zlib.MAX_WBITS | 16
_DEFLATE = 0  # zlib-wrapped or raw: told apart by the stream's first two bytes


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
    items: tuple[ChatFile, ...]


class DecodedBody:
    """The body of a streamed answer, decoded as its Content-Encoding says, in bounded steps.

    Iterating it yields the decoded bytes in pieces of at most 64 KiB for a compressed answer
    (each network read is inflated with `decompress(data, max_length)`, the rest of it kept as
    `unconsumed_tail`), or the reads as they come for a plain one; `raw` counts the bytes read off
    the wire so far (a read that inflates to nothing yields an empty piece, so that the reader
    sees it grow). Nothing is kept: the reader decides when it has had enough and stops.

    gzip and deflate (zlib-wrapped or raw, as servers differ) are decoded; any other encoding, a
    damaged or cut-short compressed stream, or bytes after its end, are a malformed answer.
    """

    def __init__(self, response: httpx.Response, call: Call) -> None:
        self.raw = 0
        self._response = response
        self._call = call
        self._wbits = _wbits(response.headers.get("Content-Encoding", ""), call)

    def __iter__(self) -> Iterator[bytes]:
        if self._wbits is None:
            for chunk in self._response.iter_raw():
                self.raw += len(chunk)
                yield chunk
            return
        inflater: zlib._Decompress | None = None
        head = b""  # deflate: the first bytes, until there are two to tell zlib-wrapped from raw
        for chunk in self._response.iter_raw():
            self.raw += len(chunk)
            if inflater is None:
                head += chunk
                if self._wbits == _DEFLATE and len(head) < 2:
                    continue
                inflater = zlib.decompressobj(self._wbits if self._wbits != _DEFLATE else _deflate_wbits(head))
                chunk, head = head, b""
            yield from self._inflate(inflater, chunk)
        if inflater is None or not inflater.eof:
            raise malformed(self._call, "the compressed answer is cut short")

    def _inflate(self, inflater: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        if inflater.eof:
            if data:
                raise malformed(self._call, "data after the end of the compressed answer")
            return
        while True:
            try:
                out = inflater.decompress(data, _STEP)
            except zlib.error:
                raise malformed(self._call, "the compressed answer is damaged") from None
            data = inflater.unconsumed_tail
            yield out  # even empty: the reader sees `raw` grow while a stream inflates to nothing
            if inflater.eof:
                if data or inflater.unused_data:
                    raise malformed(self._call, "data after the end of the compressed answer")
                return
            if not data and len(out) < _STEP:
                return  # all of this read is used, and nothing more is pending inside zlib


def _wbits(encoding: str, call: Call) -> int | None:
    """How to decompress an answer sent with this Content-Encoding; None: it is not compressed."""
    codings = [c for c in (part.strip().lower() for part in encoding.split(",")) if c and c != "identity"]
    if not codings:
        return None
    if codings in (["gzip"], ["x-gzip"]):
        return _GZIP
    if codings == ["deflate"]:
        return _DEFLATE
    shown = ", ".join(codings)[:40]
    raise malformed(call, f"content encoding {shown!r} cannot be decoded; only {ACCEPT_ENCODING} were asked for")


def _deflate_wbits(head: bytes) -> int:
    """zlib-wrapped deflate (what the standard says) when `head` is a zlib header, else raw deflate."""
    cmf, flg = head[0], head[1]
    wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


def content_length(response: httpx.Response) -> int | None:
    """The answer's Content-Length, if it gives a valid one."""
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def read_json_capped(response: httpx.Response, cap: int, call: Call) -> bytes | bytearray:
    """The body of a JSON answer, decompressed, read as a stream to at most `cap` bytes.

    An answer that is (or would inflate to) more than `cap` bytes, or whose compressed form alone
    is that long, is a malformed answer: it is cut off there, never read whole. An answer already
    read (one made in memory) is only measured.
    """
    too_large = f"answer larger than {describe_size(cap)}"
    try:
        content = response.content
    except httpx.ResponseNotRead:
        pass
    else:
        if len(content) > cap:
            raise malformed(call, too_large)
        return content
    length = content_length(response)
    if length is not None and length > cap:
        raise malformed(call, too_large)
    body = bytearray()
    decoded = DecodedBody(response, call)
    for piece in decoded:
        body += piece
        if len(body) > cap or decoded.raw > cap:
            raise malformed(call, too_large)
    return body


def read_error_body(response: httpx.Response, call: Call, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """The first `limit` bytes (decompressed) of an error answer; the rest is never read. A body
    that cannot be decoded counts as empty from where it fails: the status says enough."""
    try:
        return response.content[:limit]
    except httpx.ResponseNotRead:
        pass
    body = bytearray()
    try:
        decoded = DecodedBody(response, call)
        for piece in decoded:
            body += piece
            if len(body) >= limit or decoded.raw >= limit:
                break
    except TransientError:
        pass
    return bytes(body[:limit])


def raise_for_status(response: httpx.Response, call: Call) -> NoReturn:
    """Raise the error for an answer that is not a 200, reading at most a little of its body."""
    body = read_error_body(response, call)
    wanted = ("Content-Type", "Retry-After")
    kept = {name: response.headers[name] for name in wanted if name in response.headers}
    check_status(httpx.Response(response.status_code, headers=kept, content=body), call)
    raise malformed(call, f"HTTP {response.status_code} instead of 200")


def describe_size(size: int) -> str:
    """`16 MiB`, `64 KiB`, `1000 bytes`: a byte count as a message says it."""
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} bytes"


def envelope_data(response: httpx.Response, call: Call, cap: int = MAX_JSON_BYTES) -> object:
    """The `data` of a successful answer (its body read by `read_json_capped`, at most `cap`
    bytes); raises the matching syncd error otherwise, having read at most a little of it."""
    if not 200 <= response.status_code < 300:
        raise_for_status(response, call)
    body = read_json_capped(response, cap, call)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
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


def parse_page(data: object, call: Call, *, limit: int | None = None) -> Page:
    """A `{"total", "items": [FileInfo]}` page; one with more than the `limit` items asked for is
    malformed (and is refused before any of its items is read)."""
    if not isinstance(data, dict):
        raise malformed(call, "page is not an object")
    total = data.get("total")
    items = data.get("items")
    if not _is_int(total) or not isinstance(items, list):
        raise malformed(call, "page lacks 'total' or 'items'")
    assert isinstance(total, int)
    if limit is not None and len(items) > limit:
        raise malformed(call, f"a page of {len(items)} items where at most {limit} were asked")
    return Page(total=total, items=tuple([parse_file_info(item, call) for item in items]))


def representable(file: ChatFile, call: Call) -> bool:
    """False (and a warning) for a file whose name is not valid Unicode: the listing leaves it out."""
    try:
        file.filename.encode("utf-8")
    except UnicodeEncodeError:
        shown = file.filename.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        log.warning("remote.unusable_name", call=call.describe(), file_id=file.id, name=shown,
                    reason="name is not valid Unicode; skipped")
        return False
    return True


def parse_file_info(item: object, call: Call) -> ChatFile:
    """One FileInfo of a listing."""
    if type(item) is dict:  # what JSON makes: every type exact, checked at once (a listing has many)
        file_id, filename, size = item.get("id"), item.get("filename"), item.get("size")
        hashcode, upload_at, status = item.get("hashcode"), item.get("upload_at"), item.get("status")
        if (type(file_id) is int and type(size) is int and type(filename) is str and type(hashcode) is str
                and type(upload_at) is str and type(status) is str):
            return _make_chat_file(
                file_id, filename, size, hashcode, parse_time(upload_at, call), _STATUSES.get(status, FileStatus.ERROR)
            )
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
    return _make_chat_file(file_id, filename, size, hashcode, parse_time(upload_at, call), parse_status(status))


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
    return _STATUSES.get(text, FileStatus.ERROR)


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
