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
* An upload's journal write (the new version) comes before the deletion of
  the version it replaces: a deletion that fails still leaves the new version
  recorded (the outcome is committed with the failure). A process killed in
  between loses the uncommitted write; the next pass then finds the new
  version holding the local content and records it (no transfer).
* A rename goes to the remote as a `move` where it can (RENAME), else as an
  upload of the new path and a deletion of the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from syncd.core.model import FLOOR_NONE, Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.errors import ItemError, LocalChanged
from syncd.errors import NotSettled as NotSettled  # raised here (`_current_local`); callers import it from here
from syncd.local.copynames import conflict_name, race_copy_names
from syncd.local.scan import sha256_of
from syncd.remote.base import Capability, RemoteFile
from syncd.sync.outcome import NO_RESUME, Outcome, Recorder, Resume, same_base, to_row
from syncd.sync.steps import Steps, local_file

log = structlog.get_logger("syncd.sync.execute")



@dataclass(frozen=True, slots=True)
class Done:
    """What a finished action moved."""

    bytes: int = 0
    unchanged: bool = False  # a COMPARE that found equal content


class Executor(Steps):
    """Runs actions for one folder against one remote."""

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
        for version in action.duplicates:  # their content stays in a kept version
            self._delete(action.remote_path, version)
        if action.duplicates:
            log.info("duplicates removed", folder=self.folder.name, name=action.name, versions=list(action.duplicates))
        return done

    def _run(self, rec: Recorder, action: Action, attempts: int) -> Done:
        kind = action.kind
        if kind is ActionKind.UPLOAD:
            assert action.local is not None
            return self._upload_action(rec, action, attempts)
        if kind is ActionKind.DOWNLOAD:
            assert action.remote is not None
            spelling = action.local.on_disk if action.local else action.remote.path
            return Done(self._download_into(rec, RelPath(action.name), spelling, action.remote, action.local))
        if kind is ActionKind.DELETE_LOCAL:
            assert action.local is not None
            self.fs.to_trash(action.local.on_disk, action.local, self.now())
            rec.record(RelPath(action.name), None, None)
            return Done()
        if kind is ActionKind.DELETE_REMOTE:
            if self._local_exists(action.name, action.base):
                raise LocalChanged(action.name)
            if not attempts and action.remote is not None:
                self._remote_unchanged(action.remote_path, action.remote)
            for version in (*((action.remote.version,) if action.remote else ()), *action.older):
                self._delete(action.remote_path, version)
            rec.record(RelPath(action.name), None, None)
            return Done()
        if kind is ActionKind.CONFLICT:
            return self._conflict(rec, action, attempts)
        if kind is ActionKind.COMPARE:
            return self._compare(rec, action, attempts)
        if kind is ActionKind.RACE:
            return self._race(rec, action, attempts)
        if kind is ActionKind.RECORD:
            if action.supersedes is not None:  # left by an upload of ours whose deletion failed
                self._delete(action.remote_path, action.supersedes)
            self._drop_superseded(action)
            if self._redelivered(rec, action):
                return Done(unchanged=True)
            rec.write(action.name, to_row(action.recorded()))
            return Done(unchanged=True)
        if kind is ActionKind.FORGET:
            rec.record(RelPath(action.name), None, None)
            return Done(unchanged=True)
        raise ItemError(action.reason or f"{action.name}: refused")

    def _redelivered(self, rec: Recorder, action: Action) -> bool:
        """A drop whose bytes the remote already holds (identical bytes are one file): nothing to
        send, but it is a delivery like any other, so `after_upload` takes it out of the outbox
        once it has settled. True when that was done."""
        local, remote = action.local, action.remote
        dropin = self.folder.mode == "upload" and self.folder.after_upload.action != "keep"
        if not dropin or local is None or remote is None:
            return False
        local = self._current_local(local.on_disk, local)
        if local.sha256 != remote.sha256:
            raise LocalChanged(action.name)
        self._after_upload(rec, local.name, local, remote, None)
        return True

    def _drop_superseded(self, action: Action) -> None:
        """Finish an update sequence cut short: our new version is up, the old one still is.

        When both sides now agree on content that differs from the journal's
        remote version, that version is the one the interrupted upload meant to
        supersede; delete it (already gone counts as deleted).
        """
        base, local, remote = action.base, action.local, action.remote
        if base is None or base.remote_version is None or local is None or remote is None:
            return
        if (
            base.remote_version != remote.version
            and base.remote_sha256 != remote.sha256
            and local.sha256 == remote.sha256
            and Capability.SERVER_KEYS in self.remote.capabilities  # else the path held one version
        ):
            self._delete(base.remote_path, base.remote_version)

    # -- uploads and renames -----------------------------------------------

    def _upload_action(self, rec: Recorder, action: Action, attempts: int) -> Done:
        assert action.local is not None
        spelling = action.local.on_disk
        local = self._current_local(spelling, action.local)
        # A new version keeps the remote's spelling of the name; a new file takes the local one.
        as_name = action.remote.path if action.remote is not None else spelling
        if not attempts:  # after an attempt, the remote may hold our own half-sent write
            self._remote_unchanged(as_name, action.remote)
        remote = self._upload_file(rec, spelling, as_name, local, attempts)
        floor = Floor.of(action.remote) if action.remote is not None else FLOOR_NONE
        # Recorded before the superseded version goes (see the module's invariants).
        self._after_upload(rec, local.name, local, remote, floor)
        if action.supersedes is not None and action.supersedes != remote.version:
            self._delete(as_name, action.supersedes)
        return Done(local.size)

    def _rename(self, rec: Recorder, action: Action, attempts: int) -> Done:
        """A local rename (model, RENAME): the old name's remote file moves to the new name where
        the remote can (RENAME); elsewhere the new name is uploaded, then the old name's remote
        file deleted, whatever `delete` says (a file already gone counts as deleted).

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
            and new_row.remote_version is not None
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
        moved = self._move(rec, old, local) if not resumed else False
        if not resumed and not moved:
            current = self._current_local(local.on_disk, local)
            remote = self._upload_file(rec, local.on_disk, local.on_disk, current, attempts)
            self._after_upload(rec, local.name, current, remote, FLOOR_NONE)
            size = current.size
        if not moved and Capability.DELETE not in self.remote.capabilities:
            # The old path cannot go (SPEC, "Renames on ... BeRay"): it stays remotely, its journal
            # row kept as it was, so it reads as a local deletion that was not sent (said once).
            log.warning("renamed: the old path stays on the remote (not supported by this remote)",
                        folder=folder, name=action.name, renamed_from=old.name)
            log.info("renamed", folder=folder, name=action.name, renamed_from=old.name, moved=False)
            return Done(size)
        if not moved:
            old_versions = (*((old.remote_version,) if old.remote_version is not None else ()), *action.older)
            for version in old_versions:
                self._delete(old.remote_path, version)
        rec.record(old.name, None, None)
        log.info("renamed", folder=folder, name=action.name, renamed_from=old.name, moved=moved)
        return Done(size)

    def _move(self, rec: Recorder, old: BaseEntry, local: LocalFile) -> bool:
        """Send a rename as the remote's own move, where it has one and the old file is the one
        the journal recorded; True when done (the new name recorded)."""
        recorded = old.recorded_remote()
        if Capability.RENAME not in self.remote.capabilities or recorded is None:
            return False
        current = self._current_local(local.on_disk, local)
        if (current.size, current.sha256) != (old.local_size, old.local_sha256):
            return False  # changed since: its new content must be uploaded
        moved = self.remote.move(self.folder.place, recorded, local.on_disk)
        rec.record(current.name, current, moved, floor=FLOOR_NONE)
        return True

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
            return Done(self._install(rec, action.local.name, spelling, temp, sha, action.remote, action.local).size)
        # keep-both: the local version moves to its conflicted-copy name and is uploaded under it;
        # the remote version takes the name. Nothing is lost at any step.
        temp, sha = fetched or self._fetch(action.remote)
        try:
            copy = conflict_name(spelling, self.now())
            self.fs.rename_aside(spelling, copy, action.local)
            loser = action.local
            moved = local_file(RelPath.parse(copy), copy, loser.size, loser.mtime_ns, loser.sha256)
            size = self._install(rec, action.local.name, spelling, temp, sha, action.remote, None).size
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
            rec.record(action.local.name, action.local, action.remote)
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
        spelling = action.local.on_disk if action.local else action.remote.path
        name = RelPath(action.name)  # a RACE is never planned for an unsafe name
        # Named from the remote's spelling, which every machine sees alike.
        copies = race_copy_names(action.remote.path, action.racing)
        for version, copy in zip(action.racing, copies, strict=True):
            copy_key = RelPath.parse(copy)
            if local is not None and local.sha256 == version.sha256:
                # Our own version lost the race: it moves aside under the copy name (an earlier
                # attempt may have linked it there already).
                if self.fs.current(copy) is None:
                    self.fs.rename_aside(local.on_disk, copy, local)
                    kept = local_file(copy_key, copy, local.size, local.mtime_ns, local.sha256)
                else:
                    kept = self._race_copy_here(copy_key, copy, version)
                    self.fs.to_trash(local.on_disk, local, self.now())
                local = None
            else:
                kept = self._race_copy_here(copy_key, copy, version)
            existing = self._find_copy(copy, kept)
            uploaded = existing or self._upload_file(rec, kept.on_disk, copy, kept, attempts)
            rec.record(copy_key, kept, uploaded, floor=None if existing else FLOOR_NONE)
            self._delete(version.path, version.version)
            moved += kept.size
            log.info("concurrent write", folder=self.folder.name, name=action.name, copy=copy,
                     version=version.version)
        current = action.remote
        if local is None:
            return Done(moved + self._download_into(rec, name, spelling, current, None))
        if current.sha256 is not None and local.sha256 == current.sha256:
            rec.record(name, local, current)
            return Done(moved)
        # Changed here too, to something else again: an ordinary keep-both conflict with `current`.
        conflict = replace(action, kind=ActionKind.CONFLICT, local=local, winner="both", racing=())
        return Done(moved + self._conflict(rec, conflict, attempts).bytes)

    def _race_copy_here(self, key: RelPath, copy: str, version: RemoteFile) -> LocalFile:
        """The local file holding a racing `version` under its copy name: already there (an
        earlier attempt, or another machine's upload downloaded by a pass), or downloaded now."""
        existing = self.fs.current(copy)
        if existing is not None:
            sha = sha256_of(self.fs.path(copy))
            if sha == version.sha256:
                return local_file(key, copy, existing[0], existing[1], sha)
            raise LocalChanged(copy)  # another file took the name: plan again
        temp, sha = self._fetch(version)
        try:
            st = self.fs.install(temp, copy, None, self.now())
        finally:
            temp.unlink(missing_ok=True)
        return local_file(key, copy, st.st_size, st.st_mtime_ns, sha)


