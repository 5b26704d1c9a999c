"""The steps actions are made of, for one folder: uploads, downloads, deletions, `after_upload`.

`Steps` holds what every step needs (the folder, its `FolderFS`, the remote, the state to read
the journal from, the clock) and the primitive steps; `syncd.sync.execute.Executor` builds the
actions out of them. Each step either took effect and recorded it (`Recorder`), or raised
before recording anything it did not do: a journal write always rests on a step that happened.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from syncd.config import FolderConfig
from syncd.core.model import BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.errors import ItemError, LocalChanged, RemoteChanged, TransientError
from syncd.errors import NotSettled as NotSettled  # raised here (`_current_local`); callers import it from here
from syncd.local.folderfs import FolderFS
from syncd.local.scan import sha256_of
from syncd.remote.base import Capability, Remote, RemoteFile
from syncd.state.db import State
from syncd.sync.hashing import HashingWriter
from syncd.sync.outcome import Recorder

log = structlog.get_logger("syncd.sync.execute")

#: How far past its listed size a download may run before it is cut off as not the listed file.
DOWNLOAD_SLACK = 64 * 1024


class Steps:
    """The primitive steps of one folder's actions against one remote."""

    def __init__(
        self,
        folder: FolderConfig,
        remote: Remote,
        state: State,
        *,
        settle: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.fs = FolderFS(folder.path)
        self.remote = remote
        self.state = state
        self.settle = settle
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone()

    def _local_exists(self, name: str, base: BaseEntry | None) -> bool:
        """A file for `name` exists now, in the spelling the journal knows, NFC or NFD."""
        spellings = {name, unicodedata.normalize("NFD", name)}
        if base is not None and base.local_name:
            spellings.add(base.local_name)
        return any(self.fs.current(spelling) is not None for spelling in spellings)

    def _current_local(self, name: str, expected: LocalFile) -> LocalFile:
        """The file (`name`: its on-disk spelling) as it is now, re-hashed only if it changed since
        the plan; must have settled."""
        path = self.fs.path(name)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            raise LocalChanged(name) from None
        # Settled is judged by the inode change time: every write (and rename) sets it, and unlike
        # the mtime it cannot be set into the future (archives, copies from a skewed clock), which
        # would keep such a file waiting for hours.
        age = self.clock() - st.st_ctime_ns / 1e9
        if age < self.settle:
            raise NotSettled(f"{name}: changed {age:.1f}s ago; waiting for it to settle",
                             retry_after=self.settle - age)
        if (st.st_size, st.st_mtime_ns) == (expected.size, expected.mtime_ns):
            return expected
        return replace(expected, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256_of(path))

    def _remote_unchanged(self, path: str, expected: RemoteFile | None) -> None:
        """On a remote that overwrites in place (and keeps no versions to tell writers apart),
        look at `path` right before overwriting or deleting it: another writer's version since
        the plan makes a fresh plan (a conflict, never a silent overwrite). SPEC, "Concurrent
        writers on BeRay and AgentRun": best effort, the window is the time of one call."""
        caps = self.remote.capabilities
        if Capability.OVERWRITE not in caps or Capability.LIST not in caps:
            return
        current = self.remote.stat(self.folder.place, path)
        if (current.version if current else None) != (expected.version if expected else None):
            raise RemoteChanged(f"{path}: changed on the remote since it was planned; planning it again")

    def _delete(self, path: str, version: str) -> None:
        """Delete one version of the remote file at `path` (already gone counts as deleted)."""
        self.remote.delete(self.folder.place, path, version)

    def _find_copy(self, path: str, local: LocalFile) -> RemoteFile | None:
        """The copy of `local` at `path` an earlier, ambiguous upload may have left, where the
        remote can tell (LIST and SHA256)."""
        if Capability.LIST not in self.remote.capabilities or Capability.SHA256 not in self.remote.capabilities:
            return None
        return self.remote.find_copy(self.folder.place, path, local.size, local.sha256)

    def _upload_file(self, rec: Recorder, name: str, as_name: str, local: LocalFile, attempts: int) -> RemoteFile:
        """Upload the local file `name` (its on-disk spelling) as `as_name`; returns the remote
        file it became.

        After an attempt that may have half-happened (`attempts` > 0), first
        look for the copy that attempt created: same name, same content.
        """
        if attempts:
            existing = self._find_copy(as_name, local)
            if existing is not None:
                return existing
        path = self.fs.path(name)
        token, save = rec.resume.token, rec.resume.save
        try:
            uploaded = self.remote.put(
                self.folder.place, as_name, path, size=local.size, sha256=local.sha256,
                resume=token, on_resume=save,
            )
        except ItemError:
            if not self.fs.matches(name, local):  # refused because the bytes changed under us
                raise TransientError(f"{name}: changed during upload; will upload again") from None
            raise
        if not self.fs.matches(name, local):
            if Capability.DELETE in self.remote.capabilities:
                self._delete(uploaded.path, uploaded.version)  # it may hold a mix of old and new bytes
            raise TransientError(f"{name}: changed during upload; will upload again")
        return uploaded

    def _after_upload(
        self, rec: Recorder, name: RelPath, local: LocalFile, remote: RemoteFile, floor: Floor | None
    ) -> None:
        """Upload mode's `after_upload`: keep, delete or move aside; never a deletion."""
        after = self.folder.after_upload
        spelling = local.on_disk
        if self.folder.mode != "upload" or after.action == "keep":
            rec.record(name, local, remote, floor=floor)
            return
        if not self.fs.matches(spelling, local):
            rec.record(name, local, remote, floor=floor)  # changed again: keep it, the next pass uploads it
            return
        # Recorded ahead of the removal: should the removal fail, the outcome committed with the
        # failure says "delivered" of a file that is still here, which the next pass sees as
        # unchanged; never a "deleted" file. (A worker commits it after the removal, with its
        # done: a crash in between leaves the row, whose retry finds the file gone and replans.)
        rec.record(name, local, remote, dropped=True, floor=floor)
        if after.action == "delete":
            self.fs.remove(spelling)
        else:
            assert after.dir is not None
            self.fs.move_into(spelling, after.dir)
        log.info("after_upload", folder=self.folder.name, name=name, done=str(after))

    def _fetch(self, remote: RemoteFile) -> tuple[Path, str]:
        """Download into `.syncd/tmp/`, fsynced and checked; returns (temp path, sha256)."""
        fd, temp = self.fs.new_temp()
        try:
            with os.fdopen(fd, "w+b") as out:
                hashing = HashingWriter(out)
                # Retries rewind it; a body past the listed size (plus a little) is cut off there.
                limit = remote.size + DOWNLOAD_SLACK
                written = self.remote.get(self.folder.place, remote, cast(BinaryIO, hashing), limit=limit)
                out.flush()
                os.fsync(out.fileno())
            if written != remote.size:
                raise TransientError(
                    f"{remote.path}: download of version {remote.version} gave {written} bytes,"
                    f" expected {remote.size}"
                )
            sha = hashing.sha256() or sha256_of(temp)
            if remote.sha256 is not None and sha != remote.sha256:
                raise TransientError(f"{remote.path}: downloaded bytes do not match the remote sha256")
            return temp, sha
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _install(
        self,
        rec: Recorder,
        name: RelPath,
        spelling: str,
        temp: Path,
        sha: str,
        remote: RemoteFile,
        expected: LocalFile | None,
    ) -> LocalFile:
        """Put a fetched download at `spelling` (the on-disk name of `name`); journal it. Where
        the remote reports the file's own modification time (MTIME), the file gets it."""
        try:
            if remote.mtime is not None:
                mtime_ns = int(remote.mtime.timestamp()) * 1_000_000_000 + remote.mtime.microsecond * 1_000
                os.utime(temp, ns=(mtime_ns, mtime_ns))
            st = self.fs.install(temp, spelling, expected, self.now())
        finally:
            temp.unlink(missing_ok=True)
        if expected is not None:
            days = self.folder.trash_days
            log.info("replaced", folder=self.folder.name, name=spelling,
                     kept=f"the previous content is in {self.fs.trash} for {days} days" if days
                     else f"the previous content is in {self.fs.trash}")
        written = local_file(name, spelling, st.st_size, st.st_mtime_ns, sha)
        rec.record(name, written, remote)
        return written

    def _download_into(
        self, rec: Recorder, name: RelPath, spelling: str, remote: RemoteFile, expected: LocalFile | None
    ) -> int:
        temp, sha = self._fetch(remote)
        return self._install(rec, name, spelling, temp, sha, remote, expected).size


def local_file(key: RelPath, spelling: str, size: int, mtime_ns: int, sha256: str) -> LocalFile:
    """A LocalFile keyed `key` (NFC) that is spelled `spelling` on disk."""
    return LocalFile(name=key, size=size, mtime_ns=mtime_ns, sha256=sha256,
                     spelling=spelling if spelling != key else None)
