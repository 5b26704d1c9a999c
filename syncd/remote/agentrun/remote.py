"""`AgentRunRemote`: a directory of an AgentRun sandbox read as a `Remote` (protocol: agentrun.md).

A folder's place is a sandbox and an absolute directory in it (`settings.Place`); a file's path
is relative to that directory. The sandbox keeps one file per path, overwritten in place, with a
size and a modification time but no hash, so a file's version is its ``size:mtime`` (any write
changes it). What it can do: LIST (one listing with depth; directories past the depth are
listed again), TREE, DELETE (``remove``; a path already gone counts as deleted), RENAME
(``move``, which keeps the mtime), MTIME (downloads take the sandbox's mtime), OVERWRITE. No
SHA256: equal content is proven by comparing bytes (the core does), never assumed.

A sandbox that is gone (expired, deleted) answers 404 ``SandboxNotFound`` to everything: that is
`PlaceGone`, and the folder pauses; nothing is deleted on either side.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import structlog

from syncd.core.words import counted
from syncd.errors import ItemError, TransientError, Unsupported
from syncd.remote.agentrun.client import AgentRunClient
from syncd.remote.agentrun.kindcaps import CAPABILITIES
from syncd.remote.agentrun.listing import Entry, entries, one_entry
from syncd.remote.agentrun.settings import Place
from syncd.remote.base import EPOCH, OnResume, Progress, RemoteFile, refuse_unsafe

log = structlog.get_logger("syncd.remote.agentrun")

#: How deep one listing reaches; a directory below it is listed again on its own.
DEPTH = 8


def version_of(size: int, mtime: datetime | None) -> str:
    """The version of a file as the sandbox shows it: its size and modification time."""
    stamp = int(mtime.timestamp() * 1_000_000) if mtime is not None else 0
    return f"{size}:{stamp}"


class AgentRunRemote:
    """The sandboxes of one data endpoint."""

    capabilities = CAPABILITIES

    def __init__(self, client: AgentRunClient) -> None:
        self.client = client
        self._made: set[tuple[str, str]] = set()  # (sandbox, directory) known to exist
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AgentRunRemote({self.client!r})"

    # -- reading -----------------------------------------------------------------------------------

    def list(self, place: str) -> list[RemoteFile]:
        where = Place.loads(place)
        files: list[RemoteFile] = []
        pending = [where.root]
        while pending:
            directory = pending.pop()
            try:
                payload = self.client.list(where.sandbox_id, directory, DEPTH)
            except ItemError as exc:
                if exc.status == 404 and directory == where.root:
                    return []  # not made yet: the first upload makes it
                raise
            for found in entries(payload, directory):
                if isinstance(found, str):
                    log.warning("listing entry dropped", sandbox=where.sandbox_id, reason=found)
                elif found.is_dir:
                    if not found.listed:
                        pending.append(found.path)
                elif found.is_dir is False:
                    files.append(self._file(where, found))
        return files

    def stat(self, place: str, path: str) -> RemoteFile | None:
        where = Place.loads(place)
        target = self._absolute(where, path)
        try:
            found = one_entry(self.client.stat(where.sandbox_id, target), target)
        except ItemError as exc:
            if exc.status == 404:
                return None
            raise
        if found is None or found.is_dir is not False:
            return None
        return self._file(where, found)

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        return None  # no hash: nothing listed can prove it holds these bytes

    def get(
        self,
        place: str,
        file: RemoteFile,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
        limit: int | None = None,
    ) -> int:
        # The sandbox keeps one file per path: the version asked for must still be the one there
        # (else the bytes would be recorded as a version they are not).
        current = self.stat(place, file.path)
        if current is None or current.version != file.version:
            now = f"it holds version {current.version!r}" if current is not None else "the file is gone"
            raise ItemError(f"download {file.path!r} failed: version {file.version!r} is not in the sandbox ({now})",
                            status=404)
        where = Place.loads(place)
        try:
            return self.client.download(where.sandbox_id, self._absolute(where, file.path), out,
                                        limit=limit, progress=progress)
        except ItemError as exc:
            if exc.status == 404:
                raise ItemError(f"download {file.path!r} failed: it is gone from the sandbox", status=404) from None
            raise

    # -- writing -----------------------------------------------------------------------------------

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
        refuse_unsafe("upload", path)
        where = Place.loads(place)
        target = self._absolute(where, path)
        self._parent(where, target)
        self.client.upload(where.sandbox_id, target, source, size, progress)
        return self._written(where, path, target, "upload")

    def delete(self, place: str, path: str, version: str) -> None:
        """Remove the file at `path` if it is still `version`: the sandbox keeps one file per path,
        so another version there (a newer write, ours or anyone's) means this one is gone already."""
        current = self.stat(place, path)
        if current is None or current.version != version:
            return
        where = Place.loads(place)
        try:
            self.client.remove(where.sandbox_id, self._absolute(where, path))
        except ItemError as exc:
            if exc.status != 404:
                raise  # a path already gone counts as deleted

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        refuse_unsafe("move to", new_path)
        where = Place.loads(place)
        target = self._absolute(where, new_path)
        self._parent(where, target)
        self.client.move(where.sandbox_id, self._absolute(where, file.path), target)
        return self._written(where, new_path, target, "move")

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        raise Unsupported(f"sign a URL for {file.path!r}: not supported by this remote (a sandbox has no "
                          "signed links)", capability="SIGN_URL")

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        return False  # no event stream: polling finds remote changes

    def probe(self, place: str) -> str:
        where = Place.loads(place)
        self.client.sandbox(where.sandbox_id)
        return f"sandbox {where.sandbox_id} answers, {counted(len(self.list(place)), 'file')} under {where.root}"

    def close(self) -> None:
        self.client.close()

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _absolute(where: Place, path: str) -> str:
        return posixpath.join(where.root, path)

    def _file(self, where: Place, found: Entry) -> RemoteFile:
        size = found.size
        if size is None:  # the listing left it out: ask the file itself
            again = one_entry(self.client.stat(where.sandbox_id, found.path), found.path)
            size = again.size if again is not None else None
            if size is None:
                raise TransientError(f"list {found.path!r}: the sandbox gives no size for it")
        rel = found.path[len(where.root.rstrip("/")) + 1:]
        return RemoteFile(path=rel, version=version_of(size, found.mtime), size=size, mtime=found.mtime,
                          written_at=found.mtime or EPOCH)

    def _parent(self, where: Place, target: str) -> None:
        """Make the directory `target` goes into, once per process (mkdir with parents)."""
        parent = posixpath.dirname(target)
        key = (where.sandbox_id, parent)
        with self._lock:
            if key in self._made:
                return
        self.client.mkdir(where.sandbox_id, parent)
        with self._lock:
            self._made.add(key)

    def _written(self, where: Place, path: str, target: str, what: str) -> RemoteFile:
        """The file at `target` as the sandbox now has it (the write's answer carries no time)."""
        found = one_entry(self.client.stat(where.sandbox_id, target), target)
        if found is None or found.size is None:
            raise TransientError(f"{what} {path!r}: the sandbox does not show the file it wrote")
        return RemoteFile(path=path, version=version_of(found.size, found.mtime), size=found.size,
                          mtime=found.mtime, written_at=found.mtime or EPOCH)
