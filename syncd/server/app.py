"""The file service's HTTP endpoints (Starlette), exactly as bdd-file-client 0.7.6 calls them.

Every endpoint answers the envelope `{"code", "data", "message"}` except the
two that return raw bytes (`/downloadFile`, `/signedDownload`). Handlers only
translate HTTP to `Store` calls; validation of untrusted input is in
`syncd.server.params`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import math
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.local.durable import fsync_dir
from syncd.server import params as p
from syncd.server.filestream import OpenFileResponse
from syncd.server.formstream import FileSink, parse_form
from syncd.server.parthash import PartHashes
from syncd.server.partwrite import PartWriter, PartWriters
from syncd.server.problems import ApiError, envelope, error_envelope
from syncd.server.signing import load_or_create_key, sign, verify
from syncd.server.store import Store

log = structlog.get_logger("syncd.server")

Handler = Callable[[Request], Awaitable[Response]]
COPY_CHUNK = 1024 * 1024
GiB = 1024**3
#: Room for a simple upload's form around its file: boundaries, part headers, `params`.
FORM_OVERHEAD = 64 * 1024
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


# -- uploads ---------------------------------------------------------------


@endpoint()
async def upload_simple(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    declared = p.content_length(request)
    if declared is not None:
        service.check_size(max(0, declared - FORM_OVERHEAD))
    upload: p.UploadParams | None = None

    def open_sink(fields: dict[str, str], out: BinaryIO) -> FileSink:
        nonlocal upload
        if "params" in fields:  # refuse a bad name, a size too large, before receiving the bytes
            upload = p.upload_params(fields["params"])
            service.check_size(upload.size)
            if declared is not None and declared > upload.size + FORM_OVERHEAD:
                raise ApiError(400, f"the request is larger than the {upload.size} bytes 'size' announces")
            return FileSink(out, limit=upload.size, limit_reason=f"more bytes than 'size' ({upload.size}) announces")
        return FileSink(out, limit=service.max_upload_size)

    fd, tmp_name = tempfile.mkstemp(dir=service.store.tmp, prefix="upload-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            form = await parse_form(
                request.stream(), request.headers.get("content-type"), "file",
                lambda fields: open_sink(fields, out),
            )
            if form.file is None:
                raise ApiError(400, "missing form field 'file'")
            if upload is None:
                upload = p.upload_params(form.fields.get("params"))
            sha256 = form.file.sha256.hexdigest()
            p.check_received(upload, form.file.size, sha256)
            out.flush()
            await run_in_threadpool(os.fsync, out.fileno())
        file_id = service.store.new_file(
            user, filename=upload.filename, size=upload.size, hashcode=sha256,
            biz=upload.biz, biz_params=upload.biz_params, status="uploading",
        )
        os.replace(tmp, service.store.blob_path(file_id))
        await run_in_threadpool(fsync_dir, service.store.blobs)
        service.store.finish(file_id, hashcode=sha256)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("uploaded", user=user, file_id=file_id, size=upload.size)
    return envelope(file_id)


@endpoint()
async def init_multipart(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    body = await p.json_body(request)
    upload = p.upload_params_from(body)
    part_size = p.int_field(body, "part_size", minimum=1)
    service.check_size(upload.size)
    parts = math.ceil(upload.size / part_size)
    if parts > service.limits.max_parts:
        least = math.ceil(upload.size / service.limits.max_parts)
        raise ApiError(
            400, f"'part_size' {part_size} makes {parts} parts; at most {service.limits.max_parts} are allowed"
            f" (part_size of at least {least} for {upload.size} bytes)",
        )
    file_id = service.store.new_file(
        user, filename=upload.filename, size=upload.size, hashcode=upload.hashcode or "",
        biz=upload.biz, biz_params=upload.biz_params, status="uploading", part_size=part_size,
    )
    try:
        with open(service.store.part_path(file_id), "wb") as f:
            f.truncate(upload.size)  # sparse: parts land at their offsets
    except OSError as exc:  # EFBIG: larger than this file system allows
        service.store.delete(user, file_id)
        raise ApiError(413, f"file of {upload.size} bytes cannot be stored here ({exc.strerror})") from None
    return envelope(file_id)


def _open_part(service: Service, user: str, raw: str | None) -> tuple[int, int, int, int]:
    """(file_id, part_number, offset, expected size) of a part, checked against its upload."""
    file_id, part_number = p.part_params(raw)
    f = service.store.get(user, file_id)
    if f.status != "uploading" or f.part_size is None:
        raise ApiError(400, f"file {file_id} is not a multipart upload in progress")
    count = math.ceil(f.size / f.part_size)
    if not 1 <= part_number <= count:
        raise ApiError(400, f"part_number {part_number} is out of range 1..{count}")
    offset = (part_number - 1) * f.part_size
    return file_id, part_number, offset, min(f.part_size, f.size - offset)


def _start_part(service: Service, target: tuple[int, int, int, int]) -> PartWriter:
    """A fenced writer at the part's offset; the part stops counting as received until whole."""
    file_id, part_number, offset, _ = target
    if not service.store.start_part(file_id, part_number):
        raise ApiError(400, f"file {file_id} is not a multipart upload in progress")
    try:
        return service.writers.open(file_id, service.store.part_path(file_id), offset)
    except FileNotFoundError:
        raise ApiError(400, f"file {file_id} is not a multipart upload in progress") from None


