"""The simple upload (`POST /uploadSimpleFile`): a whole file in one multipart form.

Invariants: the bytes are received into a temp file under the store's `tmp/`, checked against
the size (and hashcode, if any) `params` announces, and fsynced before the file gets its row;
the row is `uploading` until the temp file is renamed to its blob and the directory fsynced,
and only then `ok`. Whatever fails on the way, the temp file is removed. A size over the
limit, told by Content-Length or by a `params` sent ahead of the file, is refused before the
file's bytes are received.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from syncd.local.durable import fsync_dir
from syncd.server import params as p
from syncd.server.formstream import FileSink, parse_form
from syncd.server.problems import ApiError, envelope
from syncd.server.service import Service, endpoint, log

#: Room for a simple upload's form around its file: boundaries, part headers, `params`.
FORM_OVERHEAD = 64 * 1024


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
