"""Small pieces every HTTP kind's client shares: a request body streamed from a file slice, a
response body streamed into a file, and a read answer kept as a stand-alone response for its
kind's error seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import httpx

from syncd.errors import TransientError
from syncd.remote.base import Progress
from syncd.remote.fileslice import FileSlice

#: Bytes read from a file per piece of a request body.
CHUNK = 1 << 20
#: The headers an error seam reads (the Retry-After of a 429, a service's request id).
_KEPT = ("Content-Type", "Retry-After", "x-acs-request-id")


def pieces(body: FileSlice, chunk: int = CHUNK) -> Iterator[bytes]:
    """A request body read from `body`, one `chunk` at a time (never the whole file in memory)."""
    while piece := body.read(chunk):
        yield piece


def received(
    response: httpx.Response, out: BinaryIO, *, limit: int | None, progress: Progress | None, what: str,
    thing: str = "file",
) -> int:
    """Write `response`'s body to `out`, one `CHUNK` at a time, reporting the bytes so far to
    `progress`; the bytes written. A body longer than `limit` (what the listing said) is a
    TransientError for `what`, the request's description: the file changed under the read."""
    written = 0
    for chunk in response.iter_bytes(CHUNK):
        if limit is not None and written + len(chunk) > limit:
            raise TransientError(f"{what} failed: the {thing} is longer than {limit} bytes")
        out.write(chunk)
        written += len(chunk)
        if progress is not None:
            progress(written)
    return written


def answered(response: httpx.Response, content: bytes) -> httpx.Response:
    """A stand-alone copy of `response` holding `content` (its stream was consumed), with the
    headers an error seam reads and nothing else (no encoding: `content` is decoded already)."""
    kept = {name: response.headers[name] for name in _KEPT if name in response.headers}
    return httpx.Response(response.status_code, headers=kept, content=content)
