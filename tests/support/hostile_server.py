"""A file service that lists whatever names it is given, safe or not.

The reference server refuses unsafe names on upload, so it can never list one;
a real service (or an attacker in front of one) might. `HostileServer(files)`
answers `GET /listChatFiles` with `files` (any chat id, paged by `offset` and
`limit`) and `GET /downloadFile?file_id=` with their bytes, on a free loopback
port, and records which ids were downloaded. Everything else is a 404 envelope.

Options make it a worse service still: `page_size` caps every page below the
`limit` asked for (as some services do), and `total` is the count it claims
(default: the truth), so a listing can lie about how many files there are.

`scripted[path] = Scripted(...)` makes it answer any request to `path` (any
method) with a made-up answer whose body is produced lazily and sent as it is
produced, so an answer of a gibibyte costs the test process no memory: see
`gzip_bomb`, `endless`, `many_items`, `fresh_pages`, `encoded`. `seen()` lists
every request (method, path, query, headers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_CHUNK = 64 * KiB


@dataclass(frozen=True)
class Scripted:
    """A made-up answer: `body(query)` yields its bytes, sent as they come (close-delimited: no
    Content-Length unless `headers` has one). Writing stops quietly when the client hangs up."""

    body: Callable[[Mapping[str, str]], Iterable[bytes]]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Request:
    """One request the server saw."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case


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
        self.scripted: dict[str, Scripted] = {}
        self._lock = threading.Lock()
        self._downloaded: list[int] = []
        self._seen: list[Request] = []
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

    def seen(self, path: str | None = None) -> list[Request]:
        """The requests so far (to `path` only, if given), in order."""
        with self._lock:
            return [r for r in self._seen if path is None or r.path == path]

    def note_request(self, request: Request) -> None:
        with self._lock:
            self._seen.append(request)

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
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._answer("POST")

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's naming
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner.note_request(Request(method, split.path, query, headers))
        self._skip_body()
        scripted = owner.scripted.get(split.path)
        if scripted is not None:
            self._send_scripted(scripted, query)
        elif method != "GET":
            self._json({"code": 404, "data": None, "message": "not found"}, status=404)
        elif split.path == "/listChatFiles":
            page = owner.page(int(query.get("offset", "0") or 0), int(query.get("limit", "100") or 100))
            self._json({"code": 0, "data": page, "message": None})
        elif split.path == "/downloadFile" and int(query.get("file_id", "0")) in owner.contents:
            file_id = int(query["file_id"])
            owner.note_download(file_id)
            self._send(200, owner.contents[file_id], "application/octet-stream")
        else:
            self._json({"code": 404, "data": None, "message": "not found"}, status=404)

    def _skip_body(self) -> None:
        """Read the request's body (plain or chunked) and drop it."""
        length = self.headers.get("Content-Length")
        if length is not None:
            left = int(length)
            while left > 0:
                got = self.rfile.read(min(left, _CHUNK))
                if not got:
                    return
                left -= len(got)
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                self.rfile.read(size + 2)  # the chunk and its CRLF

    def _send_scripted(self, scripted: Scripted, query: Mapping[str, str]) -> None:
        self.send_response(scripted.status)
        for name, value in scripted.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in scripted.body(query):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it should on an answer too large to read
        self.close_connection = True

    def _json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# -- scripted answers -------------------------------------------------------------------------------


def envelope_head(data_prefix: str = '"') -> bytes:
    """The start of a success envelope up to `data`'s first characters."""
    return b'{"code": 0, "message": null, "data": ' + data_prefix.encode()


