"""`BeRayRemote`: a directory of a BeRay task's work folder read as a `Remote` (protocol: beray.md).

A folder's place is a task and a directory of its work folder; a file's path is relative to that
directory. The work folder keeps one file per path, written by a create-or-overwrite PUT, with a
size and (usually) a modification time, but no hash: a version is ``size:mtime``. What it can
do: LIST (one directory per call, several at once), TREE, MTIME, OVERWRITE. It cannot delete,
rename or make an empty folder: a local deletion stays local (the core reports it once), and a
rename uploads the new path, the old one staying remotely.
"""

from __future__ import annotations

import hashlib
import posixpath
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import structlog

from syncd.core.words import counted
from syncd.errors import ItemError, TransientError, Unsupported
from syncd.remote.base import EPOCH, OnResume, Progress, RemoteFile, refuse_unsafe
from syncd.remote.beray.client import BeRayClient
from syncd.remote.beray.events import follow
from syncd.remote.beray.kind import CAPABILITIES
from syncd.remote.beray.listing import Item, items
from syncd.remote.beray.settings import Place

log = structlog.get_logger("syncd.remote.beray")

#: One directory's items as listed (a string for each item dropped, saying why).
Level = list[Item | str]
#: Directories listed at once while walking a tree.
LISTINGS_IN_FLIGHT = 4


def version_of(size: int, mtime: datetime | None) -> str:
    stamp = int(mtime.timestamp() * 1_000_000) if mtime is not None else 0
    return f"{size}:{stamp}"


class BeRayRemote:
    """The tasks of one BeRay service."""

    capabilities = CAPABILITIES

    def __init__(self, client: BeRayClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._measured: dict[tuple[int, str, datetime | None], tuple[int, str]] = {}

    def __repr__(self) -> str:
        return f"BeRayRemote({self.client!r})"

    # -- reading -----------------------------------------------------------------------------------

    def list(self, place: str) -> list[RemoteFile]:
        where = Place.loads(place)
        files: list[RemoteFile] = []
        try:
            level = self._level(where, where.root)
        except ItemError as exc:
            if exc.status == 404:
                return []  # not made yet: the first upload makes it
            raise
        with ThreadPoolExecutor(LISTINGS_IN_FLIGHT, thread_name_prefix="syncd-beray-list") as pool:
            pending: list[Level] = [level]
            while pending:
                dirs: list[str] = []
                for found in pending.pop():
                    if isinstance(found, str):
                        log.warning("listing item dropped", task=where.task_id, reason=found)
                    elif found.is_dir:
                        if found.children is not None:
                            pending.append(list(items(found.children, found.path)))
                        else:
                            dirs.append(found.path)
                    else:
                        files.append(self._file(where, found))
                pending.extend(pool.map(lambda d: self._level(where, d), dirs))
        return files

    def stat(self, place: str, path: str) -> RemoteFile | None:
        where = Place.loads(place)
        target = where.path_of(path)
        try:
            level = self._level(where, posixpath.dirname(target))
        except ItemError as exc:
            if exc.status == 404:
                return None
            raise
        for found in level:
            if isinstance(found, Item) and not found.is_dir and found.path == target:
                return self._file(where, found)
        return None

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        return None  # no hash: nothing listed can prove it holds these bytes

    def get(self, place: str, file: RemoteFile, out: BinaryIO, *, progress: Progress | None = None,
            limit: int | None = None) -> int:
        current = self.stat(place, file.path)
        if current is None or current.version != file.version:
            now = f"it holds version {current.version!r}" if current is not None else "the file is gone"
            raise ItemError(f"download {file.path!r} failed: version {file.version!r} is not in the task's folder "
                            f"({now})", status=404)
        where = Place.loads(place)
        return self.client.read(where.task_id, where.path_of(file.path), out, limit=limit, progress=progress)

    # -- writing -----------------------------------------------------------------------------------

    def put(self, place: str, path: str, source: Path, *, size: int, sha256: str | None = None,
            progress: Progress | None = None, resume: str | None = None, on_resume: OnResume | None = None,
            ) -> RemoteFile:
        refuse_unsafe("upload", path)
        where = Place.loads(place)
        self.client.write(where.task_id, where.path_of(path), source, size, progress)
        written = self.stat(place, path)  # the answer carries no time
        if written is None:
            raise TransientError(f"upload {path!r}: the task's folder does not show the file it wrote")
        return written

    def delete(self, place: str, path: str, version: str) -> None:
        raise Unsupported(f"delete {path!r}: not supported by this remote (a task's files cannot be deleted)",
                          capability="DELETE")

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        raise Unsupported(f"move {file.path!r}: not supported by this remote (a task's files cannot be renamed)",
                          capability="RENAME")

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        raise Unsupported(f"sign a URL for {file.path!r}: not supported by this remote", capability="SIGN_URL")

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        """Follow the task's event stream until `stop`: every event, and every (re)connection,
        is a hint to list the task now (`events.py`)."""
        where = Place.loads(place)

        def lines() -> Iterator[str]:
            with self.client.stream(where.task_id) as stream:
                yield from stream

        follow(lines, on_hint, stop, what=f"task {where.task_id}")
        return True

    def probe(self, place: str) -> str:
        where = Place.loads(place)
        self.client.me()
        self.client.task(where.task_id)
        return f"task {where.task_id} answers, {counted(len(self.list(place)), 'file')} under {where.root or '.'}"

    def close(self) -> None:
        self.client.close()

    # -- helpers -----------------------------------------------------------------------------------

    def _level(self, where: Place, directory: str) -> Level:
        return list(items(self.client.tree(where.task_id, directory), directory))

    def _file(self, where: Place, found: Item) -> RemoteFile:
        rel = found.path[len(where.root) + 1:] if where.root else found.path
        if found.size is None:  # the listing says nothing of it: its bytes must
            size, digest = self._measure(where, found)
            return RemoteFile(path=rel, version=f"sha256:{digest}", size=size, mtime=found.mtime,
                              written_at=found.mtime or EPOCH)
        return RemoteFile(path=rel, version=version_of(found.size, found.mtime), size=found.size,
                          mtime=found.mtime, written_at=found.mtime or EPOCH)

    def _measure(self, where: Place, found: Item) -> tuple[int, str]:
        """The size and sha256 of a file the listing gives no size for, read from the file itself;
        kept for this process while its listed modification time stays the same (without one,
        read again at each listing: the only way to see it change)."""
        key = (where.task_id, found.path, found.mtime)
        with self._lock:
            known = self._measured.get(key) if found.mtime is not None else None
        if known is not None:
            return known
        sink = _Measure()
        self.client.read(where.task_id, found.path, sink, limit=None, progress=None)  # type: ignore[arg-type]
        measured = (sink.size, sink.digest.hexdigest())
        if found.mtime is not None:
            with self._lock:
                self._measured[key] = measured
        return measured


class _Measure:
    """A write-only sink that counts and hashes what a download writes into it."""

    def __init__(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.digest.update(data)
        return len(data)

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self.size, self.digest = 0, hashlib.sha256()  # a retry starts over
        return 0

    def truncate(self, size: int | None = None) -> int:
        return 0
