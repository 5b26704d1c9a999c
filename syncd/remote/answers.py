"""Small pieces every HTTP kind's client shares: a request body streamed from a file slice, and
a read answer kept as a stand-alone response for its kind's error seam."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from syncd.remote.fileslice import FileSlice

#: Bytes read from a file per piece of a request body.
CHUNK = 1 << 20
#: The headers an error seam reads (the Retry-After of a 429, a service's request id).
_KEPT = ("Content-Type", "Retry-After", "x-acs-request-id")


def pieces(body: FileSlice, chunk: int = CHUNK) -> Iterator[bytes]:
    """A request body read from `body`, one `chunk` at a time (never the whole file in memory)."""
    while piece := body.read(chunk):
        yield piece


def answered(response: httpx.Response, content: bytes) -> httpx.Response:
    """A stand-alone copy of `response` holding `content` (its stream was consumed), with the
    headers an error seam reads and nothing else (no encoding: `content` is decoded already)."""
    kept = {name: response.headers[name] for name in _KEPT if name in response.headers}
    return httpx.Response(response.status_code, headers=kept, content=content)
