"""Local renames, paired in one pass (SPEC, "Renames"). Pure: values in, values out.

Local renames (SPEC, "Renames") are paired before that, in modes that send local
changes: a *vanished* name (journal row with both sides, not a drop-in removal,
local file gone, remote current version the journal's own) and an *appeared*
name (local file, no journal row, no remote version) with the same size and
sha256 (the scan's and the journal's local sha256) become one RENAME on the
appeared name, and the vanished name gets no action of its own. Several
candidates with one content pair in name order on both sides, so the result
does not depend on input order. With `only`, both names must be in it.

"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from syncd.core.model import BaseEntry, FolderPolicy, LocalFile, Mode
from syncd.core.versions import RemoteView, remote_view
from syncd.remote.base import RemoteFile


def pair_renames(
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
