"""A pass over one folder: look (scan + listing + journal), plan (pure), enqueue; and the
replanning of one name whose action found the folder changed under it.

What a pass guarantees:

* it changes nothing on the remote, and nothing in the folder but syncd's own trash: all it
  writes is the queue (one row per planned action, coalescing with work already queued), the
  folder's and the remote's status, the floors a listing confirmed (`State.confirm_floors`),
  and what it leaves out of sync with no work queued (`syncd.state.notices`: replaced for the
  names it looked at); a full pass also removes the trash slots older than the folder's
  `trash_days` (`syncd.local.trash`). A dry run writes none of it;
* it never plans from an empty mount point: a tracked folder whose marker is missing is
  paused (blocked), and nothing in it is read as deleted;
* a name the scan could not read is reported as failed and left out of the plan on both sides,
  so it is neither uploaded nor taken for a deletion;
* a listing the remote refuses pauses the remote; one it answers lifts that pause
  (`RemotePauses`); the listing leaves out the names the folder ignores, which are never
  written locally and so must not look deleted next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from syncd.config import Config, FolderConfig
from syncd.core.model import Action, ActionKind, BaseEntry, ConflictPolicy, FolderPolicy, Mode, Plan
from syncd.core.names import normalize
from syncd.core.plan import plan
from syncd.errors import FatalError, ItemError, PlaceGone, TransientError
from syncd.local.folderfs import FolderFS
from syncd.local.ignore import is_ignored
from syncd.local.scan import LocalListing, scan_folder, widen
from syncd.local.trash import purge_trash
from syncd.remote.base import Capability, Remote, RemoteFile
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.notices import Notice, NoticeState, replace_notices
from syncd.state.queue import Queue
from syncd.sync import notices
from syncd.sync.firstrun import missing_parent, not_created
from syncd.sync.gcpause import collection_paused
from syncd.sync.lanes import transfer_size
from syncd.sync.outcome import bases, to_base
from syncd.sync.pauses import RemotePauses
from syncd.sync.report import ActionResult, FolderReport, Reports

log = structlog.get_logger("syncd.sync.passes")


def policy_of(folder: FolderConfig, max_delete: int | None = None) -> FolderPolicy:
    """What the planner obeys of `folder`; `max_delete` overrides the folder's for one pass
    (`syncd reconcile --max-delete`)."""
    return FolderPolicy(
        mode=Mode(folder.mode), delete=folder.delete,
        max_delete=folder.max_delete if max_delete is None else max_delete,
        conflict=ConflictPolicy(folder.conflict),
        additive=folder.mode == "upload" and folder.after_upload.action != "keep",
        recursive=folder.recursive,
    )


def now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class _Looked:
    """What planning a folder found: the plan, and what it leaves out of sync with no work
    queued (None: nothing was learned, the folder was blocked) among `names` (None: all)."""

    plan: Plan
    notices: list[Notice] | None = None
    names: Collection[str] | None = None


class Passes:
    """Passes over the folders of one config (`reconfigure` swaps it)."""

    def __init__(
        self,
        config: Config,
        state: State,
        queue: Queue,
        remotes: Mapping[str, Remote],
        *,
        reports: Reports,
        pauses: RemotePauses,
        notify_work: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.remotes = remotes
        self.state = state
        self.queue = queue
        self.reports = reports
        self.pauses = pauses
        self.clock = clock
        self._notify_work = notify_work
        #: (folder, path, reason) of entries the scan skipped, and of local deletions the remote
        #: keeps, that the log already told of (once per process).
        self._skipped_seen: set[tuple[str, str, str]] = set()

    def reconfigure(self, config: Config, remotes: Mapping[str, Remote]) -> None:
        self.config, self.remotes = config, remotes

    # -- looking and planning -------------------------------------------------

    def check_folder(self, folder: FolderConfig) -> str | None:
        """Why the folder must be left alone, or None. A new folder gets its marker here, and is
        created if missing, but only inside an existing directory (`syncd.sync.firstrun`). A dry
        run (a read-only state) creates nothing: a missing new folder is planned as empty."""
        fs = FolderFS(folder.path)
        tracked = self.state.journal_count(folder.name) > 0
        if not folder.path.is_dir():
            if tracked:
                return f"folder {folder.path} is missing (unmounted disk or wrong path?): paused"
            parent = missing_parent(folder.path)
            if parent is not None:
                return f"folder {not_created(folder.path, parent)}: paused"
            if self.state.read_only:
                return None
            try:
                folder.path.mkdir()
            except FileExistsError:
                pass  # made meanwhile, or not a directory (then the marker's mkdir says so)
            else:
                log.info("created folder", folder=folder.name, path=str(folder.path))
            fs.create_marker()
        elif not fs.marker_present():
            if tracked:
                return f"folder marker {fs.marker} is missing (unmounted disk or wrong path?): paused"
            if not self.state.read_only:
                fs.create_marker()
        return None

    def plan_folder(
        self,
        folder: FolderConfig,
        report: FolderReport,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
        max_delete: int | None = None,
    ) -> Plan:
        """Scan, list and plan one folder (no changes to it): every name, or just `names`.

        `remote` is a listing the caller just fetched (the poller), else one is fetched (none
        when the remote cannot list: then the journal is the listing). `max_delete` overrides
        the folder's for this plan.
        """
        return self._look(folder, report, names, remote, max_delete).plan

    def _look(
        self,
        folder: FolderConfig,
        report: FolderReport,
        names: Collection[str] | None,
        remote: list[RemoteFile] | None,
        max_delete: int | None,
    ) -> _Looked:
        blocked = self.check_folder(folder)
        if blocked:
            return _Looked(Plan(blocked=blocked))
        # Pointed at another place on the remote: the journal speaks of the old one (a dry run
        # plans as the first sync the real pass will be; the real pass drops the journal first).
        moved = self.state.folder_place(folder.name) not in (None, folder.place)
        # The remote listing waits on the network while the journal is read and the disk
        # scanned: overlap them.
        with ThreadPoolExecutor(1, thread_name_prefix="syncd-list") as pool:
            remote_future = pool.submit(self.remote_listing, folder) if remote is None else None
            base = {} if moved else self.state.read_journal(folder.name, bases)
            if names is not None and folder.recursive:
                names = widen(names, base)  # a gone directory's key: every file tracked below it
            listing = (
                scan_folder(
                    folder.path, folder.ignore, base, only=names, recursive=folder.recursive,
                    exclude=_delivered(folder),
                )
                if folder.path.is_dir() or not self.state.read_only
                else LocalListing()  # a dry run's new folder, not made yet
            )
            if remote_future is not None:
                remote = remote_future.result()
        emptied = _emptied(remote, base)
        if emptied:
            return _Looked(Plan(blocked=emptied))
        for name in [n for n in base if listing.unreadable(n)]:  # unreadable: not "deleted", just not now
            base.pop(name)
        for name, error in listing.errors.items():
            report.results[name] = ActionResult(name, "upload", "failed", error)
        skipped = notices.skipped(folder, listing)
        for notice in skipped:  # SPEC, "Names": reported once, not synced
            self._once(folder, notice.name, notice.reason, "skipped")
        for spelling, reason in listing.shadowed.items():  # SPEC, "Names": kept, reported, not synced
            report.results[spelling] = ActionResult(spelling, "upload", "failed", reason)
            log.warning("not synced", folder=folder.name, name=spelling, reason=reason)
        if listing.errors and remote is not None:
            remote = [f for f in remote if not listing.unreadable(normalize(f.path))]
        result = plan(listing.files, remote, base, policy_of(folder, max_delete), marker_present=True, only=names)
        kept = notices.kept_remotely(
            folder, Capability.DELETE in self.remotes[folder.remote].capabilities, listing.files, remote, base,
            result, names,
        )
        for item in kept:  # SPEC, "BeRay local deletions": reported once, never retried
            if item.entry.has_local:  # the pass that sees the deletion; later ones find it remembered
                self._once(folder, item.spelled, item.reason, "local deletion not sent",
                           warn=item.state is NoticeState.UNSUPPORTED)
        found = [
            *skipped, *notices.shadowed(listing), *notices.unreadable(listing), *notices.held_back(folder, result),
            *(Notice(item.spelled, item.state, item.reason) for item in kept),
        ]
        return _Looked(result, found, names)

    def _once(self, folder: FolderConfig, name: str, reason: str, event: str, *, warn: bool = False) -> None:
        """Log `event` about `name` the first time this process sees it for this reason."""
        seen = (folder.name, name, reason)
        if seen in self._skipped_seen:
            return
        self._skipped_seen.add(seen)
        (log.warning if warn else log.info)(event, folder=folder.name, name=name, reason=reason)

    def remote_listing(self, folder: FolderConfig) -> list[RemoteFile] | None:
        """The place's files, less the names the folder ignores: those are never written locally,
        so a downloaded one would look deleted here on the next pass. None when the remote cannot
        list (no LIST): the journal is then the listing.

        The one place the remote's pause is decided from a listing: refused (401/403), it is
        paused; answered, whatever refused us before is over."""
        remote = self.remotes[folder.remote]
        if Capability.LIST not in remote.capabilities:
            return None
        try:
            files = remote.list(folder.place)
        except FatalError as exc:
            self.pauses.pause(folder.remote, str(exc))
            raise
        self.pauses.pause(folder.remote, None)
        return [f for f in files if not is_ignored(f.path, folder.ignore, recursive=folder.recursive)]

    def pass_folder(
        self,
        folder: FolderConfig,
        *,
        dry_run: bool = False,
        urgent: bool = False,
        names: Collection[str] | None = None,
        remote: list[RemoteFile] | None = None,
        revive_failed: bool = True,
        max_delete: int | None = None,
    ) -> FolderReport:
        """Plan a folder and (unless `dry_run`) queue its actions and record what it leaves out
        of sync; a full pass (`names` None) also purges the folder's old trash.

        `urgent` (a pass someone asked for) makes queued work due now, even work
        waiting out a backoff: the full disk may have been freed meanwhile. `max_delete`
        overrides the folder's for this pass (`syncd reconcile --max-delete`).
        """
        report = self.reports.start(folder.name)
        if not dry_run and self.state.move_folder_place(folder.name, folder.place):
            log.warning("folder moved to another place on its remote: syncing it as a first sync",
                        folder=folder.name, remote=folder.remote)
            names = None
        if names is None and not dry_run:
            self._purge_trash(folder)
        try:
            with collection_paused():
                looked = self._look(folder, report, names, remote, max_delete)
        except PlaceGone as exc:
            # SPEC, "A gone or emptied remote place": paused, nothing deleted on either side; the
            # pause lifts at the first pass whose listing the place answers again.
            report.blocked = f"{exc}: paused, nothing deleted"
            self.state.set_folder_paused(folder.name, report.blocked)
            self.state.set_last_pass(folder.name, now_iso(self.clock()), report.blocked)
            log.warning("remote place gone", folder=folder.name, reason=str(exc))
            return report
        except (TransientError, FatalError, ItemError, OSError) as exc:
            report.blocked = str(exc)
            self.state.set_last_pass(folder.name, now_iso(self.clock()), str(exc))
            return report
        result = looked.plan
        report.blocked, report.warning, report.unchanged = result.blocked, result.warning, result.unchanged
        self.state.set_folder_paused(folder.name, result.blocked)
        if looked.notices is not None and not dry_run:
            replace_notices(self.state, folder.name, looked.notices, keys=looked.names, now=now_iso(self.clock()))
        if result.confirmed and not dry_run:
            self.state.confirm_floors(
                folder.name, [(name, f.version, f.written_at.isoformat()) for name, f in result.confirmed]
            )
        if result.warning:
            log.warning("max_delete", folder=folder.name, message=result.warning)
        jobs = []
        for action in result.actions:
            reported = action.report_action
            if reported is not None:
                report.results[action.name] = ActionResult(
                    action.spelled, reported, "planned", action.reason if action.kind is ActionKind.FAIL else None,
                    renamed_from=action.renamed_spelled,
                )
            if not dry_run:
                payload = jobcodec.dumps(action)
                jobs.append((folder.name, action.name, action.kind.value, payload, transfer_size(action)))
        if not dry_run:
            self.queue.put_many(jobs, urgent=urgent, revive_failed=revive_failed)
            self._notify_work()
        return report

    def _purge_trash(self, folder: FolderConfig) -> None:
        """SPEC, "Trash": remove what the folder's trash has kept longer than `trash_days`. Never
        in a folder whose marker is missing (an empty mount point has no trash of ours)."""
        if folder.trash_days <= 0 or not FolderFS(folder.path).marker_present():
            return
        try:
            purged = purge_trash(folder.path, folder.trash_days, self.clock())
        except OSError as exc:
            log.warning("cannot purge the trash", folder=folder.name, error=exc.strerror or str(exc))
            return
        if purged.entries:
            log.info("trash purged", folder=folder.name, entries=purged.entries, bytes=purged.bytes,
                     days=folder.trash_days)
        if purged.trouble:
            log.warning("cannot purge the trash", folder=folder.name, error=purged.trouble)

    def replan(self, folder_name: str, name: str, fs: FolderFS) -> Action | None:
        """The folder changed under an action on `name`: plan that one name again (never from an
        empty mount point: a file that vanished with its disk is not a deletion). None: nothing
        is left to do for it."""
        fs.require_marker()
        folder = self.config.folder(folder_name)
        row = self.state.journal_row(folder.name, name)
        base = {} if row is None else {name: to_base(row)}
        listing = scan_folder(folder.path, folder.ignore, base, recursive=folder.recursive, exclude=_delivered(folder))
        local = {n: f for n, f in listing.files.items() if n == name}
        listed = self.remote_listing(folder)
        remote = None if listed is None else [f for f in listed if normalize(f.path) == name]
        fresh = plan(local, remote, base, policy_of(folder))
        return fresh.actions[0] if fresh.actions else None


def _emptied(remote: list[RemoteFile] | None, base: Mapping[str, BaseEntry]) -> str | None:
    """Why to pause a folder whose remote place lists nothing although files were synced there
    (SPEC, "A gone or emptied remote place"): a sandbox made again under the same id, a chat
    someone cleared. Read as deletions, it would delete every local file; paused, nothing is
    deleted on either side until the place lists files again (or the folder is pointed at a
    new place, or its journal rebuilt: `reconcile --rebuild-journal`)."""
    if remote is None or remote:
        return None
    synced = sum(1 for entry in base.values() if entry.remote_version is not None)
    if not synced:
        return None
    return (f"the remote place lists no files, but {synced} were synced there: paused, nothing deleted "
            "(if it was emptied on purpose, run `syncd reconcile --rebuild-journal`)")


def _delivered(folder: FolderConfig) -> tuple[str, ...]:
    """The directory a recursive scan leaves out: `after_upload`'s `move:DIR` (its files are
    delivered, and done)."""
    after = folder.after_upload
    return (after.dir,) if after.action == "move" and after.dir else ()
