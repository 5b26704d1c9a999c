"""syncd's own client of a BeRay service (protocol notes: beray.md).

One pooled httpx client with explicit timeouts (the published client has none). Every call
carries the bearer token; a refused token (401/403) is renewed by logging in again, once, and
the call retried; refused again, or with a static token, it is an authentication failure. The
password and the token never appear in a message or a repr. A file's bytes stream both ways:
the PUT from the file with its length, the GET into the caller's file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx

from syncd import __version__
from syncd.errors import FatalError, TransientError
from syncd.remote.answers import answered, pieces, received
from syncd.remote.base import Progress
from syncd.remote.beray.errors import Refused, check_status
from syncd.remote.beray.settings import Login
from syncd.remote.fileslice import FileSlice
from syncd.remote.httperrors import Call, converting, safe_origin
from syncd.remote.ratelimit import RateLimiter
from syncd.remote.retry import Abort, RetryPolicy

MAX_JSON_BYTES = 16 * 1024 * 1024
#: The longest silence on the event stream before it counts as dead (keepalives come every 10 s).
STREAM_READ_TIMEOUT = 60.0
_T = TypeVar("_T")


class BeRayClient:
    """The API at `base_url` (``/api/v1`` is added), as the user `login` describes."""

    def __init__(
        self,
        base_url: str,
        login: Login,
        *,
        timeout: float = 60.0,
        requests_per_minute: float = 0,
        max_connections: int = 64,
        retry_attempts: int = 5,
        retry_backoff: float = 1.0,
        max_wait: float = 30.0,
        abort: Abort | None = None,
    ) -> None:
        self._api = base_url.rstrip("/") + "/api/v1"
        self._login = login
        self._token = login.token
        self._token_lock = threading.Lock()
        self._client = httpx.Client(
            headers={"User-Agent": f"syncd/{__version__}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )
        self._origin = safe_origin(httpx.URL(self._api))
        self._limiter = RateLimiter(requests_per_minute)
        self._retry = RetryPolicy(attempts=retry_attempts, backoff=retry_backoff, max_wait=max_wait, abort=abort)

    def __repr__(self) -> str:
        return f"BeRayClient({self._origin!r}, {self._login!r})"

    def close(self) -> None:
        self._client.close()

    # -- calls -----------------------------------------------------------------------------------

    def me(self) -> object:
        return self._json("check", "the user", "GET", "/users/me", None, 0)

    def task(self, task_id: int) -> object:
        return self._json("check", f"task {task_id}", "GET", f"/tasks/{task_id}", None, task_id)

    def tree(self, task_id: int, path: str) -> object:
        """One level of the work folder's directory `path` ("" is the work folder)."""
        return self._json("list", repr(path or "."), "GET", f"/tasks/{task_id}/files/tree",
                          {"path": path or "."}, task_id)

    def write(self, task_id: int, path: str, source: Path, size: int, progress: Progress | None) -> None:
        """PUT `size` bytes of `source` to `path` (creating or overwriting it, and its folders)."""
        call = self._call("upload", repr(path), "/files/content")

        def attempt(token: str | None) -> None:
            with source.open("rb") as file, converting(call):
                body = FileSlice(file, 0, size, name=path, on_read=progress)
                response = self._client.put(
                    f"{self._api}/tasks/{task_id}/files/content", params={"path": path},
                    content=pieces(body), headers={**_auth(token), "Content-Length": str(size),
                                                    "Content-Type": "application/octet-stream"},
                )
                check_status(answered(response, response.read()[:MAX_JSON_BYTES]), call, task_id)

        self._authorised(attempt, call)

    def read(self, task_id: int, path: str, out: BinaryIO, *, limit: int | None, progress: Progress | None) -> int:
        """Stream the file at `path` into `out` (rewound for each try); the bytes written."""
        call = self._call("download", repr(path), "/files/content")
        start = out.tell()

        def attempt(token: str | None) -> int:
            out.seek(start)
            out.truncate()
            with converting(call), self._client.stream(
                "GET", f"{self._api}/tasks/{task_id}/files/content", params={"path": path}, headers=_auth(token)
            ) as response:
                if not 200 <= response.status_code < 300:
                    check_status(answered(response, response.read()[:MAX_JSON_BYTES]), call, task_id)
                return received(response, out, limit=limit, progress=progress, what=call.describe())

        return self._authorised(attempt, call)

    @contextmanager
    def stream(self, task_id: int) -> Iterator[Iterator[str]]:
        """The task's event stream as lines, read as they arrive (a read timeout of
        STREAM_READ_TIMEOUT: the service sends a keepalive well within it)."""
        call = self._call("follow", f"task {task_id}", "/stream")
        token = self._current_token(call)
        with converting(call), self._client.stream(
            "GET", f"{self._api}/tasks/{task_id}/stream",
            headers={**_auth(token), "Accept": "text/event-stream"},
            timeout=httpx.Timeout(STREAM_READ_TIMEOUT, connect=30.0),
        ) as response:
            if not 200 <= response.status_code < 300:
                reply = answered(response, response.read()[:MAX_JSON_BYTES])
                try:
                    check_status(reply, call, task_id)
                except Refused:
                    self._relogin(token, call)  # the next connection carries a fresh token
                    raise
            yield response.iter_lines()

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, action: str, subject: str, endpoint: str) -> Call:
        return Call(action, subject, endpoint, self._origin)

    def _json(self, action: str, subject: str, method: str, suffix: str, params: dict[str, str] | None,
              task_id: int) -> object:
        call = self._call(action, subject, suffix)

        def attempt(token: str | None) -> object:
            with converting(call), self._client.stream(
                method, self._api + suffix, params=params, headers={**_auth(token), "Accept": "application/json"}
            ) as response:
                content = bytearray()
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > MAX_JSON_BYTES:
                        raise TransientError(f"{call.describe()} failed: the answer is too large")
            reply = answered(response, bytes(content))
            check_status(reply, call, task_id)
            try:
                return reply.json()
            except ValueError:
                raise TransientError(f"{call.describe()} failed: malformed answer from {suffix} (not JSON)") from None

        return self._authorised(attempt, call)

    def _authorised(self, attempt: Callable[[str | None], _T], call: Call) -> _T:
        """`attempt` with the current token, under the retry policy; a refused token is renewed
        by one login and the call tried again; refused again, the remote refuses us."""
        token = self._current_token(call)
        try:
            return self._retried(attempt, token, call)
        except Refused:
            if self._login.password is None:
                raise FatalError(f"authentication failed for remote {self._origin}: the token was refused "
                                 "(set a fresh one in token_env)") from None
        token = self._relogin(token, call)
        try:
            return self._retried(attempt, token, call)
        except Refused as exc:
            raise FatalError(str(exc), status=exc.status) from None

    def _retried(self, attempt: Callable[[str | None], _T], token: str | None, call: Call) -> _T:
        def once() -> _T:
            self._limiter.acquire()
            return attempt(token)

        return self._retry.run(once, what=call.describe())

    def _current_token(self, call: Call) -> str | None:
        with self._token_lock:
            if self._token is None and self._login.password is not None:
                self._token = self._log_in(call)
            return self._token

    def _relogin(self, refused: str | None, call: Call) -> str | None:
        with self._token_lock:
            if self._token == refused:  # not renewed by another thread meanwhile
                self._token = self._log_in(call)
            return self._token

    def _log_in(self, call: Call) -> str:
        login = self._call("log in", "as the configured user", "/auth/login")

        def attempt() -> str:
            with converting(login):
                response = self._client.post(f"{self._api}/auth/login",
                                             json={"email": self._login.email, "password": self._login.password})
            try:
                check_status(response, login, 0)
            except Refused as exc:
                raise FatalError(f"authentication failed for remote {self._origin}: log in as "
                                 f"{self._login.email!r} refused (HTTP {exc.status})", status=exc.status) from None
            payload = response.json() if response.content else None
            token = payload.get("access_token") if isinstance(payload, dict) else None
            if not isinstance(token, str) or not token:
                raise TransientError(f"{login.describe()} failed: the answer has no access_token")
            return token

        return self._retry.run(attempt, what=login.describe())


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
