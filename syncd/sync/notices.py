"""What a pass leaves out of sync with no work queued for it, as `Notice`s (`syncd.state.notices`).

Pure: each function reads what the pass looked at (the scan, the listing, the journal, the plan)
and says which names stay out of sync and why, in the words `syncd status --files` shows. The
pass (`syncd.sync.passes`) records them, and logs each once per process.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from syncd.config import FolderConfig
from syncd.core.model import ActionKind, BaseEntry, Plan
from syncd.core.names import normalize
from syncd.local.scan import LocalListing
from syncd.remote.base import RemoteFile
from syncd.state.notices import Notice, NoticeState

#: Why a local deletion was not sent, by what kept it from the remote.
NOT_SUPPORTED = "deleted locally; this remote cannot delete files, so its copy stays"
DELETE_FALSE = "deleted locally; delete = false keeps the remote copy"
DELETE_FALSE_THEN = "deleted locally while delete was false; the remote copy stays"


def skipped(folder: FolderConfig, listing: LocalListing) -> list[Notice]:
    """The entries the scan skipped: links, FIFOs, sockets, devices, subfolders of a folder that
    syncs its top level only, names that cannot be paths. The directory `after_upload` moves
    delivered files to is syncd's own, not a skipped entry."""
    delivered = _delivered_top(folder)
    return [
        Notice(spelled, NoticeState.SKIPPED, skip_reason(reason))
        for spelled, reason in listing.skipped.items()
        if normalize(spelled) != delivered
    ]


def shadowed(listing: LocalListing) -> list[Notice]:
    """The names kept but not synced: another entry has the same name in another spelling."""
    return [Notice(spelled, NoticeState.SKIPPED, reason) for spelled, reason in listing.shadowed.items()]


def unreadable(listing: LocalListing) -> list[Notice]:
    """What the scan could not read (neither uploaded nor taken as deleted until it can)."""
    return [Notice(name, NoticeState.FAILED, reason) for name, reason in listing.errors.items()]


def skip_reason(reason: str) -> str:
    """The scan's reason for skipping an entry, with what the user may want to know about it."""
    if reason == "directory":
        return "directory: this folder syncs its top level only"
    if reason == "symbolic link":
        return "symbolic link: links are never followed"
    if reason.startswith("unsafe name"):
        return reason
    return f"{reason}: only regular files are synced"


def held_back(folder: FolderConfig, plan: Plan) -> list[Notice]:
    """The deletions `max_delete` held back, each with the way to let them through."""
    if not plan.held_back:
        return []
    needed = plan.max_delete_needed or 100
    how = f"run `syncd reconcile --folder {shlex.quote(folder.name)} --max-delete {needed}` to let them through"
    reason = f"{plan.warning}; {how}" if plan.warning else how
    return [Notice(action.spelled, NoticeState.HELD_BACK, reason) for action in plan.held_back]


@dataclass(frozen=True, slots=True)
class KeptRemotely:
    """A file deleted locally whose remote copy stays: the journal's row of it, and why."""

    entry: BaseEntry
    state: NoticeState
    reason: str

    @property
    def spelled(self) -> str:
        return self.entry.local_name or self.entry.name


def kept_remotely(
    folder: FolderConfig,
    can_delete: bool,
    local: Mapping[str, object],
    remote: Iterable[RemoteFile] | None,
    base: Mapping[str, BaseEntry],
    plan: Plan,
    names: Collection[str] | None,
) -> list[KeptRemotely]:
    """Files deleted locally that stay on the remote with nothing queued to change that: the
    remote cannot delete (SPEC, "BeRay local deletions": "not supported by this remote"), or
    `delete = false` keeps them ("skipped"). Found both in the pass that sees the deletion
    (the journal still has the local side; the plan only records it) and in every later one
    (the journal remembers it), for as long as the remote copy is the one the journal knows.

    Not in `download` mode (local deletions are never sent there, by design) nor for drop-ins
    that `after_upload` removed (delivered, not deleted).
    """
    if folder.mode == "download" or folder.after_upload.action != "keep":
        return []
    there = None if remote is None else {normalize(f.path) for f in remote}
    acted = {action.name: action.kind for action in plan.actions}
    held = {action.name for action in plan.held_back}
    found: list[KeptRemotely] = []
    for name, entry in base.items():
        if names is not None and name not in names:
            continue
        if name in local or not entry.has_remote or entry.dropped or name in held:
            continue
        if there is not None and name not in there:
            continue  # gone there too: nothing stays
        if acted.get(name, ActionKind.RECORD) is not ActionKind.RECORD:
            continue  # work is queued for it (the remote copy changed: it comes back)
        if not can_delete:
            found.append(KeptRemotely(entry, NoticeState.UNSUPPORTED, NOT_SUPPORTED))
        else:
            why = DELETE_FALSE if not folder.delete else DELETE_FALSE_THEN
            found.append(KeptRemotely(entry, NoticeState.SKIPPED, why))
    return found


def _delivered_top(folder: FolderConfig) -> str | None:
    """The top-level directory `after_upload = "move:DIR"` delivers into (NFC), if any."""
    after = folder.after_upload
    if after.action != "move" or not after.dir:
        return None
    return normalize(after.dir.split("/", 1)[0])
