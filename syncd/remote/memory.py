"""`MemoryRemote`: the `Remote` protocol kept in memory, with the capabilities you choose.

It behaves as a real service does wherever the planner and executor rely on it:

- versions are server-chosen (increasing numbers, as text), never reused (not even those of
  puts that were abandoned or deleted);
- several files may share a path (unless OVERWRITE), and `written_at` never goes backwards,
  so "newest by `written_at`, then `seq`" is the order of the puts;
- a resumable put under way is not listed until its last part arrives;
- a version already gone counts as deleted; reading one that is gone is an `ItemError` (404).

Every operation outside `capabilities` raises `Unsupported` (an `ItemError`: "not supported
by this remote") and changes nothing; without SHA256 the listing carries no sha256, without
MTIME no modification time.

For tests: `fail_next(method, error)` makes the next call of `method` raise (before it takes
effect, or with `after=True` once it has: an ambiguous failure); `calls` counts the calls;
`set_incomplete` hides a file as a service still merging it would. Thread-safe: one lock guards
the state; file bodies are read and written outside it.
"""

from __future__ import annotations

import contextlib
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
from syncd.core.words import counted
from syncd.errors import ItemError, RemoteError, TransientError, Unsupported
from syncd.remote.base import Capability, OnResume, Progress, RemoteFile
from syncd.remote.memoryfiles import CHUNK, Fault, StoredFile, is_safe_part, mtime_of, now, number_of, read_range

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
#: The methods `fail_next` can make fail; "part" is one part of a resumable put.
METHODS = frozenset({"list", "stat", "put", "part", "get", "find_copy", "delete", "sign_url", "move"})


