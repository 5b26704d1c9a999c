"""The multipart upload's endpoints: start, send a part, complete, abort, and its status.

Invariants: an upload's bytes are one sparse part file, each part written in place at its
offset by a writer its upload can fence (spooled first when its `params` follow its bytes); a
part counts as received only once it arrived whole and its upload was still in progress
(`start_part` forgets it, `record_part` records it), so a part cut off mid-way is sent again.
Completing moves the upload to `merging` and fences every writer before it checks size and
hashcode, and renames the part file to the blob only if no delete came meanwhile (no await
between that check and the rename). An upload has at most `Limits.max_parts` parts.
"""

from __future__ import annotations

import hashlib
import math
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
from syncd.server.partwrite import PartWriter
from syncd.server.problems import ApiError, envelope
from syncd.server.service import Service, endpoint, log

COPY_CHUNK = 1024 * 1024


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