def gzip_bomb(size: int = GiB, *, status: int = 200) -> Scripted:
    """A gzip answer of about 1 MiB that inflates to a valid envelope of `size` bytes (its data a
    string of spaces). Built from one deflate segment (1 MiB of spaces after a full flush, so every
    copy compresses alike) repeated: nothing of `size` is ever in memory."""
    head, segment, tail, count = _bomb_parts(size)

    def body(query: Mapping[str, str]) -> Iterator[bytes]:
        yield head
        for _ in range(count):
            yield segment
        yield tail

    return Scripted(body, status=status, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


@functools.cache
def _bomb_parts(size: int) -> tuple[bytes, bytes, bytes, int]:
    prefix, suffix, spaces = envelope_head(), b'"}', b" " * MiB
    count = max(0, size - len(prefix) - len(suffix)) // MiB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    segment = deflate.compress(spaces) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(suffix) + deflate.flush()
    crc = zlib.crc32(prefix)
    for _ in range(count):
        crc = zlib.crc32(spaces, crc)
    crc = zlib.crc32(suffix, crc)
    length = len(prefix) + count * MiB + len(suffix)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no time
    trailer = crc.to_bytes(4, "little") + (length & 0xFFFFFFFF).to_bytes(4, "little")
    return header + start, segment, end + trailer, count


def endless(size: int = 384 * MiB, *, status: int = 200) -> Scripted:
    """An uncompressed answer that starts like an envelope and then sends `size` bytes of a string
    that never ends, without a Content-Length."""
    block = b"x" * _CHUNK

    def body(query: Mapping[str, str]) -> Iterator[bytes]:
        yield envelope_head()
        for _ in range(size // _CHUNK):
            yield block

    return Scripted(body, status=status)


def listed_item(file_id: int) -> dict[str, object]:
    """A well-formed FileInfo for `file_id` (its bytes are not served)."""
    return {
        "id": file_id,
        "filename": f"file-{file_id:09d}.txt",
        "size": 10,
        "hashcode": "ab" * 32,
        "upload_at": "2024-05-01T12:00:00+00:00",
        "user_id": "u",
        "status": "ok",
        "biz": "chat",
        "biz_params": {"chat_id": "any"},
    }


def many_items(count: int, *, total: int | None = None) -> Scripted:
    """A listing page of `count` items (ids 1..count) whatever `limit` was asked, produced lazily."""

    # One item's JSON, cut where its id goes (in the id and in the name): quicker than dumping each.
    head, middle, tail = json.dumps(listed_item(123456789)).split("123456789")

    def body(query: Mapping[str, str]) -> Iterator[bytes]:
        yield envelope_head(f'{{"total": {count if total is None else total}, "items": [')
        for start in range(1, count + 1, 1000):
            ids = (f"{i:09d}" for i in range(start, min(start + 1000, count + 1)))
            text = ", ".join(f"{head}{int(i)}{middle}{i}{tail}" for i in ids)
            yield (b"" if start == 1 else b", ") + text.encode()
        yield b"]}}"

    return Scripted(body)


def fresh_pages(total: int = 10**12) -> Scripted:
    """A listing that claims `total` files and fills every page it is asked for with new ones
    (ids offset+1 .. offset+limit): a walk that trusts it never ends."""

    def body(query: Mapping[str, str]) -> Iterator[bytes]:
        offset, limit = int(query.get("offset", "0")), int(query.get("limit", "100"))
        items = [listed_item(file_id) for file_id in range(offset + 1, offset + limit + 1)]
        yield json.dumps({"code": 0, "data": {"total": total, "items": items}, "message": None}).encode()

    return Scripted(body)


def encoded(payload: object, encoding: str) -> Scripted:
    """The envelope `payload` compressed as `encoding` says: "gzip", "deflate" (zlib-wrapped),
    "raw-deflate" (sent as `deflate`, as some servers do); any other encoding is only named in the
    header, the bytes are sent as they are."""
    data = json.dumps(payload).encode()
    name = encoding
    if encoding == "gzip":
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    elif encoding == "deflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    elif encoding == "raw-deflate":
        packer, name = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS), "deflate"
    else:
        packer = None
    body = data if packer is None else packer.compress(data) + packer.flush()
    # Sent in small pieces, so that a decoder meets the stream across many reads.
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    return Scripted(
        lambda query: iter(pieces),
        headers={"Content-Type": "application/json", "Content-Encoding": name},
    )
