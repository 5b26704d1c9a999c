"""syncd's own client of an AgentRun sandbox data API (protocol notes: agentrun.md).

One pooled httpx client with explicit timeouts (the published SDK opens a connection per call
and waits up to 600 s). Every URL is built here, path and query percent-encoded once, then
signed as it will be sent (AGENTRUN4-HMAC-SHA256, `signing.py`) when the remote has keys; the
data endpoint's host then gets its ``-ram`` label. Uploads stream the file as multipart form
data; downloads stream into the caller's file. JSON calls and transfers are retried in-process
(`RetryPolicy`); the answers go through one error seam (`errors.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO, cast
from urllib.parse import quote, urlencode

import httpx

from syncd import __version__
from syncd.errors import TransientError
from syncd.remote.agentrun.errors import check_status, json_answer
from syncd.remote.agentrun.signing import Credentials, ram_host, sign
from syncd.remote.answers import answered, received
from syncd.remote.base import Progress
from syncd.remote.fileslice import FileSlice
from syncd.remote.httperrors import Call, converting, safe_origin
from syncd.remote.ratelimit import RateLimiter
from syncd.remote.retry import Abort, RetryPolicy

MAX_JSON_BYTES = 32 * 1024 * 1024  # a listing of a large tree is one answer (no paging)
MAX_ERROR_BYTES = 64 * 1024


class AgentRunClient:
    """The data API of one endpoint, for the holder of `credentials` (None: unsigned)."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None,
        region: str,
        timeout: float = 60.0,
        requests_per_minute: float = 0,
        max_connections: int = 64,
        retry_attempts: int = 5,
        retry_backoff: float = 1.0,
        max_wait: float = 30.0,
        abort: Abort | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self._base = ram_host(base) if credentials is not None else base
        self._credentials = credentials
        self._region = region
        self._client = httpx.Client(
            headers={"User-Agent": f"syncd/{__version__}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )
        self._origin = safe_origin(httpx.URL(self._base))
        self._limiter = RateLimiter(requests_per_minute)
        self._retry = RetryPolicy(attempts=retry_attempts, backoff=retry_backoff, max_wait=max_wait, abort=abort)

    def __repr__(self) -> str:
        signed = ", signed" if self._credentials is not None else ""
        return f"AgentRunClient({self._origin!r}{signed})"

    def close(self) -> None:
        self._client.close()

    # -- calls -----------------------------------------------------------------------------------

    def sandbox(self, sandbox: str) -> object:
        """The sandbox's own record (`GET /sandboxes/{id}`): PlaceGone when it is gone."""
        return self._json(sandbox, "check", "the sandbox", "GET", "", None, None)

    def list(self, sandbox: str, path: str, depth: int) -> object:
        return self._json(sandbox, "list", repr(path), "GET", "/filesystem", {"path": path, "depth": str(depth)}, None)

    def stat(self, sandbox: str, path: str) -> object:
        return self._json(sandbox, "stat", repr(path), "GET", "/filesystem/stat", {"path": path}, None)

    def mkdir(self, sandbox: str, path: str) -> None:
        self._json(sandbox, "mkdir", repr(path), "POST", "/filesystem/mkdir", None,
                   {"path": path, "parents": True, "mode": "0755"})

    def move(self, sandbox: str, source: str, destination: str) -> None:
        self._json(sandbox, "move", repr(source), "POST", "/filesystem/move", None,
                   {"source": source, "destination": destination})

    def remove(self, sandbox: str, path: str) -> None:
        self._json(sandbox, "delete", repr(path), "POST", "/filesystem/remove", None, {"path": path})

    def upload(self, sandbox: str, path: str, source: Path, size: int, progress: Progress | None) -> None:
        """Stream `size` bytes of `source` to `path` (overwriting; parents made by the service)."""
        call = self._call("upload", repr(path), "/filesystem/upload")

        def attempt() -> None:
            with source.open("rb") as file, self._exchanging(call, sandbox, "POST", "/filesystem/upload", None) as (
                url, headers
            ):
                body = FileSlice(file, 0, size, name=path, on_read=progress)
                response = self._client.post(
                    url, headers=headers, data={"path": path},
                    files={"file": (path.rsplit("/", 1)[-1], cast(IO[bytes], body), "application/octet-stream")},
                )
                reply = answered(response, response.read()[:MAX_JSON_BYTES])
                check_status(reply, call, sandbox)
                json_answer(reply, call)

        self._retry.run(attempt, what=call.describe())

    def download(self, sandbox: str, path: str, out: BinaryIO, *, limit: int | None,
                 progress: Progress | None) -> int:
        """Stream the file at `path` into `out` (rewound for each try); the bytes written."""
        call = self._call("download", repr(path), "/filesystem/download")
        start = out.tell()

        def attempt() -> int:
            out.seek(start)
            out.truncate()
            exchange = self._exchanging(call, sandbox, "GET", "/filesystem/download", {"path": path})
            with exchange as (url, headers), self._client.stream("GET", url, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    check_status(answered(response, response.read()[:MAX_ERROR_BYTES]), call, sandbox)
                return received(response, out, limit=limit, progress=progress, what=call.describe())

        return self._retry.run(attempt, what=call.describe())

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, action: str, subject: str, endpoint: str) -> Call:
        return Call(action, subject, endpoint, self._origin)

    def _url(self, sandbox: str, suffix: str, query: Mapping[str, str] | None) -> str:
        url = f"{self._base}/sandboxes/{quote(sandbox, safe='')}{suffix}"
        if query:
            url += "?" + urlencode(query, quote_via=quote, safe="")
        return url

    @contextmanager
    def _exchanging(
        self, call: Call, sandbox: str, method: str, suffix: str, query: Mapping[str, str] | None
    ) -> Iterator[tuple[str, dict[str, str]]]:
        """The URL of one request and its headers (signed as it will be sent), the transport's
        failures converted on the way out."""
        self._limiter.acquire()
        url = self._url(sandbox, suffix, query)
        headers: dict[str, str] = {}
        if self._credentials is not None:
            headers = sign(method, url, self._credentials, self._region)
            headers["Host"] = headers.pop("host")
        with converting(call):
            yield url, headers

    def _json(
        self, sandbox: str, action: str, subject: str, method: str, suffix: str,
        query: Mapping[str, str] | None, body: object,
    ) -> object:
        call = self._call(action, subject, suffix or "/sandboxes/{id}")

        def attempt() -> object:
            with self._exchanging(call, sandbox, method, suffix, query) as (url, headers):
                headers["Content-Type"] = "application/json"
                with self._client.stream(method, url, headers=headers, json=body) as response:
                    content = bytearray()
                    for chunk in response.iter_bytes():
                        content += chunk
                        if len(content) > MAX_JSON_BYTES:
                            raise TransientError(f"{call.describe()} failed: the answer is larger than "
                                                 f"{MAX_JSON_BYTES} bytes")
                reply = answered(response, bytes(content))
                check_status(reply, call, sandbox)
                return json_answer(reply, call)

        return self._retry.run(attempt, what=call.describe())
