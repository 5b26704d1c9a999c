"""A file service that lists whatever names it is given, safe or not.

The reference server refuses unsafe names on upload, so it can never list one;
a real service (or an attacker in front of one) might. `HostileServer(files)`
answers `GET /listChatFiles` with `files` (any chat id, paged by `offset` and
`limit`) and `GET /downloadFile?file_id=` with their bytes, on a free loopback
port, and records which ids were downloaded. Everything else is a 404 envelope.

Options make it a worse service still: `page_size` caps every page below the
`limit` asked for (as some services do), and `total` is the count it claims
(default: the truth), so a listing can lie about how many files there are.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


class HostileServer:
    """Lists `files` (name, bytes) as chat files with ids 1, 2, ... in order."""

    def __init__(
        self,
        files: Sequence[tuple[str, bytes]],
        *,
        user_id: str = "u",
        page_size: int | None = None,
        total: int | None = None,
    ) -> None:
        uploaded = datetime.now(UTC).isoformat()
        self.files = list(files)
        self.page_size = page_size
        self.total = total
        self.contents = {i: data for i, (_, data) in enumerate(files, start=1)}
        self.items = [
            {
                "id": i,
                "filename": name,
                "size": len(data),
                "hashcode": hashlib.sha256(data).hexdigest(),
                "upload_at": uploaded,
                "user_id": user_id,
                "status": "ok",
                "biz": "chat",
                "biz_params": {"chat_id": "any"},
            }
            for i, (name, data) in enumerate(files, start=1)
        ]
        self._lock = threading.Lock()
        self._downloaded: list[int] = []
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="hostile-server"
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def downloaded(self) -> list[int]:
        """Ids fetched through `/downloadFile`, in order."""
        with self._lock:
            return list(self._downloaded)

    def note_download(self, file_id: int) -> None:
        with self._lock:
            self._downloaded.append(file_id)

    def page(self, offset: int, limit: int) -> dict[str, object]:
        """The `data` of one listing page: at most `limit` (and `page_size`) items from `offset`."""
        size = limit if self.page_size is None else min(limit, self.page_size)
        total = len(self.items) if self.total is None else self.total
        return {"total": total, "items": self.items[offset : offset + size]}

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, address: tuple[str, int], owner: HostileServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so no idle keep-alive thread outlives a test.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        if split.path == "/listChatFiles":
            page = owner.page(int(query.get("offset", "0") or 0), int(query.get("limit", "100") or 100))
            self._json({"code": 0, "data": page, "message": None})
        elif split.path == "/downloadFile" and int(query.get("file_id", "0")) in owner.contents:
            file_id = int(query["file_id"])
            owner.note_download(file_id)
            self._send(200, owner.contents[file_id], "application/octet-stream")
        else:
            self._json({"code": 404, "data": None, "message": "not found"}, status=404)

    def _json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
