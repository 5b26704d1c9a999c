"""The planner: a pure three-way comparison of local, remote and journal.

`plan()` reads plain values and returns a `Plan`; it never touches a clock, a
disk or the network, so every decision below is a unit test on small dicts.

Each name is classified on each side against the journal (its *base*):

======== ===================================================================
ABSENT   not there now, and not there at the last sync
GONE     there at the last sync, not now (a deletion)
SAME     there now with the content of the last sync
CHANGED  there now with other content, or new since the last sync
======== ===================================================================

A local file changed when its (size, sha256) differs from the base: a new
mtime alone is only refreshed in the journal. A remote file changed when its
version differs from the base *and* so does its content (sha256 or size; a
remote without sha256 can only say "changed"): a re-upload of the same bytes
is only refreshed too. A remote that cannot list (no LIST capability) is
given as `remote=None`: the journal is then the listing (every recorded
remote file is taken to be there as recorded).

Before the table is consulted, a name present on both sides with provably
equal content is recorded (no transfer), whatever the mode. Otherwise
`_TABLE` maps (mode, local side, remote side) to what to do; a name gone
from both sides only has its journal row forgotten. One-way modes ignore
changes on the side they do not read from (the journal is left alone, so the
change is still seen if the mode later becomes two-way), never delete
content that changed since the last sync, and never write the side they read
from. A one-sided deletion that is not propagated (`delete = false`, a
drop-in removal) is remembered by recording that side as absent, so the file
is neither deleted elsewhere nor brought back until the other side changes.

Conflicts exist in two-way mode only (a one-way mode's source side wins).
The policy names the winner; newer-wins compares the local mtime with the
remote `mtime` (else `written_at`) and gives ties to the remote, whose loser (the local
content) goes to the trash rather than being deleted. When equality cannot be
proven (sizes equal, no sha256 from the remote) the action is COMPARE carrying
the same winner. Actions that would write a file under an unsafe remote name
(DOWNLOAD, CONFLICT, COMPARE, RACE) become FAIL with the reason; a path is
never built from such a name.

Local renames (SPEC, "Renames") are paired before that, in modes that send local
changes: a *vanished* name (journal row with both sides, not a drop-in removal,
local file gone, remote current version the journal's own) and an *appeared*
name (local file, no journal row, no remote version) with the same size and
sha256 (the scan's and the journal's local sha256) become one RENAME on the
appeared name, and the vanished name gets no action of its own. Several
candidates with one content pair in name order on both sides, so the result
does not depend on input order. With `only`, both names must be in it.

A name's remote side is first read from all its versions (`remote_view`; a
remote that overwrites in place lists one per path, one that keeps versions
side by side may list several):
versions with identical bytes are one file (the newest stays, the others are
`duplicates` any action deletes afterwards); the newest survivor is current;
survivors above the journal's floor other than the current one lost a race to
it (two-way folders: RACE, before the table); the rest is history, left alone.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from syncd.core.model import (
    Action,
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    Floor,
    FolderPolicy,
    LocalFile,
    Mode,
    Plan,
    Winner,
    sides_synced,
)
from syncd.core.names import normalize, unsafe_reason
from syncd.core.paths import path_reason
from syncd.remote.base import RemoteFile

MARKER_MISSING = "folder marker .syncd/ missing: folder paused (unmounted disk or wrong path?)"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Actions that write a file under `name` locally. A remote name that is not a
# safe path component must never reach them: they become FAIL instead.
_WRITES_LOCALLY = frozenset({ActionKind.DOWNLOAD, ActionKind.CONFLICT, ActionKind.COMPARE, ActionKind.RACE})


class _Side(enum.Enum):
    ABSENT = "absent"
    GONE = "gone"
    SAME = "same"
    CHANGED = "changed"


class _Do(enum.Enum):
    IGNORE = "ignore"  # no action, journal untouched
    KEEP = "keep"  # journal := both sides as they are, if that differs from the base
    UPLOAD = "upload"
    DOWNLOAD = "download"
    RESOLVE = "resolve"  # both changed: conflict per policy, or compare when equality is unknown
    DELETE_LOCAL = "delete_local"  # with delete=true; otherwise KEEP (remember it)
    DELETE_REMOTE = "delete_remote"  # with delete=true and not a drop-in; otherwise KEEP


_A, _G, _S, _C = _Side.ABSENT, _Side.GONE, _Side.SAME, _Side.CHANGED

# (local side, remote side) -> what to do. Pairs where neither side exists now
# are handled before the table (forget the row). Rows read: local, remote.
_TABLE: dict[Mode, dict[tuple[_Side, _Side], _Do]] = {
    Mode.TWO_WAY: {
        (_A, _S): _Do.KEEP,  # remembered local deletion
        (_A, _C): _Do.DOWNLOAD,
        (_G, _S): _Do.DELETE_REMOTE,
        (_G, _C): _Do.DOWNLOAD,  # gone here, changed there: the change wins
        (_S, _A): _Do.KEEP,  # remembered remote deletion
        (_S, _G): _Do.DELETE_LOCAL,
        (_S, _S): _Do.KEEP,
        (_S, _C): _Do.DOWNLOAD,
        (_C, _A): _Do.UPLOAD,
        (_C, _G): _Do.UPLOAD,  # gone there, changed here: the change wins
        (_C, _S): _Do.UPLOAD,
        (_C, _C): _Do.RESOLVE,
    },
    Mode.UPLOAD: {
        (_A, _S): _Do.KEEP,
        (_A, _C): _Do.IGNORE,  # remote-only changes are not ours to take
        (_G, _S): _Do.DELETE_REMOTE,
        (_G, _C): _Do.IGNORE,  # never delete a remote version newer than ours
        (_S, _A): _Do.KEEP,
        (_S, _G): _Do.IGNORE,  # not re-uploaded: the remote deletion stands
        (_S, _S): _Do.KEEP,
        (_S, _C): _Do.IGNORE,
        (_C, _A): _Do.UPLOAD,
        (_C, _G): _Do.UPLOAD,
        (_C, _S): _Do.UPLOAD,
        (_C, _C): _Do.UPLOAD,  # local is the source
    },
    Mode.DOWNLOAD: {
        (_A, _S): _Do.KEEP,
        (_A, _C): _Do.DOWNLOAD,
        (_G, _S): _Do.IGNORE,  # not brought back until the remote changes
        (_G, _C): _Do.DOWNLOAD,
        (_S, _A): _Do.KEEP,
        (_S, _G): _Do.DELETE_LOCAL,
        (_S, _S): _Do.KEEP,
        (_S, _C): _Do.DOWNLOAD,
        (_C, _A): _Do.IGNORE,  # local-only changes are not ours to send
        (_C, _G): _Do.IGNORE,  # never delete a local edit
        (_C, _S): _Do.IGNORE,
        (_C, _C): _Do.DOWNLOAD,  # remote is the source; the local edit goes to the trash
    },
}


def plan(
    local: Mapping[str, LocalFile],
    remote: Sequence[RemoteFile] | None,
    base: Mapping[str, BaseEntry],
    policy: FolderPolicy,
    *,
    marker_present: bool = True,
    only: Collection[str] | None = None,
) -> Plan:
    """Decide what one pass over a folder should do.

    `local` maps paths (`RelPath` keys) to the folder's files, `remote` is the
    place's listing as the remote returned it (duplicates included; None when the
    remote cannot list), `base` maps paths to journal rows. Actions come out sorted by name. Without the
    folder marker nothing is planned: a vanished folder is never "everything
    was deleted". With `only`, just those names are decided (the daemon's
    watcher and poller); `max_delete` still counts every tracked file.
    """
    if not marker_present:
        return Plan(blocked=MARKER_MISSING)

    if remote is None:  # no listing: the journal is the listing
        remote = [f for f in (entry.recorded_remote() for entry in base.values()) if f is not None]
    versions = _versions(remote)
    actions: list[Action] = []
    confirmed: list[tuple[str, RemoteFile]] = []
    unchanged = 0
    names = set(local) | set(versions) | set(base) if only is None else set(only)
    renamed = _renames(local, versions, base, policy, names)
    gone = {entry.name for entry, _ in renamed.values()}
    for name in sorted(names):
        if name in gone:
            continue  # the rename on its new name takes care of it
        entry = base.get(name)
        view = remote_view(versions.get(name, ()), entry, policy)
        if name in renamed:
            old, old_view = renamed[name]
            action: Action | None = Action(
                ActionKind.RENAME, name, local[name], renamed_from=old,
                older=(*old_view.older, *old_view.duplicates),
            )
        else:
            action = _decide(name, local.get(name), view, entry, policy, versions.get(name, ()))
        if action is not None:
            actions.append(action)
        elif entry is not None and entry.remote_floor is not None and view.current is not None \
                and view.current.version == entry.remote_version:  # our upload, alone above its floor: no race
            confirmed.append((name, view.current))
        present = name in local or view.current is not None
        if present and (action is None or action.report_action is None):
            unchanged += 1

    deletions = sum(1 for action in actions if action.is_deletion)
    tracked = sum(1 for entry in base.values() if entry.tracked)
    # Invariant: every deletion needs a base row with both sides, so
    # deletions <= tracked and max_delete = 100 never trips.
    if deletions and deletions * 100 > policy.max_delete * tracked:
        kept = tuple(action for action in actions if not action.is_deletion)
        warning = (
            f"pass would delete {deletions} of {tracked} tracked files "
            f"({_percent(deletions, tracked)}% > max_delete {policy.max_delete}%); deleted nothing"
        )
        return Plan(
            kept, warning=warning, skipped_deletions=deletions, unchanged=unchanged, confirmed=tuple(confirmed)
        )
    return Plan(tuple(actions), unchanged=unchanged, confirmed=tuple(confirmed))


def _renames(
    local: Mapping[str, LocalFile],
    versions: Mapping[str, Sequence[RemoteFile]],
    base: Mapping[str, BaseEntry],
    policy: FolderPolicy,
    names: Collection[str],
) -> dict[str, tuple[BaseEntry, RemoteView]]:
    """Local renames: new name -> (the old name's journal row, its remote view). See the module
    docstring; a pure function of its inputs, whatever their order."""
    if policy.mode is Mode.DOWNLOAD:
        return {}
    vanished: dict[tuple[int, str], list[tuple[BaseEntry, RemoteView]]] = {}
    for name in sorted(names):
        entry = base.get(name)
        if entry is None or name in local or not entry.tracked or entry.dropped:
            continue
        view = remote_view(versions.get(name, ()), entry, policy)
        if view.current is None or view.current.version != entry.remote_version or view.racing:
            continue  # changed or gone on the remote: not ours to move
        assert entry.local_size is not None and entry.local_sha256 is not None  # tracked
        vanished.setdefault((entry.local_size, entry.local_sha256), []).append((entry, view))
    if not vanished:
        return {}
    pairs: dict[str, tuple[BaseEntry, RemoteView]] = {}
    for name in sorted(names):
        file = local.get(name)
        if file is None or name in base or versions.get(name):
            continue
        candidates = vanished.get((file.size, file.sha256))
        if candidates:
            pairs[name] = candidates.pop(0)
    return pairs


def remote_changes(
    remote: Sequence[RemoteFile], base: Mapping[str, BaseEntry], policy: FolderPolicy
) -> set[str]:
    """Names whose remote side is not what the journal knows: a current version other than the
    recorded one (new, replaced or gone), a race, duplicates to remove, or a floor to confirm.
    The poller plans just these."""
    versions = _versions(remote)
    changed: set[str] = set()
    for name, files in versions.items():
        entry = base.get(name)
        view = remote_view(files, entry, policy)
        current = view.current.version if view.current else None
        # A floor left by an upload of ours is confirmed once a listing shows it alone.
        if entry is None or current != entry.remote_version or view.racing or view.duplicates or entry.remote_floor:
            changed.add(name)
    changed.update(name for name, entry in base.items() if entry.has_remote and name not in versions)
    return changed


@dataclass(frozen=True, slots=True)
class RemoteView:
    """What the remote holds for one name, read against the journal's floor.

    `current` is the version that holds the name; `older` the versions of history
    (at or below the floor), oldest first; `racing` the versions above the floor
    that lost a concurrent write to `current` (two-way folders only); `duplicates`
    the versions whose exact content (size and sha256) another kept version holds.
    """

    current: RemoteFile | None = None
    older: tuple[str, ...] = ()
    racing: tuple[RemoteFile, ...] = ()
    duplicates: tuple[str, ...] = ()


def _versions(remote: Sequence[RemoteFile]) -> dict[str, list[RemoteFile]]:
    """Every version of each path, keyed in NFC, oldest first (by `written_at`, then `seq`)."""
    versions: dict[str, list[RemoteFile]] = {}
    for file in remote:
        versions.setdefault(normalize(file.path), []).append(file)
    for files in versions.values():
        files.sort(key=_order)
    return versions


def remote_view(files: Sequence[RemoteFile], base: BaseEntry | None, policy: FolderPolicy) -> RemoteView:
    """Read a name's versions (oldest first) against its journal row (SPEC, "Remote
    duplicates", "Concurrent writers").

    Versions with identical size and sha256 are one file: the newest stays, the others are
    duplicates (every machine keeps the same one, so two machines never delete each other's).
    The newest survivor is current. Survivors above the journal's floor other than the newest
    are a race, when there is a floor to read against (a first sync has none: older versions
    are then history) and the folder is two-way; everything else older is history.
    """
    if not files:
        return RemoteView()
    survivors: list[RemoteFile] = []
    duplicates: list[str] = []
    kept: set[tuple[int, str]] = set()
    for file in reversed(files):  # newest first: the newest of identical versions stays
        key = _content_key(file)
        if key is not None and key in kept:
            duplicates.append(file.version)
            continue
        if key is not None:
            kept.add(key)
        survivors.append(file)
    survivors.reverse()
    if policy.mode is Mode.DOWNLOAD:
        duplicates = []  # download mode never changes the remote
    current = survivors[-1]
    floor = base.floor if base is not None else None
    if base is not None and base.remote_floor is None and base.remote_version is not None:
        # The floor is the recorded version itself: read its place from the listing, which has
        # the service's own write time (the journal's may be the uploader's clock).
        listed = next((f for f in files if f.version == base.remote_version), None)
        if listed is not None:
            floor = Floor.of(listed)
    racing: tuple[RemoteFile, ...] = ()
    if floor is not None and policy.mode is Mode.TWO_WAY:
        mark = (_ns(floor.written_at), floor.seq)
        racing = tuple(f for f in survivors[:-1] if _order(f) > mark)
    history = tuple(f.version for f in survivors[:-1] if f not in racing)
    return RemoteView(current, history, racing, tuple(reversed(duplicates)))


def _content_key(file: RemoteFile) -> tuple[int, str] | None:
    """What identifies a version's content, when the remote proves it (a sha256)."""
    return (file.size, file.sha256) if file.sha256 is not None else None


def _order(file: RemoteFile) -> tuple[int, int]:
    return _ns(file.written_at), file.seq


def _decide(
    name: str,
    local: LocalFile | None,
    view: RemoteView,
    base: BaseEntry | None,
    policy: FolderPolicy,
    history: Sequence[RemoteFile] = (),
) -> Action | None:
    """The action for one name, or None when there is nothing to do."""
    action = _decide_main(name, local, view, base, policy)
    uploads = action is not None and (action.kind is ActionKind.UPLOAD or action.winner == "local")
    if action is not None and uploads and local is not None:
        # An older version with the very bytes being uploaded becomes a duplicate of the upload.
        same = tuple(
            f.version for f in history if f.version in view.older and _content_key(f) == (local.size, local.sha256)
        )
        if same:
            view = replace(view, duplicates=(*view.duplicates, *same))
    if action is not None and action.kind in _WRITES_LOCALLY:
        for written in {name, *(f.path for f in (action.remote, *action.racing) if f is not None)}:
            # A name with a `/` is a path into subfolders only where the folder syncs them.
            reason = path_reason(written) if policy.recursive else unsafe_reason(written)
            if reason is not None:
                return Action(
                    ActionKind.FAIL, name, local, view.current, base, reason=f"unsafe remote name: {reason}"
                )
    if view.duplicates:
        if action is None:
            action = Action(ActionKind.RECORD, name, local, view.current, base)
        if action.kind is not ActionKind.FAIL:
            action = replace(action, duplicates=view.duplicates)
    return action


def _decide_main(
    name: str,
    local: LocalFile | None,
    view: RemoteView,
    base: BaseEntry | None,
    policy: FolderPolicy,
) -> Action | None:
    remote, older = view.current, view.older
    if view.racing:
        assert remote is not None
        return Action(ActionKind.RACE, name, local, remote, base, racing=view.racing)
    if local is None and remote is None:
        return None if base is None else Action(ActionKind.FORGET, name, base=base)
    if local is not None and remote is not None and _same_content(local, remote):
        return _keep(name, local, remote, base)

    do = _TABLE[policy.mode][(_local_side(local, base), _remote_side(remote, base))]
    if do is _Do.IGNORE:
        return None
    if do is _Do.KEEP:
        return _keep(name, local, remote, base)
    if do is _Do.UPLOAD:
        # A drop-in is a delivery, not an edit: it never replaces an earlier one.
        supersedes = remote.version if remote and not policy.additive else None
        return Action(ActionKind.UPLOAD, name, local, remote, base, supersedes=supersedes)
    if do is _Do.DOWNLOAD:
        return Action(ActionKind.DOWNLOAD, name, local, remote, base)
    if do is _Do.RESOLVE:
        return _resolve(name, local, remote, base, policy.conflict)
    if do is _Do.DELETE_LOCAL:
        if policy.delete:
            return Action(ActionKind.DELETE_LOCAL, name, local, remote, base)
        return _keep(name, local, remote, base)
    # _Do.DELETE_REMOTE. A drop-in removal (after_upload) is done, not deleted, whatever `delete` says.
    if policy.delete and not (base is not None and base.dropped):
        return Action(ActionKind.DELETE_REMOTE, name, local, remote, base, older=older)
    return _keep(name, local, remote, base)


def _local_side(local: LocalFile | None, base: BaseEntry | None) -> _Side:
    had = base is not None and base.has_local
    if local is None:
        return _Side.GONE if had else _Side.ABSENT
    if base is None or not had:
        return _Side.CHANGED
    same = (local.size, local.sha256) == (base.local_size, base.local_sha256)
    return _Side.SAME if same else _Side.CHANGED


def _remote_side(remote: RemoteFile | None, base: BaseEntry | None) -> _Side:
    had = base is not None and base.has_remote
    if remote is None:
        return _Side.GONE if had else _Side.ABSENT
    if base is None or not had or remote.version != base.remote_version:
        # A new version holding the base's bytes (a re-upload) is not a change; without a
        # sha256 nothing proves that, so then any new version is one.
        reupload = (
            base is not None
            and had
            and remote.sha256 is not None
            and (remote.size, remote.sha256) == (base.remote_size, base.remote_sha256)
        )
        return _Side.SAME if reupload else _Side.CHANGED
    return _Side.SAME


def _same_content(local: LocalFile, remote: RemoteFile) -> bool | None:
    """True/False when provable, None when only a byte comparison can tell.

    Equal sizes never prove equality: without a sha256 from the remote the answer
    is None and the worker compares bytes (COMPARE).
    """
    if local.size != remote.size:
        return False
    if remote.sha256 is not None:
        return local.sha256 == remote.sha256
    return None


def _keep(name: str, local: LocalFile | None, remote: RemoteFile | None, base: BaseEntry | None) -> Action | None:
    """RECORD both sides as they are, unless the journal already says so.

    `remote_written_at` is left out of the comparison: it is fixed by the
    version, and a journal round trip must not make RECORD repeat forever.
    A local spelling that changed is recorded too.
    """
    # `dropped` as `Action.recorded` keeps it.
    if (
        base is not None
        and base.sides == sides_synced(local, remote, base.dropped and local is not None)
        and base.local_name == (local.spelling if local else None)
    ):
        return None
    return Action(ActionKind.RECORD, name, local, remote, base)


def _resolve(
    name: str,
    local: LocalFile | None,
    remote: RemoteFile | None,
    base: BaseEntry | None,
    policy: ConflictPolicy,
) -> Action:
    """Both sides changed to different (or not provably equal) content."""
    assert local is not None and remote is not None  # the table resolves only (CHANGED, CHANGED)
    winner = _winner(policy, local, remote)
    kind = ActionKind.CONFLICT if _same_content(local, remote) is False else ActionKind.COMPARE
    supersedes = remote.version if winner == "local" else None
    return Action(kind, name, local, remote, base, supersedes=supersedes, winner=winner)


def _winner(policy: ConflictPolicy, local: LocalFile, remote: RemoteFile) -> Winner:
    """Who wins a conflict. newer-wins gives ties to the remote: then the
    local loser goes to the trash, while a remote loser would be deleted."""
    if policy == ConflictPolicy.KEEP_BOTH:
        return "both"
    if policy == ConflictPolicy.LOCAL_WINS:
        return "local"
    if policy == ConflictPolicy.REMOTE_WINS:
        return "remote"
    return "local" if local.mtime_ns > _ns(remote.mtime or remote.written_at) else "remote"


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _percent(part: int, whole: int) -> str:
    """`part/whole` as a percentage, rounded *up* to one decimal (never down to the limit)."""
    tenths = -(-part * 1000 // whole) if whole else 1000
    return f"{tenths // 10}.{tenths % 10}".removesuffix(".0")
