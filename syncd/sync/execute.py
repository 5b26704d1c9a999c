"""Carrying out one planned action for one name: transfers, trash, journal.

An `Executor` belongs to one folder. `run(action)` either finishes the action
and writes the journal row that says both sides are in sync, or raises:
`TransientError` (try again later), `ItemError` (this item cannot be done),
`FatalError` (the remote refuses us), `LocalChanged` (the folder changed since
the plan; plan this name again). It never leaves a partial file under a real
name and never replaces local content that changed since the plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from syncd.config import FolderConfig
from syncd.core.model import FLOOR_NONE, Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.core.names import normalize
from syncd.core.plan import is_sha256
from syncd.errors import ItemError, TransientError
from syncd.local.folderfs import FolderFS, LocalChanged, conflict_name, race_copy_names
from syncd.local.scan import sha256_of
from syncd.remote.base import FileStatus, OnResume, Remote, RemoteFile
from syncd.state.db import JournalRow, State, write_journal

log = structlog.get_logger("syncd.sync.execute")

#: How far past its listed size a download may run before it is cut off as not the listed file.
DOWNLOAD_SLACK = 64 * 1024


def to_row(entry: BaseEntry) -> JournalRow:
    floor = entry.remote_floor
    return JournalRow(
        name=entry.name, local_size=entry.local_size, local_mtime_ns=entry.local_mtime_ns,
        local_sha256=entry.local_sha256, remote_id=entry.remote_id, remote_size=entry.remote_size,
        remote_hashcode=entry.remote_hashcode,
        remote_upload_at=entry.remote_upload_at.isoformat() if entry.remote_upload_at else None,
        dropped=entry.dropped, local_name=entry.local_name, remote_name=entry.remote_name,
        remote_floor_at=floor.upload_at.isoformat() if floor else None,
        remote_floor_id=floor.id if floor else None,
    )


def to_base(row: JournalRow) -> BaseEntry:
    floor = (
        Floor(datetime.fromisoformat(row.remote_floor_at), row.remote_floor_id)
        if row.remote_floor_at is not None and row.remote_floor_id is not None
        else None
    )
    return BaseEntry(
        name=row.name, local_size=row.local_size, local_mtime_ns=row.local_mtime_ns,
        local_sha256=row.local_sha256, remote_id=row.remote_id, remote_size=row.remote_size,
        remote_hashcode=row.remote_hashcode,
        remote_upload_at=datetime.fromisoformat(row.remote_upload_at) if row.remote_upload_at else None,
        dropped=row.dropped, local_name=row.local_name, remote_name=row.remote_name, remote_floor=floor,
    )


def _same_base(row: JournalRow | None, base: BaseEntry | None) -> bool:
    """True when the journal row now is the one a plan was made against."""
    if row is None or base is None:
        return row is None and base is None
    return to_base(row).sides == base.sides


class NotSettled(TransientError):
    """The file changed too recently to upload; try again once it is quiet."""


@dataclass(frozen=True, slots=True)
class Done:
    """What a finished action moved."""

    bytes: int = 0
    unchanged: bool = False  # a COMPARE that found equal content


class HashingWriter:
    """A download's temp file, hashed as it is written, so it need not be read back.

    The client writes front to back and starts a retry over at 0 (seek, truncate): that resets
    the hash. Any other seek leaves the hash unknown (`sha256()` None: read the file back)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._digest = hashlib.sha256()
        self._known = True

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        if self._known:
            self._digest.update(memoryview(data)[:written])
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if position == 0:
            self._digest, self._known = hashlib.sha256(), True
        else:
            self._known = False
        return position

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        if size is not None and size != self._file.tell():
            self._known = False
        return self._file.truncate(size)

    def seekable(self) -> bool:
        return True

    def sha256(self) -> str | None:
        return self._digest.hexdigest() if self._known else None


