"""The planner's vocabulary: what a folder looks like, and what to do about it.

Everything here is a frozen value. `syncd.core.plan.plan` reads `LocalFile`,
`RemoteFile` (from `syncd.remote.base`), `BaseEntry` and `FolderPolicy`, and
returns a `Plan` of `Action`s; workers carry the actions out. What each action
asks of a worker, and what it leaves in the journal once done, is the contract
the "converges" invariant rests on (a second plan after all actions succeeded
is empty):

==============  ============================================  =========================
kind            the worker                                    journal row afterwards
==============  ============================================  =========================
UPLOAD          uploads `local`; on success deletes           (local, the new remote)
                `supersedes` (the version it replaces)
DOWNLOAD        downloads `remote` over `name`; replaced      (the written file, remote)
                local content goes to the trash
DELETE_LOCAL    moves the local file to the trash             removed
DELETE_REMOTE   deletes `remote` and `older`                  removed
CONFLICT        resolves per `winner` (below)                 both sides as left
RECORD          nothing: both sides already agree, or a       `Action.recorded()`:
                one-sided deletion is being remembered        (local, remote), either None
FORGET          nothing: both sides are gone                  removed
COMPARE         downloads `remote` to temp, compares bytes:   as RECORD or CONFLICT
                same -> RECORD, different -> CONFLICT
RACE            several writers changed the name at once      each racing version under
                (below): every `racing` version becomes a     its copy name; `name` as
                conflicted copy, `remote` takes the name      (local, remote)
RENAME          moves the old name's remote file to `name`    `name`: (local, the new
                (RENAME capability), else uploads `local`     remote); the old name's
                under `name` and deletes the old one and      row removed
                `older`
FAIL            nothing; reports `reason`                     unchanged
==============  ============================================  =========================

RENAME (SPEC, "Renames"): a local file gone from `renamed_from.name` while the
same content appeared at `name`, in one pass. It is never a deletion (never
counted against `max_delete`), and the old remote file is deleted once the new
one is up whatever `delete` says: a rename is not a deletion. It reports as
the upload of `name`, renamed from the old name.

CONFLICT winners: ``both`` (keep-both) renames the local file to its
conflicted-copy name, uploads it under that name and downloads `remote` under
`name`; ``local`` uploads `local` and deletes `supersedes` (the remote loser);
``remote`` moves the local loser to the trash and downloads `remote`.

RACE (SPEC, "Concurrent writers"): the name has several versions above the
journal's floor with different content. Every machine resolves it the same
way, so the outcome does not depend on which one gets there first: the newest
version (`remote`) keeps the name; each older racing version is materialised
as a local file and a remote file named `NAME (conflicted copy <its upload
time, UTC>).EXT` (the same name on every machine), then deleted under `name`.
Any action may carry `duplicates`: remote ids holding exactly the content of a
version that stays (a retried upload that landed twice); the worker deletes
them after the action.

Every remote file is named by its path at the folder's place and its version
(`RemoteFile`): the versions the actions carry (`supersedes`, `older`,
`duplicates`) are versions of the action's own remote path.

A worker must check that a local file still matches `Action.local` (and that
no file appeared where `local` is None) before replacing or trashing it; a
mismatch means the folder changed since the plan, and the item is planned
again rather than overwritten.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from syncd.core.paths import RelPath
from syncd.remote.base import EPOCH, RemoteFile


class Mode(enum.StrEnum):
    """Which way a folder syncs (config key `mode`)."""

    TWO_WAY = "two-way"
    UPLOAD = "upload"  # local is the source: never downloads, never touches local files
    DOWNLOAD = "download"  # remote is the source: never uploads, never deletes remote files


class ConflictPolicy(enum.StrEnum):
    """Who wins when both sides changed (config key `conflict`)."""

    KEEP_BOTH = "keep-both"
    LOCAL_WINS = "local-wins"
    REMOTE_WINS = "remote-wins"
    NEWER_WINS = "newer-wins"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file of a synced folder, as the scanner saw it.

    `name` is its path, the key (`RelPath`: NFC, `/`-joined); `spelling` is the
    path as spelled on disk when that differs (a file from macOS arrives
    spelled NFD): every read, replace, trash and rename uses `on_disk`.
    `sha256` is always present (the scanner reuses the journal's hash when
    size and mtime are unchanged).
    """

    name: RelPath
    size: int
    mtime_ns: int
    sha256: str
    spelling: str | None = None

    @property
    def on_disk(self) -> str:
        """The name as spelled on the local disk."""
        return self.spelling or self.name