@endpoint()
async def upload_part(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    target: tuple[int, int, int, int] | None = None
    spool = tempfile.TemporaryFile(dir=service.store.tmp)  # noqa: SIM115 - closed in the finally below
    writer: PartWriter | None = None

    def open_sink(fields: dict[str, str]) -> FileSink:
        nonlocal target, writer
        if "params" in fields:  # the usual order: write the part in place as it arrives
            target = _open_part(service, user, fields["params"])
            hasher = service.part_hashes.hasher_for(target[0], target[1])
            writer = _start_part(service, target)
            return FileSink(writer, limit=target[3], sha256=hasher)  # type: ignore[arg-type]
        return FileSink(spool, limit=service.limits.max_upload_size)

    try:
        form = await parse_form(request.stream(), request.headers.get("content-type"), "part", open_sink)
        if form.file is None:
            raise ApiError(400, "missing form field 'part'")
        if target is None:  # params came after the bytes: copy the spooled part into place
            target = _open_part(service, user, form.fields.get("params"))
            if form.file.size != target[3]:
                raise ApiError(400, f"part {target[1]} has {form.file.size} bytes, expected {target[3]}")
            service.part_hashes.hasher_for(target[0], target[1])  # rewriting: the running hash is void
            spool.seek(0)
            writer = _start_part(service, target)
            await run_in_threadpool(_copy, spool, writer)  # a part may be large: not on the event loop
        file_id, part_number, _, expected = target
        if form.file.size != expected:
            service.part_hashes.part_done(file_id, part_number, None, chained=False)
            raise ApiError(400, f"part {part_number} has {form.file.size} bytes, expected {expected}")
        # No await from here on: the fence check and the record happen with no other request between.
        if writer is None or writer.fenced:
            raise ApiError(409, f"upload {file_id} was completed, aborted or deleted while this part arrived")
    finally:
        spool.close()
        if writer is not None:
            writer.close()
    chained = form.file.out is not spool
    service.part_hashes.part_done(file_id, part_number, form.file.sha256, chained=chained)
    if not service.store.record_part(file_id, part_number, expected):
        raise ApiError(409, f"upload {file_id} was completed, aborted or deleted while this part arrived")
    return envelope(part_number)


def _copy(source: BinaryIO, writer: PartWriter) -> None:
    while chunk := source.read(COPY_CHUNK):
        writer.write(chunk)


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def _fsync_file(path: Path) -> int:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        return os.fstat(f.fileno()).st_size


@endpoint()
async def complete_multipart(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.int_field(await p.json_body(request), "file_id", minimum=1)
    f = service.store.get(user, file_id)
    if f.status == "ok":
        return envelope(file_id)  # a retried complete after an ambiguous failure
    if f.status != "uploading" or f.part_size is None:
        raise ApiError(400, f"file {file_id} is not a multipart upload in progress (status {f.status})")
    count = math.ceil(f.size / f.part_size)
    if count > service.limits.max_parts:  # started under a larger limit: cannot be finished now
        raise ApiError(400, f"file {file_id} has {count} parts, more than {service.limits.max_parts}; abort it")
    missing, shown = service.store.missing_parts(file_id, count)
    if missing:
        listed = ", ".join(map(str, shown)) + (f" ... ({missing} in all)" if missing > len(shown) else "")
        raise ApiError(400, f"cannot complete file {file_id}: missing parts {listed}")
    if not service.store.begin_merge(file_id):
        raise ApiError(400, f"file {file_id} is not a multipart upload in progress")
    service.writers.fence(file_id)  # a part still arriving (a re-send) must not touch the result
    running = service.part_hashes.take(file_id, count)
    if running is not None:  # hashed on the way in: make it durable, no need to read it back
        size, sha256 = await run_in_threadpool(_fsync_file, service.store.part_path(file_id)), running
    else:
        size, sha256 = await run_in_threadpool(_hash_file, service.store.part_path(file_id))
    if size != f.size or (f.hashcode and f.hashcode.lower() != sha256):
        service.store.end_merge(file_id)
        what = f"size {size} != {f.size}" if size != f.size else "hashcode does not match the content"
        raise ApiError(400, f"cannot complete file {file_id}: {what}")
    # No await between this check and the rename: a delete that came while hashing wins.
    if service.store.status_of(file_id) != "merging":
        raise ApiError(409, f"file {file_id} was deleted while it was being completed")
    os.replace(service.store.part_path(file_id), service.store.blob_path(file_id))
    await run_in_threadpool(fsync_dir, service.store.blobs)
    service.store.finish(file_id, hashcode=sha256)
    log.info("uploaded", user=user, file_id=file_id, size=size, parts=count)
    return envelope(file_id)


@endpoint()
async def abort_multipart(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.int_field(await p.json_body(request), "file_id", minimum=1)
    f = service.store.get(user, file_id)
    if f.status == "ok":
        raise ApiError(400, f"file {file_id} is complete; delete it instead")
    if f.status == "merging":
        raise ApiError(409, f"file {file_id} is being completed")
    service.stop_writers(file_id)
    service.store.delete(user, file_id)
    return envelope(file_id)


@endpoint()
async def multipart_status(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.query_int(request, "file_id", minimum=1)
    f = service.store.get(user, file_id)
    part_size = f.part_size or max(f.size, 1)
    count = math.ceil(f.size / part_size)
    if count > service.limits.max_parts:  # started under a larger limit
        raise ApiError(400, f"file {file_id} has {count} parts, more than {service.limits.max_parts}; abort it")
    done = list(range(1, count + 1)) if f.status == "ok" else service.store.received_parts(file_id)
    remaining = sorted(set(range(1, count + 1)) - set(done))
    return envelope(
        {
            "file_id": file_id,
            "status": f.status,
            "part_size": part_size,
            "uploaded_parts": done,
            "remaining_parts": remaining,
        }
    )


# -- downloads -------------------------------------------------------------


def _file_response(service: Service, user: str, file_id: int) -> Response:
    f = service.store.get(user, file_id)
    if f.status != "ok":
        raise ApiError(409, f"file {file_id} is not ready (status {f.status})")
    try:  # opened now: a delete while the answer streams cannot cut it short
        blob = open(service.store.blob_path(file_id), "rb")  # noqa: SIM115 - closed by the response
    except FileNotFoundError:
        raise ApiError(404, f"file {file_id} not found") from None
    return OpenFileResponse(blob, filename=f.filename)


@endpoint()
async def download(service: Service, request: Request) -> Response:
    return _file_response(service, p.user_of(request), p.query_int(request, "file_id", minimum=1))


@endpoint()
async def download_url(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.query_int(request, "file_id", minimum=1)
    expires_in = p.query_int(request, "expires_in", default=600, minimum=1, maximum=7 * 86400)
    service.store.get(user, file_id)
    base = service.base_url(request)
    expires = int(time.time()) + expires_in
    query = urlencode(
        {"file_id": file_id, "expires": expires, "signature": sign(service.key, file_id, user, expires)}
    )
    return envelope(f"{base}/signedDownload?{query}")


@endpoint(auth=False)
async def signed_download(service: Service, request: Request) -> Response:
    file_id = p.query_int(request, "file_id", minimum=1)
    expires = p.query_int(request, "expires")
    signature = request.query_params.get("signature", "")
    owner = service.store.owner_of(file_id)
    if owner is None or not verify(service.key, file_id, owner, expires, signature, time.time()):
        raise ApiError(403, "download link is invalid or has expired")
    return _file_response(service, owner, file_id)


# -- the rest --------------------------------------------------------------


@endpoint()
async def delete_file(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.query_int(request, "file_id", minimum=1)
    service.store.get(user, file_id)  # 404 before fencing anything of another user's
    service.stop_writers(file_id)
    service.store.delete(user, file_id)
    log.info("deleted", user=user, file_id=file_id)
    return envelope(file_id)


@endpoint()
async def list_chat_files(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    chat_id = request.query_params.get("chat_id")
    if not chat_id:
        raise ApiError(400, "missing query parameter 'chat_id'")
    offset = p.query_int(request, "offset", default=0, minimum=0)
    limit = p.query_int(request, "limit", default=100, minimum=1, maximum=1000)
    total, files = service.store.list_chat(user, chat_id, offset, limit)
    return envelope({"total": total, "items": [f.info() for f in files]})


@endpoint()
async def list_directories(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    limit, offset = p.page(request)
    order = p.sort_order(request, p.DIRECTORY_ORDER)
    total, items = service.store.list_directories(user, request.query_params.get("name"), order, limit, offset)
    return envelope({"total": total, "items": items})


@endpoint()
async def list_files_in_directory(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    directory_id = p.query_int(request, "directory_id", minimum=0)
    limit, offset = p.page(request)
    order = p.sort_order(request, p.FILE_ORDER)
    total, files = service.store.list_directory_files(
        user, directory_id, request.query_params.get("name"), order, limit, offset
    )
    return envelope({"total": total, "items": [f.info() for f in files]})


@endpoint(auth=False)
async def health(service: Service, request: Request) -> Response:
    return envelope({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_envelope(exc.status_code, str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error", path=request.url.path, error=type(exc).__name__)
    return error_envelope(500, "internal error")


def _lifespan(service: Service) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """While the service runs: expire abandoned uploads, and close the store at the end."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def sweep_forever() -> None:
            while True:
                try:
                    await run_in_threadpool(service.sweep, time.time())
                except Exception:
                    log.exception("expiring uploads failed")
                await asyncio.sleep(service.limits.sweep_interval())

        task = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


def build_app(
    data_dir: Path,
    *,
    api_key: str | None = None,
    max_upload_size: int | None = Limits.max_upload_size,
    limits: Limits | None = None,
) -> Starlette:
    """The file service over `data_dir` (created if missing); `limits` or just `max_upload_size`."""
    if limits is None:
        limits = Limits(max_upload_size=max_upload_size)
    service = Service(Path(data_dir), api_key, limits)
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/uploadSimpleFile", upload_simple, methods=["POST"]),
        Route("/initMultipartUploadFile", init_multipart, methods=["POST"]),
        Route("/uploadFilePart", upload_part, methods=["POST"]),
        Route("/completeMultipartUpload", complete_multipart, methods=["POST"]),
        Route("/abortMultipartUpload", abort_multipart, methods=["POST"]),
        Route("/getMultipartUploadFileStatus", multipart_status, methods=["GET"]),
        Route("/downloadFile", download, methods=["GET"]),
        Route("/getFileDownloadUrl", download_url, methods=["GET"]),
        Route("/signedDownload", signed_download, methods=["GET"]),
        Route("/deleteFile", delete_file, methods=["DELETE"]),
        Route("/listChatFiles", list_chat_files, methods=["GET"]),
        Route("/listDirectories", list_directories, methods=["GET"]),
        Route("/listFilesInDirectory", list_files_in_directory, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=_lifespan(service),
    )
    app.state.service = service
    return app
