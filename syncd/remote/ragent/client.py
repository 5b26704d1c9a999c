"""syncd's own client of a ragent-oss storage gateway (protocol notes: ragent-oss.md).

One pooled httpx client, explicit timeouts (the published client's 5 s would cut a large
transfer short after the gateway stored it), no redirects followed. The API key goes only with
the JSON calls (presign, sign, delete), never with the PUT or GET of a URL the gateway returned:
such a URL may belong to another host, and it carries its own signature. Object bytes stream
from the file (PUT) and into the caller's file (GET); neither is ever held whole in memory.
JSON calls are retried in-process (`RetryPolicy`); an object's PUT or GET is retried on the
same URL, and a URL the gateway refuses (403: expired) is handed back as `UrlRefused` for the
caller to ask for a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx

from syncd import __version__
from syncd.errors import TransientError
from syncd.remote.answers import answered, pieces, received
from syncd.remote.base import Progress
from syncd.remote.fileslice import FileSlice
from syncd.remote.httperrors import Call, converting, safe_origin
from syncd.remote.ragent.errors import UrlRefused, check_status, json_object, malformed, text_field
from syncd.remote.ratelimit import RateLimiter
from syncd.remote.retry import Abort, RetryPolicy

#: Bytes read from the file per piece of a PUT body, and per write of a GET into the file.
#: The most of a JSON answer read.
MAX_JSON_BYTES = 64 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Presigned:
    """Where one upload goes: the object key the gateway chose, the URL to PUT the bytes to and
    the headers that URL was signed with (sent exactly, and nothing else of ours)."""

    key: str
    url: str
    headers: tuple[tuple[str, str], ...]


class _Refused(Exception):  # noqa: N818 - carries a UrlRefused past the retry loop, which would retry it
    def __init__(self, error: UrlRefused) -> None:
        super().__init__(str(error))
        self.error = error


class RagentClient:
    """One gateway at `base_url`, for the holder of `api_key`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float = 60.0,
        requests_per_minute: float = 0,
        max_connections: int = 64,
        retry_attempts: int = 5,
        retry_backoff: float = 1.0,
        max_wait: float = 30.0,
        abort: Abort | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.Client(
            headers={"User-Agent": f"syncd/{__version__}"},
            # The answer after a PUT's last byte may take a while (the gateway stores it); there is
            # no cap on a whole transfer, only on each wait.
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,  # and so the key never follows one to another host
        )
        self._origin = safe_origin(httpx.URL(self._base))
        self._key = api_key
        self._limiter = RateLimiter(requests_per_minute)
        self._retry = RetryPolicy(attempts=retry_attempts, backoff=retry_backoff, max_wait=max_wait, abort=abort)

    def __repr__(self) -> str:
        key = ", api_key=***" if self._key else ""
        return f"RagentClient({self._origin!r}{key})"

    @property
    def origin(self) -> str:
        """`scheme://host[:port]` of the gateway: what messages say about it."""
        return self._origin

    def close(self) -> None:
        self._client.close()

    # -- JSON endpoints ------------------------------------------------------------------------

    def health(self) -> None:
        """Raise unless ``/api/health`` answers ``{"status": "ok"}``."""
        call = self._call("check", "the gateway", "/api/health")
        payload = self._json(call, "GET", None, key=False)
        if payload.get("status") != "ok":
            raise TransientError(f"{call.describe()} failed: the gateway says it is not ok")

    def presign(self, filename: str, content_type: str, category: str) -> Presigned:
        """Ask where to PUT a new object named `filename`."""
        call = self._call("upload", repr(filename), "/api/presign")
        payload = self._json(call, "POST", {"filename": filename, "contentType": content_type, "category": category})
        headers = payload.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise malformed(call, "'headers' is not an object of strings")
        return Presigned(
            key=text_field(payload, "objectKey", call),
            url=self._absolute(text_field(payload, "uploadUrl", call), call),
            headers=tuple(sorted(headers.items())),
        )

    def sign(self, key: str, expires_in: int | None = None) -> str:
        """A URL that GETs the object `key` without credentials until it expires (after
        `expires_in` seconds; None: the gateway's default, a day)."""
        call = self._call("sign", "an object", "/api/sign")
        body: dict[str, object] = {"objectKey": key}
        if expires_in is not None:
            body["expiresIn"] = expires_in
        return self._absolute(text_field(self._json(call, "POST", body), "url", call), call)

    def delete(self, key: str) -> None:
        """Delete the object `key` (one already gone counts as deleted)."""
        call = self._call("delete", "an object", "/api/delete")
        payload = self._json(call, "POST", {"objectKey": key})
        if payload.get("success") is not True:
            raise TransientError(f"{call.describe()} failed: the gateway did not delete it (will try again)")

    # -- object bytes --------------------------------------------------------------------------

    def put_object(self, target: Presigned, source: Path, size: int, *, label: str,
                   progress: Progress | None = None) -> None:
        """PUT `size` bytes of `source` to the presigned URL, retried on the same URL (the same
        key: a retry of an upload that arrived after all replaces it, never duplicates it).
        `UrlRefused` when the URL is refused: presign again."""
        call = self._call("upload", repr(label), "PUT of the presigned URL", at=target.url)
        headers = {**dict(target.headers), "Content-Length": str(size)}

        def attempt() -> None:
            self._limiter.acquire()
            with source.open("rb") as file, converting(call):
                body = FileSlice(file, 0, size, name=label, on_read=progress)
                response = self._client.put(target.url, content=pieces(body), headers=headers)
                self._check(response, call)

        self._unrefused(attempt, call)

    def get_object(self, url: str, out: BinaryIO, *, label: str, limit: int | None = None,
                   progress: Progress | None = None) -> int:
        """Stream the object at a signed `url` into `out` (from its position, rewound for each
        try); return the bytes written. A body past `limit` bytes is cut off there (transient).
        `UrlRefused` when the URL is refused: sign again."""
        call = self._call("download", repr(label), "GET of the signed URL", at=url)
        start = out.tell()

        def attempt() -> int:
            out.seek(start)
            out.truncate()
            self._limiter.acquire()
            with converting(call), self._client.stream("GET", url) as response:
                self._check(response, call)
                return received(response, out, limit=limit, progress=progress, what=call.describe(), thing="object")

        return self._unrefused(attempt, call)

    def check_object(self, url: str, *, label: str) -> None:
        """Raise unless a GET of the signed `url` would serve the object: an `ItemError` (404)
        when it is gone. Only the answer's head is read (the connection is then dropped)."""
        call = self._call("check", repr(label), "GET of the signed URL", at=url)

        def attempt() -> None:
            self._limiter.acquire()
            with converting(call), self._client.stream("GET", url) as response:
                self._check(response, call)

        self._unrefused(attempt, call)

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, action: str, subject: str, endpoint: str, *, at: str | None = None) -> Call:
        """A call to the gateway, or to the object URL `at` it returned (often another host: a
        connection error names that one)."""
        return Call(action, subject, endpoint, self._origin if at is None else safe_origin(httpx.URL(at)))

    def _json(self, call: Call, method: str, body: dict[str, object] | None, *, key: bool = True) -> dict[str, object]:
        headers = {"Accept": "application/json"}
        if key and self._key:
            headers["X-API-Key"] = self._key

        def attempt() -> dict[str, object]:
            self._limiter.acquire()
            with converting(call), self._client.stream(
                method, self._base + call.endpoint, json=body, headers=headers
            ) as response:
                content = _read_capped(response, call)
                check_status(answered(response, content), call)
                return json_object(answered(response, content), call)

        return self._retry.run(attempt, what=call.describe())

    def _check(self, response: httpx.Response, call: Call) -> None:
        """Check an object URL's answer, reading at most a little of an error body."""
        if 200 <= response.status_code < 300:
            return
        check_status(answered(response, _read_capped(response, call, tolerant=True)), call, url=True)

    def _unrefused(self, attempt: Callable[[], _T], call: Call) -> _T:
        """Run `attempt` under the retry policy, except that a refused URL ends it at once."""

        def guarded() -> _T:
            try:
                return attempt()
            except UrlRefused as exc:
                raise _Refused(exc) from None

        try:
            return self._retry.run(guarded, what=call.describe())
        except _Refused as refused:
            raise refused.error from None

    def _absolute(self, url: str, call: Call) -> str:
        """A URL the gateway returned, used exactly as given; only an http(s) URL will do."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise malformed(call, "a returned URL is not a URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise malformed(call, "a returned URL is not an absolute http(s) URL")
        return url




def _read_capped(response: httpx.Response, call: Call, *, tolerant: bool = False) -> bytes:
    """At most MAX_JSON_BYTES of a JSON (or error) answer; more is a malformed answer, unless
    `tolerant` (an error body: what was read is enough)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            if tolerant:
                break
            raise malformed(call, f"the answer is larger than {MAX_JSON_BYTES} bytes")
    return bytes(body)
