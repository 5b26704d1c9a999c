"""The one way every BDD call is made: rate limit, one HTTP exchange inside `converting()`
(httpx exceptions -> syncd errors), the answer's envelope checked and read to a bounded size
(`wire.envelope_data`), the whole attempt retried by `RetryPolicy` while it is transient.
`BddClient` sets the attributes declared here; its multipart steps use the same calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import IO, TypeVar

import httpx

from syncd.remote.bdd.errors import Call, converting
from syncd.remote.bdd.wire import ACCEPT_ENCODING, envelope_data
from syncd.remote.ratelimit import RateLimiter
from syncd.remote.retry import RetryPolicy

T = TypeVar("T")

#: Asked on every JSON call: only the encodings the client decodes itself, in bounded steps.
JSON_HEADERS = {"Accept-Encoding": ACCEPT_ENCODING}


class Transport:
    """The plumbing of one BDD client: calls described, JSON exchanged, attempts retried."""

    _client: httpx.Client
    _origin: str
    _limiter: RateLimiter
    _retry: RetryPolicy
    _max_json_bytes: int

    def _call(self, action: str, subject: str, endpoint: str) -> Call:
        return Call(action=action, subject=subject, endpoint=endpoint, remote=self._origin)

    def _json(
        self,
        call: Call,
        method: str,
        parse: Callable[[object, Call], T],
        *,
        params: dict[str, str | int] | None = None,
        json: object = None,
        policy: RetryPolicy | None = None,
    ) -> T:
        """One JSON call, retried: its envelope's `data`, checked by `parse` (inside the
        attempt, so that a malformed `data` is retried like any other malformed answer)."""

        def attempt() -> T:
            self._limiter.acquire()
            return parse(self._exchange(call, method, params=params, json=json), call)

        return (policy or self._retry).run(attempt, what=call.describe())

    def _exchange(
        self,
        call: Call,
        method: str,
        *,
        params: dict[str, str | int] | None = None,
        json: object = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> object:
        """One HTTP exchange whose answer is a JSON envelope: its `data`. The answer is streamed
        and read to at most `max_json_bytes` decompressed (an error answer to a little), never
        whole: it is the way every JSON call of this client reads its answer."""
        with (
            converting(call),
            self._client.stream(
                method, call.endpoint, params=params, json=json, files=files, data=data, headers=JSON_HEADERS
            ) as response,
        ):
            return envelope_data(response, call, self._max_json_bytes)
