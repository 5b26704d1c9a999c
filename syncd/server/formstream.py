"""Streaming `multipart/form-data` parsing for uploads.

Starlette's `request.form()` spools whole uploads before the handler sees
them; the file service instead feeds the request body, chunk by chunk, through
python-multipart's push parser into a sink chosen per field. Small fields
(`params`) are kept in memory under a cap; the one file field is written
straight to disk as it arrives, hashed on the way, so memory stays flat
whatever the upload size.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from syncd.server.problems import ApiError

MAX_FIELD_BYTES = 64 * 1024
#: All text fields together; a client sends one (`params`), so a handful is plenty.
MAX_FIELDS = 16
MAX_FIELDS_BYTES = 256 * 1024
#: The headers of one form part (its Content-Disposition and Content-Type).
MAX_PART_HEADER_BYTES = 16 * 1024


@dataclass
class FileSink:
    """Where one file field's bytes go: a writer plus a running sha256 and byte count."""

    out: BinaryIO
    limit: int | None = None
    limit_reason: str | None = None
    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise ApiError(413, f"upload has {self.limit_reason or f'more bytes than the limit of {self.limit}'}")
        self.sha256.update(data)
        self.out.write(data)


#: Called when the file field starts, with the text fields seen so far; returns its sink.
OpenSink = Callable[[dict[str, str]], FileSink]


@dataclass
class ParsedForm:
    fields: dict[str, str]
    file: FileSink | None


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a Content-Type header, or a 400."""
    if not content_type:
        raise ApiError(400, "expected a multipart/form-data body")
    ctype, options = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or not options.get(b"boundary"):
        raise ApiError(400, "expected a multipart/form-data body with a boundary")
    return options[b"boundary"]


async def parse_form(
    body: AsyncIterator[bytes], content_type: str | None, file_field: str, open_sink: OpenSink
) -> ParsedForm:
    """Parse a multipart body, streaming `file_field` into the sink `open_sink` returns."""
    fields: dict[str, str] = {}
    current: dict[str, object] = {}
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()
    buffer = bytearray()
    sink: list[FileSink] = []
    seen = {"parts": 0, "field_bytes": 0, "header_bytes": 0}

    def on_part_begin() -> None:
        headers.clear()
        buffer.clear()
        current.clear()
        seen["parts"] += 1
        seen["header_bytes"] = 0
        if seen["parts"] > MAX_FIELDS + 1:
            raise ApiError(413, f"form has more than {MAX_FIELDS} fields")

    def count_header(size: int) -> None:
        seen["header_bytes"] += size
        if seen["header_bytes"] > MAX_PART_HEADER_BYTES:
            raise ApiError(413, f"a form field's headers are larger than {MAX_PART_HEADER_BYTES} bytes")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        count_header(end - start)
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        current["name"] = name
        if name == file_field:
            if sink:
                raise ApiError(400, f"more than one {file_field!r} field")
            sink.append(open_sink(dict(fields)))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if current.get("name") == file_field:
            sink[0].write(data[start:end])
        else:
            buffer.extend(data[start:end])
            seen["field_bytes"] += end - start
            if len(buffer) > MAX_FIELD_BYTES:
                raise ApiError(413, f"form field {current.get('name')!r} is larger than {MAX_FIELD_BYTES} bytes")
            if seen["field_bytes"] > MAX_FIELDS_BYTES:
                raise ApiError(413, f"form fields are larger than {MAX_FIELDS_BYTES} bytes in all")

    def on_part_end() -> None:
        name = current.get("name")
        if isinstance(name, str) and name != file_field:
            try:
                fields[name] = buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"form field {name!r} is not UTF-8 text") from None

    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except (ApiError, ClientDisconnect):
        raise
    except Exception:  # python-multipart raises several types for bad bodies; their text is not for clients
        raise ApiError(400, "malformed multipart/form-data body") from None
    return ParsedForm(fields=fields, file=sink[0] if sink else None)