class MemoryRemote:
    """A `Remote` in memory: one user's places, each a list of files.

    Puts above `multipart_threshold` bytes go in `part_size` parts when RESUMABLE.
    `clock` gives upload times (never taken backwards) and judges signed URLs' expiry."""

    def __init__(
        self,
        capabilities: Capability = BDD_LIKE,
        *,
        name: str = "memory",
        clock: Callable[[], datetime] = now,
        multipart_threshold: int = 1 * MiB,
        part_size: int = 256 * KiB,
    ) -> None:
        if part_size <= 0 or multipart_threshold < 0:
            raise ValueError("part_size must be positive and multipart_threshold not negative")
        self._capabilities = capabilities
        self.name = name
        self._clock = clock
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._lock = threading.RLock()
        self._files: dict[int, StoredFile] = {}
        self._ids = itertools.count(1)
        self._last_written_at = datetime.min.replace(tzinfo=UTC)
        self._faults: dict[str, deque[Fault]] = {}
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
            self._faults.setdefault(method, deque()).extend(Fault(error, after) for _ in range(times))

    def set_incomplete(self, version: str) -> None:
        """Hide a file as a service still merging its parts would: not listed, not readable."""
        with self._lock:
            self._file(version, "hide").complete = False

    def files(self, place: str | None = None) -> list[RemoteFile]:
        """What the remote holds, complete, whatever its capabilities (sha256 and mtime always
        given): for tests."""
        with self._lock:
            return [f.listed(ALL) for f in self._files.values() if f.complete and place in (None, f.place)]

    def content(self, version: str) -> bytes:
        """A version's bytes, whatever the capabilities: for tests."""
        with self._lock:
            return self._file(version, "read").data

    # -- the protocol ----------------------------------------------------------------------------

    def list(self, place: str) -> list[RemoteFile]:
        """Every complete file at the place, in put order (versions increasing). Needs LIST."""
        with self._call("list", f"list {place!r}", Capability.LIST), self._lock:
            return [f.listed(self._capabilities) for f in self._files.values() if f.place == place and f.complete]

    def stat(self, place: str, path: str) -> RemoteFile | None:
        """The newest complete file at `path`, or None. Needs LIST."""
        with self._call("stat", f"stat {path!r} in {place!r}", Capability.LIST), self._lock:
            found = [f for f in self._files.values() if (f.place, f.path) == (place, path) and f.complete]
            best = max(found, key=lambda f: (f.written_at, f.id)) if found else None
            return best.listed(self._capabilities) if best else None

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        """The newest file at `path` with exactly this size and sha256, if any. Needs LIST;
        without SHA256 nothing listed can prove its content (None)."""
        with self._call("find_copy", f"find a copy of {path!r} in {place!r}", Capability.LIST):
            if Capability.SHA256 not in self._capabilities:
                return None
            with self._lock:
                matches = [
                    f for f in self._files.values()
                    if (f.place, f.path, f.size, f.digest) == (place, path, size, sha256.lower()) and f.complete
                ]
                best = max(matches, key=lambda f: (f.written_at, f.id)) if matches else None
                return best.listed(self._capabilities) if best else None

    def put(
        self,
        place: str,
        path: str,
        source: Path,
        *,
        size: int,
        sha256: str | None = None,
        progress: Progress | None = None,
        resume: str | None = None,
        on_resume: OnResume | None = None,
    ) -> RemoteFile:
        """Send `size` bytes of `source` to `path`; return the new file (see the protocol)."""
        what = f"put {path!r} to {place!r}"
        self._check_name(path, what)
        if size < 0:
            raise ValueError(f"negative size {size}")
        with self._call("put", what):
            resumable = Capability.RESUMABLE in self._capabilities
            item: StoredFile | None = None
            if resumable and resume is not None:
                item = self._resume(resume, source, place, path, size, sha256, progress)
            if item is None and resumable and size > self._multipart_threshold:
                item = self._upload_parts(source, place, path, size, sha256, progress, on_resume)
            if item is None:
                data = read_range(source, 0, size, what, progress)
                item = self._store(place, path, size, sha256, data, mtime_of(source), what)
            with self._lock:
                return item.listed(self._capabilities)

    def get(
        self,
        place: str,
        file: RemoteFile,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
        limit: int | None = None,
    ) -> int:
        """Write the version's bytes into `out`; return how many. Past `limit` bytes: a
        `TransientError`, with only `limit` bytes at most written."""
        what = f"get {file.path!r} (version {file.version})"
        with self._call("get", what):
            with self._lock:
                item = self._file(file.version, "get")
                if not item.complete:
                    raise ItemError(f"{what} failed: the file is not complete", status=404)
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

    def delete(self, place: str, path: str, version: str) -> None:
        """Delete the version (one already gone counts as deleted). Needs DELETE."""
        with self._call("delete", f"delete {path!r} (version {version})", Capability.DELETE), self._lock:
            self._files.pop(number_of(version), None)

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        """Give the version another path, keeping its content. Needs RENAME; with OVERWRITE
        the files that held `new_path` are replaced."""
        what = f"move {file.path!r} to {new_path!r}"
        with self._call("move", what, Capability.RENAME):
            self._check_name(new_path, what)
            with self._lock:
                item = self._file(file.version, "move")
                if Capability.OVERWRITE in self._capabilities:
                    self._drop_name(item.place, new_path, keep=item.id)
                item.path = new_path
                return item.listed(self._capabilities)

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        """A `memory://` URL that `open_url` reads until it expires. Needs SIGN_URL."""
        what = f"sign a URL for {file.path!r}"
        with self._call("sign_url", what, Capability.SIGN_URL):
            with self._lock:
                file_id = self._file(file.version, "sign a URL for").id
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
            return self._file(str(file_id), "get").data

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        return False  # no event stream: polling finds remote changes

    def probe(self, place: str) -> str:
        """What `syncd check` sees: the place's file count where the remote lists."""
        if Capability.LIST in self._capabilities:
            return counted(len(self.list(place)), "file")
        with self._call("probe", "probe"):
            return "reachable"

    def close(self) -> None:
        """Nothing to release; the contents stay (a closed remote is not an emptied one)."""
        self._closed = True

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
        if len(parts) > 1 and Capability.TREE not in self._capabilities and all(map(is_safe_part, parts)):
            raise Unsupported(f"{what}: folders are not supported by this remote ({self.name} has no TREE)",
                              capability="TREE")
        for part in parts if Capability.TREE in self._capabilities else [filename]:
            reason = unsafe_reason(part)
            if reason is not None:
                raise ItemError(f"{what} refused: {reason}")

    def _sign(self, file_id: int, expires: int) -> str:
        return hashlib.sha256(f"{self._secret}/{file_id}/{expires}".encode()).hexdigest()[:32]

    def _file(self, version: str, action: str) -> StoredFile:
        item = self._files.get(number_of(version))
        if item is None:
            raise ItemError(f"{action} version {version} failed: no such file on {self.name}", status=404)
        return item

    def _new_file(
        self, place: str, path: str, size: int, sha256: str | None, mtime: datetime, complete: bool
    ) -> StoredFile:
        with self._lock:
            self._last_written_at = max(self._last_written_at, self._clock())
            item = StoredFile(next(self._ids), place, path, size, sha256, self._last_written_at, complete, mtime)
            self._files[item.id] = item
            return item

    def _store(
        self, place: str, path: str, size: int, sha256: str | None, data: bytes, mtime: datetime, what: str
    ) -> StoredFile:
        self._check_content(data, size, sha256, what)
        with self._lock:
            item = self._new_file(place, path, size, sha256, mtime, True)
            item.data, item.digest = data, hashlib.sha256(data).hexdigest()
            self._replaced(item)
            return item

    def _replaced(self, item: StoredFile) -> None:
        if Capability.OVERWRITE in self._capabilities:
            self._drop_name(item.place, item.path, keep=item.id)

    def _drop_name(self, place: str, path: str, *, keep: int) -> None:
        for other in [f for f in self._files.values() if f.place == place and f.path == path]:
            if other.id != keep and other.complete:
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

    # -- resumable uploads -------------------------------------------------------------------------

    def _token(self, item: StoredFile) -> str:
        fields = {"remote": self._secret, "file_id": item.id, "place": item.place,
                  "path": item.path, "size": item.size, "sha256": item.sha256}
        return json.dumps({"memory_upload": fields}, ensure_ascii=False, sort_keys=True)

    def _upload_parts(
        self,
        source: Path,
        place: str,
        path: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
        on_resume: OnResume | None,
    ) -> StoredFile:
        item = self._new_file(place, path, size, sha256, mtime_of(source), False)
        item.part_size = self._part_size
        if on_resume is not None:
            on_resume(self._token(item))  # before the first part: from here on it can resume
        return self._send_parts(item, source, progress)

    def _send_parts(self, item: StoredFile, path: Path, progress: Progress | None) -> StoredFile:
        what = f"put {item.path!r} (resumable put {item.id})"
        count = max(1, math.ceil(item.size / item.part_size))
        for number in range(1, count + 1):
            if number in item.parts:
                continue
            with self._call("part", f"part {number} of {what}"):
                start = (number - 1) * item.part_size
                data = read_range(path, start, min(item.part_size, item.size - start), what, progress, start)
                with self._lock:
                    if self._files.get(item.id) is not item or item.complete:
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
            item.data, item.digest, item.parts, item.complete = data, hashlib.sha256(data).hexdigest(), {}, True
            self._replaced(item)
        return item

    def _resume(
        self,
        token: str,
        source: Path,
        place: str,
        path: str,
        size: int,
        sha256: str | None,
        progress: Progress | None,
    ) -> StoredFile | None:
        """The put `token` describes, finished from the parts it has; None when it cannot go
        on (not this remote's, for other content, abandoned): then a fresh put."""
        try:
            raw = json.loads(token)
            fields = raw["memory_upload"]
            file_id = int(fields["file_id"])
            same = (fields["remote"], fields["place"], fields["path"], fields["size"], fields["sha256"]) == (
                self._secret, place, path, size, sha256
            )
        except (ValueError, TypeError, KeyError):
            return None
        with self._lock:
            item = self._files.get(file_id)
            if item is None or fields["remote"] != self._secret:
                return None
            if not same or sha256 is None:
                if not item.complete:
                    del self._files[file_id]  # a stale put of other content: abandon it
                return None
            if item.complete:
                return item  # finished after all: its answer was lost
        return self._send_parts(item, source, progress)
