"""`MemoryRemote`: the `Remote` protocol kept in memory, with the capabilities you choose.

It behaves as the BDD file service does wherever the planner and executor rely on it:

- ids are server-chosen, increase, and are never reused (not even those of uploads that were
  abandoned or deleted);
- several `ok` files may share a name (unless OVERWRITE), and `upload_at` never goes backwards,
  so "newest by `upload_at`, then `id`" is the order of the uploads;
- a resumable upload under way is listed with status `uploading` until its last part arrives;
- a file already gone counts as deleted; an unknown id is an `ItemError` (status 404).

Every operation outside `capabilities` raises `Unsupported` (an `ItemError`: "not supported
by this remote") and changes nothing; without SHA256 the listing's hashcodes are empty.

For tests: `fail_next(method, error)` makes the next call of `method` raise (before it takes
effect, or with `after=True` once it has: an ambiguous failure); `calls` counts the calls;
`set_status` puts a file in another state. Thread-safe: one lock guards the state; file bodies
are read and written outside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from syncd.core.names import unsafe_reason
from syncd.errors import ItemError, RemoteError, TransientError, Unsupported
from syncd.remote.base import Capability, FileStatus, OnResume, Progress, RemoteFile

KiB = 1024
MiB = 1024 * KiB
#: What the BDD file service can do (`BddRemote.capabilities`): the default.
BDD_LIKE = (
    Capability.LIST
    | Capability.DELETE
    | Capability.SHA256
    | Capability.SERVER_KEYS
    | Capability.RESUMABLE
    | Capability.SIGN_URL
)
#: Every flag at once.
ALL = ~Capability(0)
#: What today's `Remote` protocol cannot do without: it names files by server ids.
REQUIRED = Capability.SERVER_KEYS
#: The methods `fail_next` can make fail; "part" is one part of a resumable upload.
METHODS = frozenset(
    {"list_chat", "upload", "part", "download", "find_copy", "delete", "download_url", "rename", "modified_at"}
)
#: How much of a body moves per step (a progress report each).
CHUNK = 64 * KiB


def _now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class _File:
    id: int
    chat_id: str
    filename: str
    size: int
    sha256: str | None  # given by the uploader: checked against the content when complete
    upload_at: datetime
    status: FileStatus
    mtime: datetime
    data: bytes = b""
    digest: str = ""  # sha256 of `data`, once complete
    parts: dict[int, bytes] = dataclasses.field(default_factory=dict)  # a resumable upload's, so far
    part_size: int = 0

    def listed(self, with_hash: bool) -> RemoteFile:
        return RemoteFile(
            id=self.id, filename=self.filename, size=self.size, hashcode=self.digest if with_hash else "",
            upload_at=self.upload_at, status=self.status,
        )


@dataclasses.dataclass
class _Fault:
    error: RemoteError
    after: bool


class MemoryRemote:
    """A `Remote` in memory: one user's chats, each a list of files.

    `capabilities` must include SERVER_KEYS (today's protocol names files by server ids).
    Uploads above `multipart_threshold` bytes go in `part_size` parts when RESUMABLE.
    `clock` gives upload times (never taken backwards) and judges signed URLs' expiry."""

    def __init__(
        self,
        capabilities: Capability = BDD_LIKE,
        *,
        name: str = "memory",
        clock: Callable[[], datetime] = _now,
        multipart_threshold: int = 1 * MiB,
        part_size: int = 256 * KiB,
    ) -> None:
        if REQUIRED not in capabilities:
            raise ValueError(
                "a MemoryRemote needs SERVER_KEYS: the Remote protocol names files by the ids the remote chooses"
            )
        if part_size <= 0 or multipart_threshold < 0:
            raise ValueError("part_size must be positive and multipart_threshold not negative")
        self._capabilities = capabilities
        self.name = name
        self._clock = clock
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._lock = threading.RLock()
        self._files: dict[int, _File] = {}
        self._ids = itertools.count(1)
        self._last_upload_at = datetime.min.replace(tzinfo=UTC)
        self._faults: dict[str, deque[_Fault]] = {}
        self._secret = uuid.uuid4().hex  # tells this remote's tokens and URLs from any other's
        self._closed = False
        #: How often each method was called (faults included).
        self.calls: Counter[str] = Counter()
        #: (file id, part number) of every part a resumable upload stored, in order.
        self.parts_sent: list[tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"MemoryRemote({self.name!r}, {self._capabilities!r})"

    @property
    def capabilities(self) -> Capability:
        return self._capabilities

    # -- for tests -------------------------------------------------------------------------------

    def fail_next(self, method: str, error: RemoteError, *, after: bool = False, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise `error`: before the call does anything,
        or (`after`) once it has taken effect, as a failure whose answer was lost would."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {sorted(METHODS)}")
        with self._lock:
            self._faults.setdefault(method, deque()).extend(_Fault(error, after) for _ in range(times))

    def set_status(self, file_id: int, status: FileStatus) -> None:
        """Put a file in another state (a service still merging it, or one that failed it)."""
        with self._lock:
            self._file(file_id, "set status of").status = status

    def files(self, chat_id: str | None = None) -> list[RemoteFile]:
        """What the remote holds, whatever its capabilities (hashcodes always given): for tests."""
        with self._lock:
            return [f.listed(True) for f in self._files.values() if chat_id is None or f.chat_id == chat_id]

    def content(self, file_id: int) -> bytes:
        """A file's bytes, whatever the capabilities: for tests."""
        with self._lock:
            return self._file(file_id, "read").data

    # -- the protocol ----------------------------------------------------------------------------

    def list_chat(self, chat_id: str) -> list[RemoteFile]:
        """Every file of the chat, in upload order (ids increasing). Needs LIST."""
        with self._call("list_chat", f"list chat {chat_id!r}", Capability.LIST), self._lock:
            hashes = Capability.SHA256 in self._capabilities
            return [f.listed(hashes) for f in self._files.values() if f.chat_id == chat_id]

    def find_copy(self, chat_id: str, filename: str, size: int, sha256: str) -> RemoteFile | None:
        """The newest `ok` file of the chat with exactly this name, size and sha256, if any.
        Needs LIST; without SHA256 nothing listed can prove its content (None)."""
        with self._call("find_copy", f"find a copy of {filename!r} in chat {chat_id!r}", Capability.LIST):
            with self._lock:
                hashes = Capability.SHA256 in self._capabilities
                matches = [
                    item
                    for item in (f.listed(hashes) for f in self._files.values() if f.chat_id == chat_id)
                    if item.filename == filename
                    and item.size == size
                    and item.hashcode.lower() == sha256.lower()
                    and item.status is FileStatus.OK
                ]
            return max(matches, key=lambda item: (item.upload_at, item.id)) if matches else None

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
        """Upload `size` bytes of `path` as `filename`; return the new file id (see the protocol)."""
        what = f"upload {filename!r} to chat {chat_id!r}"
        self._check_name(filename, what)
        if size < 0:
            raise ValueError(f"negative size {size}")
        with self._call("upload", what):
            resumable = Capability.RESUMABLE in self._capabilities
            if resumable and resume is not None:
                resumed = self._resume(resume, path, chat_id, filename, size, sha256, progress)
                if resumed is not None:
                    return resumed
            if resumable and size > self._multipart_threshold:
                return self._upload_parts(path, chat_id, filename, size, sha256, progress, on_resume)
            data = self._read(path, 0, size, what, progress)
            return self._store(chat_id, filename, size, sha256, data, self._mtime_of(path), what)

    def download(
        self, file_id: int, out: BinaryIO, *, progress: Progress | None = None, limit: int | None = None
    ) -> int:
        """Write the file's bytes into `out`; return how many. Past `limit` bytes: a
        `TransientError`, with only `limit` bytes at most written."""
        what = f"download file {file_id}"
        with self._call("download", what):
            with self._lock:
                item = self._file(file_id, "download")
                if item.status is not FileStatus.OK:
                    raise ItemError(f"{what} failed: the file is {item.status.value}, not ok", status=404)
                data = item.data
            written = 0
            for start in range(0, len(data), CHUNK):
                chunk = data[start : start + CHUNK]
                if limit is not None and written + len(chunk) > limit:
                    raise TransientError(f"{what} failed: the answer is longer than the {limit} bytes expected")
                out.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written)
            return written

    def delete(self, file_id: int) -> None:
        """Delete the file (a file already gone counts as deleted). Needs DELETE."""
        with self._call("delete", f"delete file {file_id}", Capability.DELETE), self._lock:
            self._files.pop(file_id, None)

    def download_url(self, file_id: int, expires_in: int = 600) -> str:
        """A `memory://` URL that `open_url` reads until it expires. Needs SIGN_URL."""
        what = f"get download url of file {file_id}"
        with self._call("download_url", what, Capability.SIGN_URL):
            with self._lock:
                self._file(file_id, "get download url of")
            expires = int((self._clock() + timedelta(seconds=expires_in)).timestamp())
            return f"memory://{self._secret}/{file_id}?expires={expires}&sig={self._sign(file_id, expires)}"

    def open_url(self, url: str) -> bytes:
        """What a signed URL of this remote fetches, without credentials (the HTTP GET of a real one)."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        try:
            file_id, expires, sig = int(parts.path.strip("/")), int(query["expires"][0]), query["sig"][0]
        except (KeyError, ValueError, IndexError):
            raise ItemError(f"not a download URL of this remote: {url!r}", status=404) from None
        if parts.netloc != self._secret or sig != self._sign(file_id, expires):
            raise ItemError("download URL refused: bad signature", status=403)
        if self._clock().timestamp() > expires:
            raise ItemError("download URL refused: expired", status=403)
        with self._lock:
            return self._file(file_id, "download").data

    def close(self) -> None:
        """Nothing to release; the contents stay (a closed remote is not an emptied one)."""
        self._closed = True

    # -- beyond the protocol: what later kinds will need -------------------------------------------

    def rename(self, file_id: int, filename: str) -> None:
        """Give the file another name, keeping its id and content. Needs RENAME; with OVERWRITE
        the files that held `filename` are replaced."""
        what = f"rename file {file_id} to {filename!r}"
        with self._call("rename", what, Capability.RENAME):
            self._check_name(filename, what)
            with self._lock:
                item = self._file(file_id, "rename")
                if Capability.OVERWRITE in self._capabilities:
                    self._drop_name(item.chat_id, filename, keep=file_id)
                item.filename = filename

    def modified_at(self, file_id: int) -> datetime:
        """The file's own modification time (the uploaded file's). Needs MTIME."""
        what = f"get the modification time of file {file_id}"
        with self._call("modified_at", what, Capability.MTIME), self._lock:
            return self._file(file_id, "stat").mtime

    # -- inside ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, method: str, what: str, needs: Capability | None = None) -> Iterator[None]:
        """Count the call, refuse it outside the capabilities, and inject its fault if one is due."""
        with self._lock:
            self.calls[method] += 1
            queued = self._faults.get(method)
            fault = queued.popleft() if queued else None
        if needs is not None and needs not in self._capabilities:
            assert needs.name is not None
            raise Unsupported(
                f"{what}: not supported by this remote ({self.name} has no {needs.name})", capability=needs.name
            )
        if fault is not None and not fault.after:
            raise fault.error
        yield
        if fault is not None:
            raise fault.error

    def _check_name(self, filename: str, what: str) -> None:
        parts = filename.split("/")
        if len(parts) > 1 and Capability.TREE not in self._capabilities and all(map(_safe, parts)):
            raise Unsupported(f"{what}: folders are not supported by this remote ({self.name} has no TREE)",
                              capability="TREE")
        for part in parts if Capability.TREE in self._capabilities else [filename]:
            reason = unsafe_reason(part)
            if reason is not None:
                raise ItemError(f"{what} refused: {reason}")

    def _sign(self, file_id: int, expires: int) -> str:
        return hashlib.sha256(f"{self._secret}/{file_id}/{expires}".encode()).hexdigest()[:32]

    def _file(self, file_id: int, action: str) -> _File:
        item = self._files.get(file_id)
        if item is None:
            raise ItemError(f"{action} file {file_id} failed: no such file on {self.name}", status=404)
        return item

    def _new_file(
        self, chat_id: str, filename: str, size: int, sha256: str | None, mtime: datetime, status: FileStatus
    ) -> _File:
        with self._lock:
            self._last_upload_at = max(self._last_upload_at, self._clock())
            item = _File(next(self._ids), chat_id, filename, size, sha256, self._last_upload_at, status, mtime)
            self._files[item.id] = item
            return item

    def _store(
        self, chat_id: str, filename: str, size: int, sha256: str | None, data: bytes, mtime: datetime, what: str
    ) -> int:
        self._check_content(data, size, sha256, what)
        with self._lock:
            item = self._new_file(chat_id, filename, size, sha256, mtime, FileStatus.OK)
            item.data, item.digest = data, hashlib.sha256(data).hexdigest()
            self._replaced(item)
            return item.id

    def _replaced(self, item: _File) -> None:
        if Capability.OVERWRITE in self._capabilities:
            self._drop_name(item.chat_id, item.filename, keep=item.id)

    def _drop_name(self, chat_id: str, filename: str, *, keep: int) -> None:
        for other in [f for f in self._files.values() if f.chat_id == chat_id and f.filename == filename]:
            if other.id != keep and other.status is FileStatus.OK:
                del self._files[other.id]

    def _check_content(self, data: bytes, size: int, sha256: str | None, what: str) -> None:
        if len(data) != size:
            raise ItemError(f"{what} failed: {len(data)} bytes received, {size} announced")
        if (
            sha256 is not None
            and Capability.SHA256 in self._capabilities
            and hashlib.sha256(data).hexdigest() != sha256.lower()
        ):
            raise ItemError(f"{what} failed: hashcode does not match the content")

    @staticmethod
    def _mtime_of(path: Path) -> datetime:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)

    @staticmethod
    def _read(path: Path, start: int, length: int, what: str, progress: Progress | None, base: int = 0) -> bytes:
        """`length` bytes of `path` from `start`, reported to `progress` as `base` + bytes so far."""
        chunks: list[bytes] = []
        got = 0
        try:
            with path.open("rb") as file:
                file.seek(start)
                while got < length:
                    chunk = file.read(min(CHUNK, length - got))
                    if not chunk:
                        raise TransientError(
                            f"{what} failed: the local file is shorter than expected ({got} of {length} bytes)"
                        )
                    chunks.append(chunk)
                    got += len(chunk)
                    if progress is not None:
                        progress(base + got)
        except OSError as exc:
            raise TransientError(f"{what} failed: cannot read {path.name!r}: {exc.strerror}") from None
        return b"".join(chunks)

    # -- resumable uploads -------------------------------------------------------------------------

    def _token(self, item: _File) -> str:
        fields = {"remote": self._secret, "file_id": item.id, "chat_id": item.chat_id,
                  "filename": item.filename, "size": item.size, "sha256": item.sha256}
        return json.dumps({"memory_upload": fields}, ensure_ascii=False, sort_keys=True)

    def _upload_parts(
        self,
        path: Path,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
        on_resume: OnResume | None,
    ) -> int:
        item = self._new_file(chat_id, filename, size, sha256, self._mtime_of(path), FileStatus.UPLOADING)
        item.part_size = self._part_size
        if on_resume is not None:
            on_resume(self._token(item))  # before the first part: from here on it can resume
        return self._send_parts(item, path, progress)

    def _send_parts(self, item: _File, path: Path, progress: Progress | None) -> int:
        what = f"upload {item.filename!r} (resumable upload {item.id})"
        count = max(1, math.ceil(item.size / item.part_size))
        for number in range(1, count + 1):
            if number in item.parts:
                continue
            with self._call("part", f"part {number} of {what}"):
                start = (number - 1) * item.part_size
                data = self._read(path, start, min(item.part_size, item.size - start), what, progress, start)
                with self._lock:
                    if self._files.get(item.id) is not item or item.status is not FileStatus.UPLOADING:
                        raise ItemError(f"{what} failed: the upload was abandoned", status=404)
                    item.parts[number] = data
                    self.parts_sent.append((item.id, number))
        with self._lock:
            data = b"".join(item.parts[n] for n in range(1, count + 1))
            try:
                self._check_content(data, item.size, item.sha256, what)
            except ItemError:
                self._files.pop(item.id, None)
                raise
            item.data, item.digest, item.parts, item.status = data, hashlib.sha256(data).hexdigest(), {}, FileStatus.OK
            self._replaced(item)
        return item.id

    def _resume(
        self,
        token: str,
        path: Path,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
    ) -> int | None:
        """The id of the upload `token` describes, finished from the parts it has; None when it
        cannot go on (not this remote's, for other content, abandoned): then a fresh upload."""
        try:
            raw = json.loads(token)
            fields = raw["memory_upload"]
            file_id = int(fields["file_id"])
            same = (fields["remote"], fields["chat_id"], fields["filename"], fields["size"], fields["sha256"]) == (
                self._secret, chat_id, filename, size, sha256
            )
        except (ValueError, TypeError, KeyError):
            return None
        with self._lock:
            item = self._files.get(file_id)
            if item is None or fields["remote"] != self._secret:
                return None
            if not same or sha256 is None:
                if item.status is FileStatus.UPLOADING:
                    del self._files[file_id]  # a stale upload of other content: abandon it
                return None
            if item.status is FileStatus.OK:
                return item.id  # finished after all: its answer was lost
            if item.status is not FileStatus.UPLOADING:
                return None
        return self._send_parts(item, path, progress)


def _safe(part: str) -> bool:
    return unsafe_reason(part) is None
