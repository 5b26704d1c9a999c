"""`BddClient`: the BDD file-service protocol (bdd-file-client 0.7.6) over httpx.

One `httpx.Client` per remote (pooled keep-alive connections, explicit
timeouts) shared by every worker thread; httpx clients are thread-safe and
this class keeps no other mutable state than the rate limiter, which locks.

Every call goes the same way: rate limit, one HTTP exchange inside
`converting()` (httpx exceptions -> syncd errors), the answer checked by
`bdd_wire` (status codes and envelope -> syncd errors), and the whole attempt
retried by `RetryPolicy` while the error is transient. File bodies are streamed
from disk through `FileSlice`, and downloads are streamed to `out`: no file is
ever held in memory. Nor is an answer: every JSON answer is streamed too and
read to at most `max_json_bytes` decompressed (`bdd_wire.read_json_capped`), an
error answer to a little, and a listing to at most `max_listed_files` files.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, cast

import httpx
import structlog

from syncd import __version__
from syncd.core.names import unsafe_reason
from syncd.errors import ItemError, TransientError
from syncd.remote.base import OnResume, Progress
from syncd.remote.bdd.chatfile import ChatFile, FileStatus
from syncd.remote.bdd.errors import (
    Call,
    converting,
    malformed,
    request_may_have_arrived,
    safe_origin,
)
from syncd.remote.bdd.multipart import PARTS_IN_FLIGHT, MultipartUploads
from syncd.remote.bdd.multipart import MultipartToken as MultipartToken
from syncd.remote.bdd.multipart import MultipartUploadInterrupted as MultipartUploadInterrupted
from syncd.remote.bdd.wire import (
    MAX_JSON_BYTES,
    DecodedBody,
    Page,
    content_length,
    expect_int,
    expect_str,
    parse_page,
    raise_for_status,
    representable,
)
from syncd.remote.fileslice import FileSlice
from syncd.remote.ratelimit import RateLimiter
from syncd.remote.retry import Abort, RetryPolicy

log = structlog.get_logger("syncd.remote.bdd.client")

MiB = 1024 * 1024
#: The most files one listing may hold: far more than any chat syncd is meant for, and a bound
#: on what a service whose `total` and pages never end can make the client keep.
MAX_LISTED_FILES = 1_000_000


class BddClient(MultipartUploads):
    """The BDD file-service protocol for one user, in its own words (chats, ids, hashcodes):
    `syncd.remote.bdd.remote.BddRemote` reads it as a `Remote`."""

    def __init__(
        self,
        base_url: str,
        user_id: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        requests_per_minute: float = 0,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 16 * MiB,
        page_size: int = 1000,
        max_connections: int = 8,
        retry_attempts: int = 5,
        retry_backoff: float = 1.0,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        abort: Abort | None = None,
        origin: str | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
        max_listed_files: int = MAX_LISTED_FILES,
        parts_in_flight: int = PARTS_IN_FLIGHT,
    ) -> None:
        """`transport` replaces httpx's own (then `max_connections` is the transport's business:
        a client's limits only apply to the transport it builds). `origin`: what messages call
        the remote; by default the scheme, host and port of `base_url`."""
        if min(part_size, page_size, max_connections, max_json_bytes, max_listed_files) <= 0:
            raise ValueError(
                "part_size, page_size, max_connections, max_json_bytes and max_listed_files must be positive"
            )
        headers = {"X-User-Id": user_id, "User-Agent": f"syncd/{__version__}"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
            # Loading the CA bundle costs ~30 ms per client; a plain-http service (the embedded one,
            # a loopback server) never does TLS, and redirects are not followed anywhere else.
            verify=not base_url.lower().startswith("http://"),
        )
        self._origin = origin if origin is not None else safe_origin(self._client.base_url)
        self._user_id = user_id
        self._has_key = bool(api_key)
        self._limiter = RateLimiter(requests_per_minute)
        # `abort`: the remote's circuit breaker; set, it cuts every retry loop short.
        self._retry = RetryPolicy(attempts=retry_attempts, backoff=retry_backoff, max_wait=max_wait, abort=abort)
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._parts_in_flight = max(1, parts_in_flight)
        self._page_size = page_size
        self._max_json_bytes = max_json_bytes  # the most of one JSON answer read (decompressed)
        self._max_listed_files = max_listed_files

    def __repr__(self) -> str:
        key = ", api_key=***" if self._has_key else ""
        return f"BddClient({self._origin!r}, user_id={self._user_id!r}{key})"

    # -- listing -------------------------------------------------------------------------------

    def list_chat(self, chat_id: str) -> list[ChatFile]:
        """Every file of the chat, all pages walked, in the service's order."""
        return self._list_chat(chat_id, self._retry)

    def _list_chat(self, chat_id: str, policy: RetryPolicy) -> list[ChatFile]:
        call = self._call("list", f"chat {chat_id!r}", "/listChatFiles")
        # Keyed by id: a file that shifts across a page boundary while we walk is listed once.
        files: dict[int, ChatFile] = {}
        offset, pages, max_pages = 0, 0, 1
        fullest = self._page_size  # the most items a page may hold: our limit, then the service's own

        def parse(data: object, call: Call) -> Page:
            return parse_page(data, call, limit=self._page_size)  # a longer page is malformed

        while True:
            params: dict[str, str | int] = {"chat_id": chat_id, "offset": offset, "limit": self._page_size}
            page = self._json(call, "GET", parse, params=params, policy=policy)
            if pages == 0:
                # Guard against a service whose `total` lies: allow twice the pages it announced
                # (and never more than a listing of `max_listed_files` would need).
                announced = min(max(page.total, 0), self._max_listed_files)
                max_pages = 2 * math.ceil(announced / self._page_size) + 10
            pages += 1
            fresh = [item for item in page.items if item.id not in files]
            for item in fresh:
                files[item.id] = item
            if len(files) > self._max_listed_files:
                raise malformed(call, f"listing holds more than {self._max_listed_files} files")
            offset += len(page.items)
            # The walk ends at `total` with a page that is not full, or at a page with nothing new
            # (an empty one, or offset ignored). A `total` is not trusted further: one the walk went
            # past is a lie, and a full page may have more after it even when `total` says not (a
            # service may also cap its pages below our limit). A short total would make the files
            # not yet listed look deleted.
            if not fresh or (offset == page.total and len(page.items) < fullest):
                return [item for item in files.values() if representable(item, call)]
            fullest = len(page.items) if pages == 1 else max(fullest, len(page.items))
            if pages >= max_pages:
                raise malformed(call, f"listing did not end after {pages} pages")

    # -- uploads -------------------------------------------------------------------------------

    def upload(
        self,
        path: Path,
        *,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None = None,
        progress: Progress | None = None,
        resume: str | None = None,
        on_resume: OnResume | None = None,
    ) -> int:
        """Upload `size` bytes of `path` as `filename` into the chat; return the new file id.

        Files above `multipart_threshold` go in parts. Such an upload reports its
        `MultipartToken` to `on_resume` before it sends any part; given back as
        `resume`, the token makes a later upload of the same content send only the
        parts the service still lacks (or just return the id, if that upload was
        completed after all). A token the service no longer knows, one whose upload
        failed there, or one for other content starts a fresh upload (the stale one
        is aborted while it is still in progress). If a part still fails after the
        retries, `MultipartUploadInterrupted` carries the token too.
        """
        reason = unsafe_reason(filename)
        if reason is not None:
            raise ItemError(f"upload {filename!r} to chat {chat_id!r} refused: {reason}")
        if size < 0:
            raise ValueError(f"negative size {size}")
        token = MultipartToken.loads(resume) if resume is not None else None
        if token is not None and token.user_id == self._user_id:
            if token.fits(self._user_id, chat_id, filename, size, sha256):
                resumed = self._resume_token(token, path, progress)
                if resumed is not None:
                    return resumed
            else:
                self._drop_stale(token)
        if size > self._multipart_threshold:
            try:
                return self._upload_multipart(path, chat_id, filename, size, sha256, progress, on_resume)
            except MultipartUploadInterrupted as exc:
                if on_resume is not None and exc.resume is not None:
                    on_resume(exc.resume)  # reported at the start already; said again for certain
                raise
        return self._upload_simple(path, chat_id, filename, size, sha256, progress)

    def _upload_simple(
        self,
        path: Path,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
    ) -> int:
        call = self._call("upload", f"{filename!r} to chat {chat_id!r}", "/uploadSimpleFile")
        params = json.dumps(
            {
                "filename": filename,
                "biz": "chat",
                "biz_params": {"chat_id": chat_id},
                "size": size,
                "hashcode": sha256,
            }
        )
        maybe_created = False

        def attempt() -> int:
            nonlocal maybe_created
            if maybe_created and sha256 is not None:
                # The last attempt may have created the file before failing: do not upload twice.
                once = dataclasses.replace(self._retry, attempts=1)  # inside a retry loop already
                existing = self._find_copy(chat_id, filename, size, sha256, once)
                if existing is not None:
                    return existing.id
            self._limiter.acquire()
            try:
                with path.open("rb") as file:
                    body = FileSlice(file, 0, size, name=filename, on_read=progress)
                    data = self._exchange(
                        call,
                        "POST",
                        files={"file": (filename, cast(IO[bytes], body), "application/octet-stream")},
                        data={"params": params},
                    )
                return expect_int(data, call)
            except TransientError as exc:
                maybe_created = maybe_created or request_may_have_arrived(exc)
                raise

        return self._retry.run(attempt, what=call.describe())

    def find_copy(self, chat_id: str, filename: str, size: int, sha256: str) -> ChatFile | None:
        """The newest `ok` file of the chat with exactly this name, size and sha256, if any."""
        return self._find_copy(chat_id, filename, size, sha256, self._retry)

    def _find_copy(
        self, chat_id: str, filename: str, size: int, sha256: str, policy: RetryPolicy
    ) -> ChatFile | None:
        matches = [
            item
            for item in self._list_chat(chat_id, policy)
            if item.filename == filename
            and item.size == size
            and item.hashcode.lower() == sha256.lower()
            and item.status is FileStatus.OK
        ]
        if not matches:
            return None
        return max(matches, key=lambda item: (item.upload_at, item.id))

    # -- downloads, deletes --------------------------------------------------------------------

    def download(
        self, file_id: int, out: BinaryIO, *, progress: Progress | None = None, limit: int | None = None
    ) -> int:
        """Stream the file's bytes into `out`; return how many were written.

        A retry starts over at `out`'s initial position (truncating what the failed
        attempt wrote); an `out` that cannot seek gets a single attempt. A body that runs past
        `limit` bytes (an endless or wrong answer) is cut off there, never written in full.
        """
        call = self._call("download", f"file {file_id}", "/downloadFile")
        start = out.tell() if out.seekable() else None
        policy = self._retry if start is not None else dataclasses.replace(self._retry, attempts=1)

        def attempt() -> int:
            if start is not None:
                out.seek(start)
                out.truncate()
            self._limiter.acquire()
            with (
                converting(call),
                self._client.stream(
                    "GET", call.endpoint, params={"file_id": file_id}, headers={"Accept-Encoding": "identity"}
                ) as response,
            ):
                if response.status_code != 200:
                    raise_for_status(response, call)
                expected = content_length(response)
                written = 0
                # Decoded here in bounded steps, should the service compress it although not asked.
                for chunk in DecodedBody(response, call):
                    if not chunk:
                        continue
                    if limit is not None and written + len(chunk) > limit:
                        raise TransientError(
                            f"{call.describe()} failed: the answer is longer than the {limit} bytes expected"
                        )
                    out.write(chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written)
            if expected is not None and written != expected:
                raise TransientError(
                    f"{call.describe()} failed: the answer was cut short ({written} of {expected} bytes)"
                )
            return written

        return policy.run(attempt, what=call.describe())

    def delete(self, file_id: int) -> None:
        """Delete the file (a file already gone counts as deleted)."""
        call = self._call("delete", f"file {file_id}", "/deleteFile")
        try:
            self._json(call, "DELETE", expect_int, params={"file_id": file_id})
        except ItemError as exc:
            if exc.status != 404:
                raise

    def download_url(self, file_id: int, expires_in: int = 600) -> str:
        """A URL that fetches the file without headers until it expires."""
        call = self._call("get download url of", f"file {file_id}", "/getFileDownloadUrl")
        url = self._json(call, "GET", expect_str, params={"file_id": file_id, "expires_in": expires_in})
        # The SDK passes the URL through as is; a relative one is taken relative to the service.
        return url if httpx.URL(url).is_absolute_url else str(self._client.base_url.join(url))

    def close(self) -> None:
        """Release connections."""
        self._client.close()

    def __enter__(self) -> BddClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
