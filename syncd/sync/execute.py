"""Carrying out one planned action for one name: transfers, trash, conflicts.

An `Executor` belongs to one folder. `execute(action)` returns an `Outcome`
(`sync/outcome.py`): the journal writes the action asks for, in the order its
steps happened, and how it ended: done, or the error that stopped it:
`TransientError` (try again later), `ItemError` (this item cannot be done),
`FatalError` (the remote refuses us), a `LocalError` (`LocalChanged`: the
folder changed since the plan, plan this name again; `FolderUnavailable`: its
disk went away; `NotSettled`: written too recently). The executor never
writes the journal itself: its caller applies the outcome (a worker, together
with its queue row's done).

Invariants:

* It never leaves a partial file under a real name (downloads land in
  `.syncd/tmp/`, fsynced and checked, then renamed) and never replaces local
  content that changed since the plan (`FolderFS` checks before every write).
* It acts only on the journal row the plan saw: a stale plan raises
  `LocalChanged` before any step.
* A journal write is recorded only once the transfer or rename it rests on
  took effect, so an outcome never claims a sync that did not happen,
  whatever stopped the action.
* After an attempt that may have half-happened (`attempts` > 0) an upload
  first looks for the copy that attempt created (SPEC, "No duplicates").
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from syncd.config import FolderConfig
from syncd.core.model import FLOOR_NONE, Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.core.names import normalize
from syncd.core.plan import is_sha256
from syncd.errors import ItemError, LocalChanged, TransientError
from syncd.errors import NotSettled as NotSettled  # raised here (`_current_local`); callers import it from here
from syncd.local.folderfs import FolderFS, conflict_name, race_copy_names
from syncd.local.scan import sha256_of
from syncd.remote.base import FileStatus, Remote, RemoteFile
from syncd.state.db import State
from syncd.sync.hashing import HashingWriter
from syncd.sync.outcome import NO_RESUME, Outcome, Recorder, Resume, same_base, to_row

log = structlog.get_logger("syncd.sync.execute")

#: How far past its listed size a download may run before it is cut off as not the listed file.
DOWNLOAD_SLACK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Done:
    """What a finished action moved."""

    bytes: int = 0
    unchanged: bool = False  # a COMPARE that found equal content


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
        self.remote = remote
        self.state = state
        self.settle = settle
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone()

    # -- dispatch -----------------------------------------------------------

    def execute(self, action: Action, *, attempts: int = 0, resume: Resume = NO_RESUME) -> Outcome:
        """Carry out `action`; `attempts` > 0 means an earlier try may have half-happened.
        `resume`: where an interrupted upload of this very work stopped, and where to keep
        new tokens. Never raises: whatever stopped the action is the outcome's `error`.

        The journal row must still be the one the plan saw: a plan made while a worker
        was syncing the same name (the daemon plans while workers run) is stale, and
        acting on it could upload twice. Then LocalChanged asks for a fresh plan.
        """
        rec = Recorder(self.folder.name, resume)
        try:
            done = self._checked_run(rec, action, attempts)
        except BaseException as exc:  # noqa: BLE001 - handed back with what happened before it
            return rec.outcome(error=exc)
        return rec.outcome(bytes=done.bytes, unchanged=done.unchanged)

    def run(self, action: Action, *, attempts: int = 0) -> Done:
        """`execute`, for a caller without a queue row: what the action recorded is committed at
        once, on its own (also when it failed midway), then its error, if any, is raised."""
        outcome = self.execute(action, attempts=attempts)
        outcome.commit(self.state)
        if outcome.error is not None:
            raise outcome.error
        return Done(outcome.bytes, outcome.unchanged)

    def _checked_run(self, rec: Recorder, action: Action, attempts: int) -> Done:
        self.fs.require_marker()
        if action.kind is ActionKind.RENAME:
            done = self._rename(rec, action, attempts)  # checks the journal rows of both names
        elif not same_base(self.state.journal_row(self.folder.name, action.name), action.base):
            raise LocalChanged(action.name)
        else:
            done = self._run(rec, action, attempts)
        for file_id in action.duplicates:  # their content stays in a kept version
            self.remote.delete(file_id)
        if action.duplicates:
            log.info("duplicates removed", folder=self.folder.name, name=action.name, ids=list(action.duplicates))
        return done

    def _run(self, rec: Recorder, action: Action, attempts: int) -> Done:
        kind = action.kind
        if kind is ActionKind.UPLOAD:
            assert action.local is not None
            return self._upload_action(rec, action, attempts)
        if kind is ActionKind.DOWNLOAD:
            assert action.remote is not None
            spelling = action.local.on_disk if action.local else action.remote.filename
            return Done(self._download_into(rec, action.name, spelling, action.remote, action.local))
        if kind is ActionKind.DELETE_LOCAL:
            assert action.local is not None
            self.fs.to_trash(action.local.on_disk, action.local, self.now())
            rec.record(action.name, None, None)
            return Done()
        if kind is ActionKind.DELETE_REMOTE:
            if self._local_exists(action.name, action.base):
                raise LocalChanged(action.name)
            for file_id in (*((action.remote.id,) if action.remote else ()), *action.older_ids):
                self.remote.delete(file_id)
            rec.record(action.name, None, None)
            return Done()
        if kind is ActionKind.CONFLICT:
            return self._conflict(rec, action, attempts)
        if kind is ActionKind.COMPARE:
            return self._compare(rec, action, attempts)
        if kind is ActionKind.RACE:
            return self._race(rec, action, attempts)
        if kind is ActionKind.RECORD:
            self._drop_superseded(action)
            if self._redelivered(rec, action):
                return Done(unchanged=True)
            rec.write(action.name, to_row(action.recorded()))
            return Done(unchanged=True)
        if kind is ActionKind.FORGET:
            rec.record(action.name, None, None)
            return Done(unchanged=True)
        raise ItemError(action.reason or f"{action.name}: refused")

    def _local_exists(self, name: str, base: BaseEntry | None) -> bool:
        """A file for `name` exists now, in the spelling the journal knows, NFC or NFD."""
        spellings = {name, unicodedata.normalize("NFD", name)}
        if base is not None and base.local_name:
            spellings.add(base.local_name)
        return any(self.fs.current(spelling) is not None for spelling in spellings)

    def _redelivered(self, rec: Recorder, action: Action) -> bool:
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
        self._after_upload(rec, action.name, local, remote, None)
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

    def _upload_file(self, rec: Recorder, name: str, as_name: str, local: LocalFile, attempts: int) -> RemoteFile:
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
        token, save = rec.resume.token, rec.resume.save
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

    def _upload_action(self, rec: Recorder, action: Action, attempts: int) -> Done:
        assert action.local is not None
        spelling = action.local.on_disk
        local = self._current_local(spelling, action.local)
        # A new version keeps the remote's spelling of the name; a new file takes the local one.
        as_name = action.remote.filename if action.remote is not None else spelling
        remote = self._upload_file(rec, spelling, as_name, local, attempts)
        if action.supersedes is not None and action.supersedes != remote.id:
            self.remote.delete(action.supersedes)
        floor = Floor.of(action.remote) if action.remote is not None else FLOOR_NONE
        self._after_upload(rec, action.name, local, remote, floor)
        return Done(local.size)

    def _rename(self, rec: Recorder, action: Action, attempts: int) -> Done:
        """A local rename (model, RENAME): upload the new name, then delete the old name's remote
        file, whatever `delete` says; a file already gone counts as deleted.

        The old name's journal row must still be the one the plan saw, and the new name must
        have none, except the one an earlier attempt of this very rename recorded after its
        upload (it stopped before the old file was deleted): then only the deletion is left.
        """
        old, local = action.renamed_from, action.local
        assert old is not None and local is not None
        folder = self.folder.name
        new_row = self.state.journal_row(folder, action.name)
        resumed = (
            attempts > 0
            and new_row is not None
            and new_row.remote_id is not None
            and (new_row.local_size, new_row.local_sha256) == (local.size, local.sha256)
        )
        if new_row is not None and not resumed:
            raise LocalChanged(action.name)
        old_row = self.state.journal_row(folder, old.name)
        if not same_base(old_row, old) and not (resumed and old_row is None):
            raise LocalChanged(old.name)
        if old_row is not None and self._local_exists(old.name, old):
            raise LocalChanged(old.name)  # the old file is back: no longer a rename
        size = 0
        if not resumed:
            current = self._current_local(local.on_disk, local)
            remote = self._upload_file(rec, local.on_disk, local.on_disk, current, attempts)
            self._after_upload(rec, action.name, current, remote, FLOOR_NONE)
            size = current.size
        for file_id in (*((old.remote_id,) if old.remote_id is not None else ()), *action.older_ids):
            self.remote.delete(file_id)
        rec.record(old.name, None, None)
        log.info("renamed", folder=folder, name=action.name, renamed_from=old.name)
        return Done(size)

    def _after_upload(
        self, rec: Recorder, name: str, local: LocalFile, remote: RemoteFile, floor: Floor | None
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
        self,
        rec: Recorder,
        name: str,
        spelling: str,
        temp: Path,
        sha: str,
        remote: RemoteFile,
        expected: LocalFile | None,
    ) -> LocalFile:
        """Put a fetched download at `spelling` (the on-disk name of `name`); journal it."""
        try:
            st = self.fs.install(temp, spelling, expected, self.now())
        finally:
            temp.unlink(missing_ok=True)
        written = _local_file(name, spelling, st.st_size, st.st_mtime_ns, sha)
        rec.record(name, written, remote)
        return written

    def _download_into(
        self, rec: Recorder, name: str, spelling: str, remote: RemoteFile, expected: LocalFile | None
    ) -> int:
        temp, sha = self._fetch(remote)
        return self._install(rec, name, spelling, temp, sha, remote, expected).size

    # -- conflicts ----------------------------------------------------------

    def _conflict(self, rec: Recorder, action: Action, attempts: int, fetched: tuple[Path, str] | None = None) -> Done:
        assert action.local is not None and action.remote is not None
        winner = action.winner or "both"
        spelling = action.local.on_disk
        if winner == "local":
            if fetched:
                fetched[0].unlink(missing_ok=True)
            return self._upload_action(rec, action, attempts)
        if winner == "remote":
            temp, sha = fetched or self._fetch(action.remote)
            return Done(self._install(rec, action.name, spelling, temp, sha, action.remote, action.local).size)
        # keep-both: the local version moves to its conflicted-copy name and is uploaded under it;
        # the remote version takes the name. Nothing is lost at any step.
        temp, sha = fetched or self._fetch(action.remote)
        try:
            copy = conflict_name(spelling, self.now())
            self.fs.rename_aside(spelling, copy, action.local)
            moved = _local_file(normalize(copy), copy, action.local.size, action.local.mtime_ns, action.local.sha256)
            size = self._install(rec, action.name, spelling, temp, sha, action.remote, None).size
        finally:
            temp.unlink(missing_ok=True)
        uploaded = self._upload_file(rec, copy, copy, moved, attempts)
        rec.record(moved.name, moved, uploaded, floor=FLOOR_NONE)
        log.info("conflict", folder=self.folder.name, name=action.name, copy=copy)
        return Done(size + moved.size)

    def _compare(self, rec: Recorder, action: Action, attempts: int) -> Done:
        assert action.local is not None and action.remote is not None
        temp, sha = self._fetch(action.remote)
        if sha == action.local.sha256:
            temp.unlink(missing_ok=True)
            rec.record(action.name, action.local, action.remote)
            return Done(unchanged=True)
        return self._conflict(rec, action, attempts, fetched=(temp, sha))

    # -- concurrent writers -------------------------------------------------

    def _race(self, rec: Recorder, action: Action, attempts: int) -> Done:
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
            uploaded = existing or self._upload_file(rec, kept.on_disk, copy, kept, attempts)
            rec.record(copy_key, kept, uploaded, floor=None if existing else FLOOR_NONE)
            self.remote.delete(version.id)
            moved += kept.size
            log.info("concurrent write", folder=self.folder.name, name=action.name, copy=copy, version=version.id)
        current = action.remote
        if local is None:
            return Done(moved + self._download_into(rec, action.name, spelling, current, None))
        if is_sha256(current.hashcode) and local.sha256 == current.hashcode.lower():
            rec.record(action.name, local, current)
            return Done(moved)
        # Changed here too, to something else again: an ordinary keep-both conflict with `current`.
        conflict = replace(action, kind=ActionKind.CONFLICT, local=local, winner="both", racing=())
        return Done(moved + self._conflict(rec, conflict, attempts).bytes)

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
