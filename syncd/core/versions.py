"""A path's remote versions, read against the journal's floor (SPEC, "Remote duplicates",
"Concurrent writers"). Pure: values in, values out.

A name's remote side is first read from all its versions (`remote_view`; a
remote that overwrites in place lists one per path, one that keeps versions
side by side may list several):
versions with identical bytes are one file (the newest stays, the others are
`duplicates` any action deletes afterwards); the newest survivor is current;
survivors above the journal's floor other than the current one lost a race to
it (two-way folders: RACE, before the table); the rest is history, left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.core.model import BaseEntry, Floor, FolderPolicy, Mode
from syncd.core.names import normalize
from syncd.remote.base import RemoteFile

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def remote_changes(
    remote: Sequence[RemoteFile], base: Mapping[str, BaseEntry], policy: FolderPolicy
) -> set[str]:
    """Names whose remote side is not what the journal knows: a current version other than the
    recorded one (new, replaced or gone), a race, duplicates to remove, or a floor to confirm.
    The poller plans just these."""
    versions = versions_by_path(remote)
    changed: set[str] = set()
    for name, files in versions.items():
        entry = base.get(name)
        if len(files) == 1 and entry is not None and entry.remote_floor is None:
            # One version, no floor: no race, no duplicate; what `remote_view` would say in short.
            if files[0].version != entry.remote_version:
                changed.add(name)
            continue
        view = remote_view(files, entry, policy)
        current = view.current.version if view.current else None
        # A floor left by an upload of ours is confirmed once a listing shows it alone.
        if entry is None or current != entry.remote_version or view.racing or view.duplicates or entry.remote_floor:
            changed.add(name)
    changed.update(name for name, entry in base.items() if entry.has_remote and name not in versions)
    return changed


def suspects(remote: Sequence[RemoteFile], recorded: Mapping[str, tuple[str | None, bool]]) -> set[str]:
    """The names `remote_changes` may find changed, judged from the journal's recorded remote
    versions alone (`recorded`: name -> (remote version, whether it has a floor)), no base
    entry made: every name but those listed in one version, the recorded one, with no floor.
    `remote_changes` over just these names' versions and journal rows says which changed."""
    versions: dict[str, int] = {}
    single: dict[str, str] = {}
    for file in remote:
        name = normalize(file.path)
        versions[name] = versions.get(name, 0) + 1
        single[name] = file.version
    found = {name for name in recorded if name not in versions and recorded[name][0] is not None}
    for name, count in versions.items():
        known = recorded.get(name)
        if count != 1 or known is None or known[1] or known[0] != single[name]:
            found.add(name)
    return found


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


def versions_by_path(remote: Sequence[RemoteFile]) -> dict[str, list[RemoteFile]]:
    """Every version of each path, keyed in NFC, oldest first (by `written_at`, then `seq`)."""
    versions: dict[str, list[RemoteFile]] = {}
    for file in remote:
        versions.setdefault(normalize(file.path), []).append(file)
    for files in versions.values():
        if len(files) > 1:
            files.sort(key=order)
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
    if len(files) == 1:  # the common case, in short: alone, it is current, with no race or duplicate
        return RemoteView(files[0])
    survivors: list[RemoteFile] = []
    duplicates: list[str] = []
    kept: set[tuple[int, str]] = set()
    for file in reversed(files):  # newest first: the newest of identical versions stays
        key = content_key(file)
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
        mark = (ns(floor.written_at), floor.seq)
        racing = tuple(f for f in survivors[:-1] if order(f) > mark)
    history = tuple(f.version for f in survivors[:-1] if f not in racing)
    return RemoteView(current, history, racing, tuple(reversed(duplicates)))


def content_key(file: RemoteFile) -> tuple[int, str] | None:
    """What identifies a version's content, when the remote proves it (a sha256)."""
    return (file.size, file.sha256) if file.sha256 is not None else None


def order(file: RemoteFile) -> tuple[int, int]:
    return ns(file.written_at), file.seq


def ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
