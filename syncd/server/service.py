"""What the file service's endpoints share: the limits on clients, the service's state, and
the `endpoint` wrapper every handler goes through.

Invariants: every handler is wrapped by `endpoint`, so every request is checked for the API key
(unless the endpoint is public: `/health`, `/signedDownload`) before its handler runs, and
every error leaves as the envelope `{"code", "data", "message"}`, never as a traceback (an
internal error is logged, and answered with no more than "internal error"). A signed URL is
built from `public_url` or from a Host header that is a plain host[:port], never from anything
else the client sent. No upload is in flight when a `Service` starts, so it removes every stray
part file then.
"""

from __future__ import annotations

import functools
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from syncd.server.parthash import PartHashes
from syncd.server.partwrite import PartWriters
from syncd.server.problems import ApiError, error_envelope
from syncd.server.signing import load_or_create_key
from syncd.server.store import Store

log = structlog.get_logger("syncd.server")

Handler = Callable[[Request], Awaitable[Response]]
GiB = 1024**3
#: A host name, IPv4 address or bracketed IPv6 address, and an optional port: what a Host header
#: may be for a signed URL to be built from it.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the service; every field is a `syncd serve` option."""

    max_upload_size: int | None = 10 * GiB
    max_parts: int = 10_000
    upload_ttl: float = 24 * 3600.0
    public_url: str | None = None

    def sweep_interval(self) -> float:
        return max(0.2, min(self.upload_ttl / 4, 60.0))


class Service:
    """The state the endpoints share: the store, the signing key, the limits, the part writers."""

    def __init__(self, data_dir: Path, api_key: str | None, limits: Limits) -> None:
        self.store = Store(data_dir)
        self.key = load_or_create_key(data_dir / "signing.key")
        self.api_key = api_key
        self.limits = limits
        self.max_upload_size = limits.max_upload_size
        self.part_hashes = PartHashes()
        self.writers = PartWriters()
        for stray in self.store.stray_part_files(time.time()):  # no upload is in flight yet
            stray.unlink(missing_ok=True)

    def stop_writers(self, file_id: int) -> None:
        """Fence every part of `file_id` still arriving, and forget its running hash."""
        self.writers.fence(file_id)
        self.part_hashes.forget(file_id)

    def sweep(self, now: float) -> int:
        """Delete the uploads idle for longer than the upload TTL, with their part files."""
        idle_since = now - self.limits.upload_ttl
        expired = 0
        for file_id in self.store.stale_uploads(idle_since):
            if self.writers.busy(file_id):
                continue  # a part is arriving right now: not abandoned
            self.stop_writers(file_id)
            if self.store.expire(file_id, idle_since):
                expired += 1
                log.info("expired upload", file_id=file_id, idle_for=self.limits.upload_ttl)
        for stray in self.store.stray_part_files(idle_since):
            stray.unlink(missing_ok=True)
        return expired

    def check_api_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ApiError(401, "missing or wrong API key")

    def check_size(self, size: int) -> None:
        if self.max_upload_size is not None and size > self.max_upload_size:
            raise ApiError(413, f"file of {size} bytes is larger than the limit of {self.max_upload_size}")

    def base_url(self, request: Request) -> str:
        """Where signed URLs point: `public_url` when set, else the scheme and Host the request
        came with (a Host that is not a plain host[:port] is refused, never echoed)."""
        if self.limits.public_url:
            return self.limits.public_url.rstrip("/")
        host = request.headers.get("host", "")
        if not _HOST.fullmatch(host):
            raise ApiError(400, "the Host header is not a valid host; set the service's public URL")
        scheme = "https" if request.url.scheme == "https" else "http"
        return f"{scheme}://{host}"


def endpoint(*, auth: bool = True) -> Callable[[Callable[[Service, Request], Awaitable[Response]]], Handler]:
    """Wrap a handler: API key, and every error turned into an envelope."""

    def wrap(func: Callable[[Service, Request], Awaitable[Response]]) -> Handler:
        @functools.wraps(func)
        async def handler(request: Request) -> Response:
            service: Service = request.app.state.service
            try:
                if auth:
                    service.check_api_key(request)
                return await func(service, request)
            except ApiError as exc:
                log.info("refused", path=request.url.path, status=exc.status, reason=exc.message)
                return error_envelope(exc.status, exc.message)
            except ClientDisconnect:  # the client went away, or was cut off as too slow: nobody to answer
                log.info("client disconnected", path=request.url.path)
                return error_envelope(400, "client disconnected")
            except Exception:
                log.exception("internal error", path=request.url.path)
                return error_envelope(500, "internal error")

        return handler

    return wrap
