"""The file service's HTTP application (Starlette), exactly as bdd-file-client 0.7.6 calls it.

Every endpoint answers the envelope `{"code", "data", "message"}` except the
two that return raw bytes (`/downloadFile`, `/signedDownload`). Handlers only
translate HTTP to `Store` calls; validation of untrusted input is in
`syncd.server.params`. The handlers are in `simpleupload`, `multipartupload`,
`download` and `catalog`, all wrapped by `service.endpoint`; this module holds
the route table, the errors no handler caught, and the service's lifespan
(abandoned uploads expire while it runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.server.catalog import delete_file, list_chat_files, list_directories, list_files_in_directory
from syncd.server.download import download, download_url, signed_download
from syncd.server.multipartupload import (
    abort_multipart,
    complete_multipart,
    init_multipart,
    multipart_status,
    upload_part,
)
from syncd.server.problems import envelope, error_envelope
from syncd.server.service import Limits, Service, endpoint, log
from syncd.server.simpleupload import upload_simple


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
