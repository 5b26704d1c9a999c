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

Local renames are paired first (`syncd.core.renames`).

A name's remote side is first read from all its versions (`syncd.core.versions`).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from syncd.core.model import (
    Action,
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    FolderPolicy,
    LocalFile,
    Mode,
    Plan,
    Winner,
    sides_synced,
)
from syncd.core.names import unsafe_reason
from syncd.core.paths import path_reason
from syncd.core.renames import pair_renames
from syncd.core.versions import RemoteView, content_key, ns, order, remote_view, versions_by_path
from syncd.core.words import counted
from syncd.remote.base import RemoteFile

MARKER_MISSING = "folder marker .syncd/ missing: folder paused (unmounted disk or wrong path?)"


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
    versions = versions_by_path(remote)
    actions: list[Action] = []
    confirmed: list[tuple[str, RemoteFile]] = []
    unchanged = 0
    names = set(local) | set(versions) | set(base) if only is None else set(only)
    renamed = pair_renames(local, versions, base, policy, names)
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
        if action is None and entry is not None and entry.remote_floor is not None and view.current is not None \
                and view.current.version == entry.remote_version:  # our upload, alone above its floor: no race
            left = _superseded_left(entry, versions.get(name, ()), view, policy)
            if left is None:
                confirmed.append((name, view.current))
            else:  # the version our upload replaced is still there: its deletion failed; now it goes
                action = Action(ActionKind.RECORD, name, local.get(name), view.current, entry, supersedes=left)
        if action is not None:
            actions.append(action)
        present = name in local or view.current is not None
        if present and (action is None or action.report_action is None):
            unchanged += 1

    deletions = sum(1 for action in actions if action.is_deletion)
    tracked = sum(1 for entry in base.values() if entry.tracked)
    # Invariant: every deletion needs a base row with both sides, so
    # deletions <= tracked and max_delete = 100 never trips.
    if deletions and deletions * 100 > policy.max_delete * tracked:
        kept = tuple(action for action in actions if not action.is_deletion)
        held_back = tuple(action for action in actions if action.is_deletion)
        warning = (
            f"pass would delete {deletions} of {counted(tracked, 'tracked file')} "
            f"({_percent(deletions, tracked)}% > max_delete {policy.max_delete}%); deleted nothing"
        )
        return Plan(
            kept, warning=warning, skipped_deletions=deletions, unchanged=unchanged, confirmed=tuple(confirmed),
            held_back=held_back, max_delete_needed=min(100, -(-deletions * 100 // tracked)) if tracked else 100,
        )
    return Plan(tuple(actions), unchanged=unchanged, confirmed=tuple(confirmed))


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
            f.version for f in history if f.version in view.older and content_key(f) == (local.size, local.sha256)
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


def _superseded_left(
    entry: BaseEntry, files: Sequence[RemoteFile], view: RemoteView, policy: FolderPolicy
) -> str | None:
    """The version an upload of ours replaced, when it is still listed: exactly at the floor the
    upload left (the replaced version's own place in the order), so its deletion after the
    upload failed, and no later pass would otherwise take it for more than history. Never in
    an additive (drop-in) folder: there every delivery stays."""
    floor = entry.remote_floor
    if floor is None or policy.additive or policy.mode is Mode.DOWNLOAD:
        return None
    mark = (ns(floor.written_at), floor.seq)
    for file in files:
        if file.version in view.older and order(file) == mark and file.version != entry.remote_version:
            return file.version
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
    return "local" if local.mtime_ns > ns(remote.mtime or remote.written_at) else "remote"


def _percent(part: int, whole: int) -> str:
    """`part/whole` as a percentage, rounded *up* to one decimal (never down to the limit)."""
    tenths = -(-part * 1000 // whole) if whole else 1000
    return f"{tenths // 10}.{tenths % 10}".removesuffix(".0")
