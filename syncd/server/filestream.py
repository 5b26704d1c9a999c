"""A download answered from a file opened before the answer starts.

Starlette's `FileResponse` opens its path only when it starts sending; a delete in between turns
a 200 with a full Content-Length into a short body. The file service opens the blob while it
checks the request, so the bytes served are always the whole file it was asked for (deleting a
file unlinks the name, not the open inode).
"""

from __future__ import annotations

import os
from typing import BinaryIO
from urllib.parse import quote

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK = 256 * 1024


class OpenFileResponse(Response):
    """Streams an already open binary file (closed when done), with its length and a filename."""

    media_type = "application/octet-stream"

    def __init__(self, file: BinaryIO, *, filename: str) -> None:
        super().__init__(content=None, status_code=200)
        self.file = file
        self.size = os.fstat(file.fileno()).st_size
        quoted = quote(filename)
        disposition = (
            f'attachment; filename="{filename}"' if quoted == filename else f"attachment; filename*=utf-8''{quoted}"
        )
        self.headers["content-length"] = str(self.size)
        self.headers["content-disposition"] = disposition

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            remaining = self.size
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(self.file.read, min(CHUNK, remaining))
                if not chunk:
                    break  # the file shrank under us: the client sees a short body, as it should
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
            if remaining > 0 or self.size == 0:  # the body's end has not been sent yet
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.file.close()