class JournalWrites:
    """Journal writes held back from one action, in order, to commit with the worker's `done`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._writes: list[tuple[str, JournalRow | None]] = []

    def add(self, name: str, row: JournalRow | None) -> None:
        self._writes.append((name, row))

    def apply(self, conn: sqlite3.Connection) -> None:
        """Inside the caller's transaction."""
        for name, row in self._writes:
            write_journal(conn, self.folder, name, row)
        self._writes.clear()

    def __bool__(self) -> bool:
        return bool(self._writes)


class Executor:
    """Runs actions for one folder against one remote."""

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
        self._deferred = threading.local()
        self._resume = threading.local()
        self.remote = remote
        self.state = state
        self.settle = settle
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone()

    # -- journal ------------------------------------------------------------

    def record(
        self,
        name: str,
        local: LocalFile | None,
        remote: RemoteFile | None,
        *,
        dropped: bool = False,
        floor: Floor | None = None,
    ) -> None:
        """Journal `name` as in sync: `local` (its spelling kept) and `remote`; `floor` after an
        upload (the version it replaced, or FLOOR_NONE when it replaced nothing)."""
        if local is None and remote is None:
            self._write(name, None)
            return
        self._write(name, to_row(BaseEntry.synced(name, local, remote, dropped=dropped, floor=floor)))

    def _write(self, name: str, row: JournalRow | None) -> None:
        writes: JournalWrites | None = getattr(self._deferred, "writes", None)
        if writes is not None:
            writes.add(name, row)
        elif row is None:
            self.state.delete_journal(self.folder.name, name)
        else:
            self.state.put_journal(self.folder.name, row)

    @contextlib.contextmanager
    def deferred_journal(self) -> Iterator[JournalWrites]:
        """Hold this thread's journal writes back, for the caller to commit in its own transaction
        (the worker's `done`, saving one per action). If the body raises, what it recorded is
        committed at once, on its own: an action that half-happened keeps what did happen."""
        writes = JournalWrites(self.folder.name)
        self._deferred.writes = writes
        try:
            yield writes
        except BaseException:
            self._deferred.writes = None
            if writes:
                with self.state.transaction() as conn:
                    writes.apply(conn)
            raise
        finally:
            self._deferred.writes = None

    @contextlib.contextmanager
    def resumable(self, token: str | None, save: OnResume) -> Iterator[None]:
        """Let this thread's upload go on from `token` (what its queue row kept of an earlier,
        interrupted try) and hand `save` each new token at once (SPEC, "Resumable uploads")."""
        self._resume.slot = (token, save)
        try:
            yield
        finally:
            self._resume.slot = None

    # -- dispatch -----------------------------------------------------------

    def run(self, action: Action, *, attempts: int = 0) -> Done:
        """Carry out `action`; `attempts` > 0 means an earlier try may have half-happened.

        The journal row must still be the one the plan saw: a plan made while a worker
        was syncing the same name (the daemon plans while workers run) is stale, and
        acting on it could upload twice. Then LocalChanged asks for a fresh plan.
        """
        self.fs.require_marker()
        if not _same_base(self.state.journal_row(self.folder.name, action.name), action.base):
            raise LocalChanged(action.name)
        done = self._run(action, attempts)
        for file_id in action.duplicates:  # their content stays in a kept version
            self.remote.delete(file_id)
        if action.duplicates:
            log.info("duplicates removed", folder=self.folder.name, name=action.name, ids=list(action.duplicates))
        return done

    def _run(self, action: Action, attempts: int) -> Done:
        kind = action.kind
        if kind is ActionKind.UPLOAD:
            assert action.local is not None
            return self._upload_action(action, attempts)
        if kind is ActionKind.DOWNLOAD:
            assert action.remote is not None
            spelling = action.local.on_disk if action.local else action.remote.filename
            return Done(self._download_into(action.name, spelling, action.remote, action.local))
        if kind is ActionKind.DELETE_LOCAL:
            assert action.local is not None
            self.fs.to_trash(action.local.on_disk, action.local, self.now())
            self.record(action.name, None, None)
            return Done()
        if kind is ActionKind.DELETE_REMOTE:
            if self._local_exists(action):
                raise LocalChanged(action.name)
            for file_id in (*((action.remote.id,) if action.remote else ()), *action.older_ids):
                self.remote.delete(file_id)
            self.record(action.name, None, None)
            return Done()
        if kind is ActionKind.CONFLICT:
            return self._conflict(action, attempts)
        if kind is ActionKind.COMPARE:
            return self._compare(action, attempts)
        if kind is ActionKind.RACE:
            return self._race(action, attempts)
        if kind is ActionKind.RECORD:
            self._drop_superseded(action)
            if self._redelivered(action):
                return Done(unchanged=True)
            self._write(action.name, to_row(action.recorded()))
            return Done(unchanged=True)
        if kind is ActionKind.FORGET:
            self.record(action.name, None, None)
            return Done(unchanged=True)
        raise ItemError(action.reason or f"{action.name}: refused")

    def _local_exists(self, action: Action) -> bool:
        """A file for the name exists now, in the spelling the journal knows, NFC or NFD."""
        spellings = {action.name, unicodedata.normalize("NFD", action.name)}
        if action.base is not None and action.base.local_name:
            spellings.add(action.base.local_name)
        return any(self.fs.current(spelling) is not None for spelling in spellings)

    def _redelivered(self, action: Action) -> bool:
        """A drop whose bytes the remote already holds (identical bytes are one file): nothing to
        send, but it is a delivery like any other, so `after_upload` takes it out of the outbox
        once it has settled. True when that was done."""
        local, remote = action.local, action.remote
        dropin = self.folder.mode == "upload" and self.folder.after_upload.action != "keep"
        if not dropin or local is None or remote is None:
            return False
        local = self._current_local(local.on_disk, local)
        if local.sha256 != remote.hashcode.lower():
            raise LocalChanged(action.name)
        self._after_upload(action.name, local, remote, None)
        return True

    def _drop_superseded(self, action: Action) -> None:
        """Finish an update sequence cut short: our new version is up, the old one still is.

        When both sides now agree on content that differs from the journal's
        remote version, that version is the one the interrupted upload meant to
        supersede; delete it (already gone counts as deleted).
        """
        base, local, remote = action.base, action.local, action.remote
        if base is None or base.remote_id is None or local is None or remote is None:
            return
        if base.remote_id != remote.id and base.remote_hashcode != remote.hashcode and local.sha256 == remote.hashcode:
            self.remote.delete(base.remote_id)

    # -- uploads ------------------------------------------------------------

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

    def _upload_file(self, name: str, as_name: str, local: LocalFile, attempts: int) -> RemoteFile:
        """Upload the local file `name` (its on-disk spelling) as `as_name`; returns the remote
        file it became.

        After an attempt that may have half-happened (`attempts` > 0), first
        look for the copy that attempt created: same name, same content.
        """
        if attempts:
            existing = self.remote.find_copy(self.folder.chat_id, as_name, local.size, local.sha256)
            if existing is not None:
                return existing
        path = self.fs.path(name)
        token, save = getattr(self._resume, "slot", None) or (None, None)
        try:
            file_id = self.remote.upload(
                path, chat_id=self.folder.chat_id, filename=as_name, size=local.size, sha256=local.sha256,
                resume=token, on_resume=save,
            )
        except ItemError:
            if not self.fs.matches(name, local):  # refused because the bytes changed under us
                raise TransientError(f"{name}: changed during upload; will upload again") from None
            raise
        if not self.fs.matches(name, local):
            self.remote.delete(file_id)  # the upload may hold a mix of old and new bytes
            raise TransientError(f"{name}: changed during upload; will upload again")
        return RemoteFile(id=file_id, filename=as_name, size=local.size, hashcode=local.sha256,
                          upload_at=datetime.now(UTC), status=FileStatus.OK)

    def _upload_action(self, action: Action, attempts: int) -> Done:
        assert action.local is not None
        spelling = action.local.on_disk
        local = self._current_local(spelling, action.local)
        # A new version keeps the remote's spelling of the name; a new file takes the local one.
        as_name = action.remote.filename if action.remote is not None else spelling
        remote = self._upload_file(spelling, as_name, local, attempts)
        if action.supersedes is not None and action.supersedes != remote.id:
            self.remote.delete(action.supersedes)
        floor = Floor.of(action.remote) if action.remote is not None else FLOOR_NONE
        self._after_upload(action.name, local, remote, floor)
        return Done(local.size)

    def _after_upload(self, name: str, local: LocalFile, remote: RemoteFile, floor: Floor | None) -> None:
        """Upload mode's `after_upload`: keep, delete or move aside; never a deletion."""
        after = self.folder.after_upload
        spelling = local.on_disk
        if self.folder.mode != "upload" or after.action == "keep":
            self.record(name, local, remote, floor=floor)
            return
        if not self.fs.matches(spelling, local):
            self.record(name, local, remote, floor=floor)  # changed again: keep it, the next pass uploads it
            return
        # Journal first: a crash between the two lines leaves a recorded file that is still here,
        # which the next pass sees as unchanged; never a "deleted" file.
        self.record(name, local, remote, dropped=True, floor=floor)
        if after.action == "delete":
            os.unlink(self.fs.path(spelling))
        else:
            assert after.dir is not None
            self.fs.move_into(spelling, after.dir)
        log.info("after_upload", folder=self.folder.name, name=name, done=str(after))

    # -- downloads ----------------------------------------------------------

    def _fetch(self, remote: RemoteFile) -> tuple[Path, str]:
        """Download into `.syncd/tmp/`, fsynced and checked; returns (temp path, sha256)."""
        fd, temp = self.fs.new_temp()
        try:
            with os.fdopen(fd, "w+b") as out:
                hashing = HashingWriter(out)
                # Retries rewind it; a body past the listed size (plus a little) is cut off there.
                limit = remote.size + DOWNLOAD_SLACK
                written = self.remote.download(remote.id, cast(BinaryIO, hashing), limit=limit)
                out.flush()
                os.fsync(out.fileno())
            if written != remote.size:
                raise TransientError(
                    f"{remote.filename}: download of file {remote.id} gave {written} bytes, expected {remote.size}"
                )
            sha = hashing.sha256() or sha256_of(temp)
            if is_sha256(remote.hashcode) and sha != remote.hashcode.lower():
                raise TransientError(f"{remote.filename}: downloaded bytes do not match the remote sha256")
            return temp, sha
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _install(
        self, name: str, spelling: str, temp: Path, sha: str, remote: RemoteFile, expected: LocalFile | None
    ) -> LocalFile:
        """Put a fetched download at `spelling` (the on-disk name of `name`); journal it."""
        try:
            st = self.fs.install(temp, spelling, expected, self.now())
        finally:
            temp.unlink(missing_ok=True)
        written = _local_file(name, spelling, st.st_size, st.st_mtime_ns, sha)
        self.record(name, written, remote)
        return written

    def _download_into(self, name: str, spelling: str, remote: RemoteFile, expected: LocalFile | None) -> int:
        temp, sha = self._fetch(remote)
        return self._install(name, spelling, temp, sha, remote, expected).size

    # -- conflicts ----------------------------------------------------------

    def _conflict(self, action: Action, attempts: int, fetched: tuple[Path, str] | None = None) -> Done:
        assert action.local is not None and action.remote is not None
        winner = action.winner or "both"
        spelling = action.local.on_disk
        if winner == "local":
            if fetched:
                fetched[0].unlink(missing_ok=True)
            return self._upload_action(action, attempts)
        if winner == "remote":
            temp, sha = fetched or self._fetch(action.remote)
            return Done(self._install(action.name, spelling, temp, sha, action.remote, action.local).size)
        # keep-both: the local version moves to its conflicted-copy name and is uploaded under it;
        # the remote version takes the name. Nothing is lost at any step.
        temp, sha = fetched or self._fetch(action.remote)
        try:
            copy = conflict_name(spelling, self.now())
            self.fs.rename_aside(spelling, copy, action.local)
            moved = _local_file(normalize(copy), copy, action.local.size, action.local.mtime_ns, action.local.sha256)
            size = self._install(action.name, spelling, temp, sha, action.remote, None).size
        finally:
            temp.unlink(missing_ok=True)
        uploaded = self._upload_file(copy, copy, moved, attempts)
        self.record(moved.name, moved, uploaded, floor=FLOOR_NONE)
        log.info("conflict", folder=self.folder.name, name=action.name, copy=copy)
        return Done(size + moved.size)

    def _compare(self, action: Action, attempts: int) -> Done:
        assert action.local is not None and action.remote is not None
        temp, sha = self._fetch(action.remote)
        if sha == action.local.sha256:
            temp.unlink(missing_ok=True)
            self.record(action.name, action.local, action.remote)
            return Done(unchanged=True)
        return self._conflict(action, attempts, fetched=(temp, sha))

    # -- concurrent writers -------------------------------------------------

    def _race(self, action: Action, attempts: int) -> Done:
        """Several writers changed the name at once (model, RACE): each older racing version
        becomes a conflicted copy, named by its own upload time so that every machine names it
        alike, on both sides; then it is deleted under the name, which `remote` keeps."""
        assert action.remote is not None
        local = action.local
        moved = 0
        spelling = action.local.on_disk if action.local else action.remote.filename
        # Named from the remote's spelling, which every machine sees alike.
        copies = race_copy_names(action.remote.filename, action.racing)
        for version, copy in zip(action.racing, copies, strict=True):
            copy_key = normalize(copy)
            if local is not None and local.sha256 == version.hashcode.lower():
                # Our own version lost the race: it moves aside under the copy name (an earlier
                # attempt may have linked it there already).
                if self.fs.current(copy) is None:
                    self.fs.rename_aside(local.on_disk, copy, local)
                    kept = _local_file(copy_key, copy, local.size, local.mtime_ns, local.sha256)
                else:
                    kept = self._race_copy_here(copy_key, copy, version)
                    self.fs.to_trash(local.on_disk, local, self.now())
                local = None
            else:
                kept = self._race_copy_here(copy_key, copy, version)
            existing = self.remote.find_copy(self.folder.chat_id, copy, kept.size, kept.sha256)
            uploaded = existing or self._upload_file(kept.on_disk, copy, kept, attempts)
            self.record(copy_key, kept, uploaded, floor=None if existing else FLOOR_NONE)
            self.remote.delete(version.id)
            moved += kept.size
            log.info("concurrent write", folder=self.folder.name, name=action.name, copy=copy, version=version.id)
        current = action.remote
        if local is None:
            return Done(moved + self._download_into(action.name, spelling, current, None))
        if is_sha256(current.hashcode) and local.sha256 == current.hashcode.lower():
            self.record(action.name, local, current)
            return Done(moved)
        # Changed here too, to something else again: an ordinary keep-both conflict with `current`.
        conflict = replace(action, kind=ActionKind.CONFLICT, local=local, winner="both", racing=())
        return Done(moved + self._conflict(conflict, attempts).bytes)

    def _race_copy_here(self, key: str, copy: str, version: RemoteFile) -> LocalFile:
        """The local file holding a racing `version` under its copy name: already there (an
        earlier attempt, or another machine's upload downloaded by a pass), or downloaded now."""
        existing = self.fs.current(copy)
        if existing is not None:
            sha = sha256_of(self.fs.path(copy))
            if sha == version.hashcode.lower():
                return _local_file(key, copy, existing[0], existing[1], sha)
            raise LocalChanged(copy)  # another file took the name: plan again
        temp, sha = self._fetch(version)
        try:
            st = self.fs.install(temp, copy, None, self.now())
        finally:
            temp.unlink(missing_ok=True)
        return _local_file(key, copy, st.st_size, st.st_mtime_ns, sha)


def _local_file(key: str, spelling: str, size: int, mtime_ns: int, sha256: str) -> LocalFile:
    """A LocalFile keyed `key` (NFC) that is spelled `spelling` on disk."""
    return LocalFile(name=key, size=size, mtime_ns=mtime_ns, sha256=sha256,
                     spelling=spelling if spelling != key else None)
