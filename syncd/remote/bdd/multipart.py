"""BDD multipart uploads: the token that resumes one, and the steps of sending one.

A file above the client's `multipart_threshold` goes as `initMultipartUploadFile`, one
`uploadFilePart` per part, `completeMultipartUpload`. The token (`MultipartToken`) is reported
before the first part is sent, so a process killed at any point can go on from the parts the
service already has (`getMultipartUploadFileStatus`), and only for the very content it was
started for; an upload whose part failed for good is aborted, one cut short by a transient
failure raises `MultipartUploadInterrupted` carrying its token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import IO, BinaryIO, cast

import structlog

from syncd.errors import ItemError, TransientError
from syncd.remote.base import OnResume, Progress
from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.transport import Transport
from syncd.remote.bdd.wire import MultipartStatus, expect_int, parse_multipart_status
from syncd.remote.fileslice import FileSlice

log = structlog.get_logger("syncd.remote.bdd.client")

#: Parts of one upload sent at once: enough to hide a network's round trips behind the bytes,
#: few enough that a large file does not take every connection of the pool.
PARTS_IN_FLIGHT = 4


class MultipartUploadInterrupted(TransientError):
    """A multipart upload stopped half-way; `resume_multipart(multipart_file_id, ...)` finishes it,
    and so does `upload(..., resume=resume)` when `upload` raised it (`resume` is then its token)."""

    def __init__(
        self,
        message: str,
        *,
        multipart_file_id: int,
        status: int | None = None,
        retry_after: float | None = None,
        resume: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.multipart_file_id = multipart_file_id
        self.resume = resume


@dataclasses.dataclass(frozen=True, slots=True)
class MultipartToken:
    """What resumes a multipart upload: the service's id for it and the content it was started for.

    `upload` reports it (as JSON text) right after `initMultipartUploadFile`, before any part is
    sent, and takes it back as `resume=`. It is only used for the very upload it describes: same
    user, chat, name, size and sha256 (an upload started without a sha256 is never resumed).
    """

    file_id: int
    part_size: int
    user_id: str
    chat_id: str
    filename: str
    size: int
    sha256: str | None

    def dumps(self) -> str:
        return json.dumps({"bdd_multipart": dataclasses.asdict(self)}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> MultipartToken | None:
        """The token `text` holds; None for anything else (another remote's, damaged, older)."""
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        fields = raw.get("bdd_multipart") if isinstance(raw, dict) else None
        if not isinstance(fields, dict):
            return None
        ints, strs = ("file_id", "part_size", "size"), ("user_id", "chat_id", "filename")
        sha = fields.get("sha256")
        if (
            not all(type(fields.get(key)) is int for key in ints)
            or not all(isinstance(fields.get(key), str) for key in strs)
            or not (sha is None or isinstance(sha, str))
            or fields["part_size"] <= 0
        ):
            return None
        return cls(**{key: fields[key] for key in (*ints, *strs, "sha256")})

    def fits(self, user_id: str, chat_id: str, filename: str, size: int, sha256: str | None) -> bool:
        """True when this token's upload is an upload of exactly this content, here."""
        return (
            sha256 is not None
            and self.sha256 is not None
            and self.sha256.lower() == sha256.lower()
            and (self.user_id, self.chat_id, self.filename, self.size) == (user_id, chat_id, filename, size)
        )


class MultipartUploads(Transport):
    """The multipart steps of `BddClient`, over its transport."""

    _part_size: int
    _user_id: str
    _parts_in_flight: int

    def _upload_multipart(
        self,
        path: Path,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
        on_resume: OnResume | None,
    ) -> int:
        call = self._call("upload", f"{filename!r} to chat {chat_id!r}", "/initMultipartUploadFile")
        body = {
            "filename": filename,
            "size": size,
            "part_size": self._part_size,
            "hashcode": sha256,
            "biz": "chat",
            "biz_params": {"chat_id": chat_id},
        }
        file_id = self._json(call, "POST", expect_int, json=body)
        token = MultipartToken(file_id, self._part_size, self._user_id, chat_id, filename, size, sha256)
        if on_resume is not None:
            on_resume(token.dumps())  # before the first part: a kill from here on can resume
        parts = range(1, math.ceil(size / self._part_size) + 1)
        label = f"{filename!r} (multipart upload {file_id})"
        return self._finish_multipart(file_id, path, label, size, self._part_size, parts, progress, token)

    def _resume_token(self, token: MultipartToken, path: Path, progress: Progress | None) -> int | None:
        """Finish the upload `token` describes from where the service has it; its file id, or
        None when it cannot be resumed (unknown or expired, failed, or not the upload the token
        describes) and a fresh upload is needed."""
        label = f"{token.filename!r} (multipart upload {token.file_id})"
        try:
            status = self.multipart_status(token.file_id)
        except ItemError:
            return None  # the service does not know it (any more): aborted, expired
        if status.status is FileStatus.OK:
            return token.file_id  # completed after all: its answer was lost, or we died just after
        if status.status is FileStatus.MERGING:
            raise MultipartUploadInterrupted(
                f"resume upload {label}: the service is still merging its parts",
                multipart_file_id=token.file_id, resume=token.dumps(),
            )
        if status.status is FileStatus.ERROR:
            self._abort_quietly(token.file_id)
            return None
        parts = range(1, math.ceil(token.size / token.part_size) + 1)
        if status.part_size != token.part_size or {*status.uploaded_parts, *status.remaining_parts} != {*parts}:
            return None  # not shaped like the upload the token describes: leave it alone
        log.info("upload_resumed", file_id=token.file_id, name=token.filename,
                 parts_left=len(status.remaining_parts), parts=len(parts))
        return self._finish_multipart(
            token.file_id, path, label, token.size, token.part_size, status.remaining_parts, progress, token
        )

    def _drop_stale(self, token: MultipartToken) -> None:
        """A token for other content: abort its upload if it is still in progress (never a file
        it completed, which may well be the remote version the journal records)."""
        with contextlib.suppress(ItemError, TransientError):
            if self.multipart_status(token.file_id).status in (FileStatus.UPLOADING, FileStatus.ERROR):
                self.abort_multipart(token.file_id)

    def resume_multipart(
        self, file_id: int, path: Path, *, size: int, progress: Progress | None = None
    ) -> int:
        """Send the parts the service still lacks (read from `path`), complete; return the file id."""
        status = self.multipart_status(file_id)
        label = f"{path.name!r} (multipart upload {file_id})"
        if status.status is FileStatus.OK:
            return file_id
        if status.status is FileStatus.ERROR:
            raise ItemError(f"resume upload {label} failed: the service marked the upload failed")
        if status.status is FileStatus.MERGING:
            # Completion is under way on the service: touching the upload now could only harm it.
            raise MultipartUploadInterrupted(
                f"resume upload {label}: the service is still merging its parts", multipart_file_id=file_id
            )
        last = math.ceil(size / status.part_size)
        if any(n > last for n in status.remaining_parts):
            raise ItemError(f"resume upload {label} failed: the service expects parts beyond {size} bytes")
        return self._finish_multipart(
            file_id, path, label, size, status.part_size, status.remaining_parts, progress, None
        )

    def _finish_multipart(
        self,
        file_id: int,
        path: Path,
        label: str,
        size: int,
        part_size: int,
        parts: Iterable[int],
        progress: Progress | None,
        token: MultipartToken | None,
    ) -> int:
        try:
            self._send_parts(file_id, path, label, size, part_size, list(parts), progress)
            self._complete(file_id, label)
        except MultipartUploadInterrupted:
            raise
        except TransientError as exc:
            raise MultipartUploadInterrupted(
                f"{exc} [multipart upload {file_id} can be resumed]",
                multipart_file_id=file_id,
                status=exc.status,
                retry_after=exc.retry_after,
                resume=token.dumps() if token is not None else None,
            ) from exc
        except ItemError:
            self._abort_quietly(file_id)
            raise
        return file_id

    def _send_parts(
        self, file_id: int, path: Path, label: str, size: int, part_size: int, parts: list[int],
        progress: Progress | None,
    ) -> None:
        """Send `parts`, up to `parts_in_flight` at once (each from its own descriptor of the file):
        over a network a part's round trips and the service's work on it overlap the next one's
        bytes. The first part that fails for good stops the others from starting; its error is
        raised once those in flight have ended."""
        sent = dict.fromkeys(parts, 0)  # bytes of each part sent so far (a retry starts it over)
        lock = threading.Lock()

        def report(number: int, position: int) -> None:
            if progress is None:
                return
            with lock:
                sent[number] = position
                total = sum(sent.values())
            progress(total)

        def one(number: int) -> None:
            start = (number - 1) * part_size
            with path.open("rb") as file:
                self._send_part(file_id, file, number, start, min(part_size, size - start), label,
                                partial(report, number))

        if len(parts) <= 1 or self._parts_in_flight <= 1:
            for number in parts:
                one(number)
            return
        with ThreadPoolExecutor(min(self._parts_in_flight, len(parts)), thread_name_prefix="syncd-part") as pool:
            futures = [pool.submit(one, number) for number in parts]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                for future in futures:
                    future.cancel()  # those not started yet; the pool waits for the others
                error = failed[0].exception()
                assert error is not None
                raise error

    def _send_part(
        self,
        file_id: int,
        file: BinaryIO,
        number: int,
        start: int,
        length: int,
        label: str,
        progress: Progress | None,
    ) -> None:
        call = self._call("upload", f"part {number} of {label}", "/uploadFilePart")
        params = json.dumps({"file_id": file_id, "part_number": number})
        on_read = progress  # the bytes of this part sent so far

        def attempt() -> None:
            self._limiter.acquire()
            # A fresh slice per attempt: it seeks back to the part's first byte.
            body = FileSlice(file, start, length, name=label, on_read=on_read)
            data = self._exchange(
                call,
                "POST",
                files={"part": (f"part_{number}", cast(IO[bytes], body), "application/octet-stream")},
                data={"params": params},
            )
            expect_int(data, call)

        self._retry.run(attempt, what=call.describe())

    def _complete(self, file_id: int, label: str) -> None:
        call = self._call("complete", label, "/completeMultipartUpload")
        try:
            self._json(call, "POST", expect_int, json={"file_id": file_id})
        except ItemError:
            # An earlier, lost answer may have completed it already (then this one is refused).
            if self.multipart_status(file_id).status is not FileStatus.OK:
                raise

    def abort_multipart(self, file_id: int) -> None:
        """Abandon a multipart upload (an unknown one counts as abandoned)."""
        call = self._call("abort", f"multipart upload {file_id}", "/abortMultipartUpload")
        try:
            self._json(call, "POST", expect_int, json={"file_id": file_id})
        except ItemError as exc:
            if exc.status != 404:
                raise

    def _abort_quietly(self, file_id: int) -> None:
        # Best effort: the service expires abandoned uploads anyway.
        with contextlib.suppress(ItemError, TransientError):
            self.abort_multipart(file_id)

    def multipart_status(self, file_id: int) -> MultipartStatus:
        """Where the multipart upload `file_id` stands."""
        call = self._call("query", f"multipart upload {file_id}", "/getMultipartUploadFileStatus")
        return self._json(call, "GET", parse_multipart_status, params={"file_id": file_id})