@dataclass(frozen=True, slots=True)
class Floor:
    """A point in a path's remote version order (`written_at`, then `seq`)."""

    written_at: datetime
    seq: int

    @classmethod
    def of(cls, remote: RemoteFile) -> Floor:
        return cls(remote.written_at, remote.seq)


#: Below every version: the floor of a name uploaded new, so that any other version is a race.
FLOOR_NONE = Floor(datetime(1970, 1, 1, tzinfo=UTC), 0)


#: (local size, mtime_ns, sha256), (remote version, size, sha256), dropped: what a journal row records.
Sides = tuple[tuple[int | None, int | None, str | None], tuple[str | None, int | None, str | None], bool]


def sides_synced(local: LocalFile | None, remote: RemoteFile | None, dropped: bool) -> Sides:
    """The `BaseEntry.sides` of a row recording `local` and `remote` as in sync."""
    return (
        (local.size, local.mtime_ns, local.sha256) if local else (None, None, None),
        (remote.version, remote.size, remote.sha256) if remote else (None, None, None),
        dropped,
    )


@dataclass(frozen=True, slots=True)
class BaseEntry:
    """One journal row: the last synced state of both sides of a path.

    The `local_*` fields are all None when no local file existed at the last
    sync, the `remote_*` fields likewise; an entry with exactly one side None
    is a remembered one-sided deletion (or a one-way mode's one-sided file).
    `dropped` marks an upload-mode file that `after_upload` deleted or moved
    aside: its disappearance is not a deletion.
    """

    name: RelPath
    local_size: int | None
    local_mtime_ns: int | None
    local_sha256: str | None
    remote_version: str | None
    remote_size: int | None
    remote_sha256: str | None
    remote_written_at: datetime | None
    dropped: bool = False
    local_name: str | None = None
    remote_name: str | None = None
    remote_floor: Floor | None = None

    @classmethod
    def synced(
        cls,
        name: RelPath,
        local: LocalFile | None,
        remote: RemoteFile | None,
        *,
        dropped: bool = False,
        floor: Floor | None = None,
    ) -> BaseEntry:
        """The row that says `local` and `remote` (either may be None) are in sync. `floor` is
        set by an upload (see `remote_floor`); every other sync leaves it None."""
        return cls(
            name=name,
            local_size=local.size if local else None,
            local_mtime_ns=local.mtime_ns if local else None,
            local_sha256=local.sha256 if local else None,
            remote_version=remote.version if remote else None,
            remote_size=remote.size if remote else None,
            remote_sha256=remote.sha256 if remote else None,
            remote_written_at=remote.written_at if remote else None,
            dropped=dropped,
            local_name=local.spelling if local else None,
            remote_name=remote.path if remote and remote.path != name else None,
            remote_floor=floor,
        )

    @property
    def floor(self) -> Floor | None:
        """The remote floor: versions of the name at or below it are history, versions above it
        other than the recorded one were written by someone else since (SPEC, "Concurrent
        writers"). None when nothing is known (no remote side)."""
        if self.remote_floor is not None:
            return self.remote_floor
        if self.remote_version is not None and self.remote_written_at is not None:
            return Floor(self.remote_written_at, self.remote_seq)
        return None

    @property
    def remote_seq(self) -> int:
        """The recorded version's `seq` (its number, for remotes whose versions are numbers)."""
        version = self.remote_version or ""
        return int(version) if version.isdecimal() and len(version) < 19 else 0

    @property
    def remote_path(self) -> str:
        """The recorded remote file's path, as the remote spells it."""
        return self.remote_name or self.name

    def recorded_remote(self) -> RemoteFile | None:
        """The remote file this row recorded, as a listing would show it (None: no remote
        side): what a remote that cannot list is taken to hold."""
        if self.remote_version is None or self.remote_size is None:
            return None
        return RemoteFile(
            path=self.remote_path, version=self.remote_version, size=self.remote_size,
            sha256=self.remote_sha256, written_at=self.remote_written_at or EPOCH, seq=self.remote_seq,
        )

    @property
    def sides(self) -> Sides:
        """What the row says was in sync: both sides and `dropped`. `remote_written_at` is left
        out: it is fixed by the version, and it does not survive every round trip exactly."""
        return (
            (self.local_size, self.local_mtime_ns, self.local_sha256),
            (self.remote_version, self.remote_size, self.remote_sha256),
            self.dropped,
        )

    @property
    def has_local(self) -> bool:
        """A local file existed at the last sync."""
        return self.local_sha256 is not None

    @property
    def has_remote(self) -> bool:
        """A remote file existed at the last sync."""
        return self.remote_version is not None

    @property
    def tracked(self) -> bool:
        """Both sides existed at the last sync: the denominator of `max_delete`."""
        return self.has_local and self.has_remote


@dataclass(frozen=True, slots=True)
class FolderPolicy:
    """The part of a folder's configuration the planner obeys."""

    mode: Mode = Mode.TWO_WAY
    delete: bool = False
    max_delete: int = 50  # percent of tracked files one pass may delete
    conflict: ConflictPolicy = ConflictPolicy.KEEP_BOTH
    # Upload mode with after_upload = delete or move:DIR: every drop is a new delivery that
    # never replaces an earlier one on the remote (SPEC, "Drop-in").
    additive: bool = False
    # `recursive = true`: paths may hold folders; otherwise a remote name with a `/` is unsafe.
    recursive: bool = False


class ActionKind(enum.StrEnum):
    """What a worker does for one name (see the module docstring)."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    DELETE_LOCAL = "delete_local"
    DELETE_REMOTE = "delete_remote"
    CONFLICT = "conflict"
    RECORD = "record"
    FORGET = "forget"
    COMPARE = "compare"
    RACE = "race"
    RENAME = "rename"
    FAIL = "fail"


Winner = Literal["local", "remote", "both"]

#: The `action` values of `reconcile --json`.
ReportedAction = Literal["upload", "download", "delete_local", "delete_remote", "conflict"]

# RECORD and FORGET transfer nothing and are not reported (they count as
# unchanged). COMPARE reports as a conflict because that is its only outcome
# that changes anything; a compare that finds equal content is reported by
# the worker as unchanged. FAIL reports as the download it refused to do.
_REPORTED: dict[ActionKind, ReportedAction | None] = {
    ActionKind.UPLOAD: "upload",
    ActionKind.DOWNLOAD: "download",
    ActionKind.DELETE_LOCAL: "delete_local",
    ActionKind.DELETE_REMOTE: "delete_remote",
    ActionKind.CONFLICT: "conflict",
    ActionKind.COMPARE: "conflict",
    ActionKind.RACE: "conflict",
    ActionKind.FAIL: "download",
    ActionKind.RENAME: "upload",
    ActionKind.RECORD: None,
    ActionKind.FORGET: None,
}

DELETIONS = frozenset({ActionKind.DELETE_LOCAL, ActionKind.DELETE_REMOTE})


def reported_kind(kind: str) -> ReportedAction:
    """How work of `kind` (a queue row's kind, even one whose payload cannot be read) shows in
    `reconcile --json` when it fails: as its own action, else as an upload."""
    try:
        return _REPORTED[ActionKind(kind)] or "upload"
    except ValueError:
        return "upload"


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do for one name, with the state it was planned against.

    `local`, `remote` and `base` are the planner's view of the name (the
    current remote version, the local file, the journal row); workers use them
    to notice changes made since the plan. `supersedes` is the remote version an
    upload replaces (UPLOAD, and CONFLICT/COMPARE won by local): deleted only
    after the upload succeeded. `older` are older versions of the same
    path, deleted together with `remote` by DELETE_REMOTE so that an old
    version never resurfaces as the current one. `winner` is set on CONFLICT
    and COMPARE, `reason` on FAIL, `racing` on RACE. `renamed_from` is set on
    RENAME: the journal row of the old name (its remote side the version to delete).
    """

    kind: ActionKind
    #: The path's key (a `RelPath`), except on a FAIL for a remote name that is no safe path,
    #: which is keyed by that name's NFC text: it names nothing that will ever be written.
    name: str
    local: LocalFile | None = None
    remote: RemoteFile | None = None
    base: BaseEntry | None = None
    supersedes: str | None = None
    older: tuple[str, ...] = ()
    winner: Winner | None = None
    reason: str | None = None
    racing: tuple[RemoteFile, ...] = ()
    duplicates: tuple[str, ...] = ()
    renamed_from: BaseEntry | None = None

    def recorded(self) -> BaseEntry:
        """The journal row a RECORD leaves: `local` and `remote` as they are, in sync.

        `dropped` survives while a local file exists, so that `after_upload`
        removing it later is still not a deletion; once the local side is
        gone it has nothing left to mark.
        """
        dropped = self.base is not None and self.base.dropped and self.local is not None
        return BaseEntry.synced(RelPath(self.name), self.local, self.remote, dropped=dropped)

    @property
    def spelled(self) -> str:
        """The name as spelled on the local disk (or as it will be, for a new download): what
        reports show (SPEC: names in every output are as spelled on the local disk)."""
        if self.local is not None:
            return self.local.on_disk
        if self.base is not None and self.base.local_name:
            return self.base.local_name
        if self.remote is not None and self.kind in (ActionKind.DOWNLOAD, ActionKind.RACE):
            return self.remote.path
        return self.name

    @property
    def remote_path(self) -> str:
        """The path the action's remote versions live at (the remote's spelling)."""
        if self.remote is not None:
            return self.remote.path
        return self.base.remote_path if self.base is not None else self.name

    @property
    def renamed_spelled(self) -> str | None:
        """For a RENAME, the old name as it was spelled on the local disk; otherwise None."""
        old = self.renamed_from
        return None if old is None else old.local_name or old.name

    @property
    def report_action(self) -> ReportedAction | None:
        """The `action` this shows as in `reconcile --json`; None when not reported."""
        return _REPORTED[self.kind]

    @property
    def is_deletion(self) -> bool:
        """Deletes a file on one side: counted against `max_delete`."""
        return self.kind in DELETIONS


@dataclass(frozen=True, slots=True)
class Plan:
    """What one pass over a folder should do.

    `blocked` is set when the folder must not be touched at all (then
    `actions` is empty). `warning` is set when the pass would delete more than
    `max_delete`% of the tracked files: every deletion was left out (counted in
    `skipped_deletions`, and each one in `held_back`) and the other actions kept;
    `max_delete_needed` is then the whole percentage that would let them through. `unchanged` counts the
    names present on some side that need no reported action. `confirmed` lists
    (path, remote version) of uploads seen alone above their floor: the journal's
    floor is cleared (no race happened) and its upload time set to the service's,
    with no work queued.
    """

    actions: tuple[Action, ...] = ()
    blocked: str | None = None
    warning: str | None = None
    skipped_deletions: int = 0
    unchanged: int = 0
    confirmed: tuple[tuple[str, RemoteFile], ...] = ()
    held_back: tuple[Action, ...] = ()
    max_delete_needed: int | None = None
