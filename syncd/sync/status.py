"""The status document (SPEC, `status --json`): per folder, what is tracked, queued, failed and
why, and with `files` every file that is not in sync, with its state, reason and next try.

Read from the state database alone (plus a look at the folder for its files and its trash): no
remote is asked anything, so it answers while the daemon works, and the daemon can serve the
same document itself. Nothing here writes.

A file is out of sync when the queue holds work for it (`pending`, `running`, `failed`, or
`conflicted` when that work resolves a conflict) or when the last pass left it out with no work
queued (`syncd.state.notices`: `skipped`, `failed`, `deletion held back`, `not supported by this
remote`). Names are as spelled on the local disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.config import Config, FolderConfig
from syncd.core.model import Action, ActionKind
from syncd.local.trash import trash_size
from syncd.remote import kinds
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.notices import read_notices
from syncd.state.queue_rows import Job, JobState, QueueReads

#: The states of `files_out_of_sync` entries besides the notices' own (`NoticeState`).
PENDING, RUNNING, FAILED, CONFLICTED = "pending", "running", "failed", "conflicted"

_CONFLICTS = frozenset({ActionKind.CONFLICT.value, ActionKind.COMPARE.value, ActionKind.RACE.value})


def status_doc(
    config: Config,
    state: State | None,
    *,
    folders: Collection[str] | None = None,
    files: bool = False,
    daemon_pid: int | None = None,
    held: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `status --json` document of `folders` (names; None: every folder; an unknown name is
    a ConfigError listing the known ones). `state` None: no state database yet (nothing synced).
    `daemon_pid`: the process holding the state dir, if any. `held`: the folders the running
    daemon holds, with the reason (only the daemon knows; `held` is null otherwise)."""
    chosen = [config.folder(name) for name in dict.fromkeys(folders)] if folders else list(config.folders)
    reads = _Reads(state) if state is not None else None
    return {
        "daemon": {"running": daemon_pid is not None, "pid": daemon_pid},
        "folders": [
            {**_folder_doc(config, folder, reads, files=files), "held": (held or {}).get(folder.name)}
            for folder in chosen
        ],
    }


class _Reads(QueueReads):
    """The queue's reads over a state opened for reading."""

    def __init__(self, state: State) -> None:
        self.state = state


def _folder_doc(config: Config, folder: FolderConfig, reads: _Reads | None, *, files: bool) -> dict[str, Any]:
    counts = reads.counts(folder.name) if reads else {}
    failed = counts.get(JobState.FAILED, 0)
    doc: dict[str, Any] = {
        "name": folder.name,
        "path": str(folder.path),
        "remote": folder.remote,
        "place": kinds.get(config.remotes[folder.remote].kind).describe_place(folder.place),
        "mode": folder.mode,
        "files": _local_files(reads.state, folder) if reads else 0,
        "pending": counts.get(JobState.PENDING, 0),
        "running": counts.get(JobState.RUNNING, 0),
        "failed": failed,
        "last_pass": None,
        "last_error": None,
        "trash_bytes": trash_size(folder.path),
    }
    jobs = reads.jobs(folder.name) if reads and files else None
    if reads:
        fs = reads.state.folder_status(folder.name)
        doc["last_pass"] = fs.last_pass
        doc["last_error"] = fs.paused or reads.state.remote_paused(folder.remote) or fs.last_error
        if doc["last_error"] is None and failed:
            doc["last_error"] = _newest_failure(jobs if jobs is not None else reads.failed(folder.name))
    if files:
        entries = [_job_entry(job) for job in jobs or ()]
        if reads:
            entries += [{"name": n.name, "state": n.state.value, "reason": n.reason, "next_try": None}
                        for n in read_notices(reads.state, folder.name)]
        doc["files_out_of_sync"] = sorted(entries, key=lambda e: (e["name"], e["state"]))
    return doc


def _local_files(state: State, folder: FolderConfig) -> int:
    """Tracked files that are on the local disk now: journal rows with a local side whose file
    is there (a file deleted locally is not counted, whether or not a pass has seen it yet)."""
    rows = state.fetchall(
        "SELECT name, local_name FROM journal WHERE folder = ? AND local_sha256 IS NOT NULL", (folder.name,)
    )
    root = os.path.join(folder.path, "")
    count = 0
    for name, local_name in rows:
        try:
            if stat.S_ISREG(os.lstat(root + (local_name or name)).st_mode):
                count += 1
        except OSError:
            continue
    return count


def _newest_failure(failed: list[Job]) -> str:
    """The error of the most recently failed job of `failed` (all of one folder)."""
    rows = [job for job in failed if job.state is JobState.FAILED]
    newest = max(rows, key=lambda job: job.updated, default=None)
    if newest is None:
        return "some jobs failed"
    return newest.last_error or f"{newest.name}: failed"


def _job_entry(job: Job) -> dict[str, Any]:
    """A queue row as a `files_out_of_sync` entry."""
    try:
        action: Action | None = jobcodec.loads(job.payload)
    except jobcodec.PayloadError:
        action = None
    name = action.spelled if action is not None else job.name
    what = describe(action) if action is not None else job.kind.replace("_", " ")
    conflict = job.kind in _CONFLICTS
    if job.state is JobState.RUNNING:
        return {"name": name, "state": RUNNING, "reason": what, "next_try": None}
    if job.state is JobState.FAILED:  # waits for `syncd retry` (or a change to the file)
        error = job.last_error or "failed"
        return {"name": name, "state": CONFLICTED if conflict else FAILED,
                "reason": f"{what}; it failed: {error}" if conflict else error, "next_try": None}
    reason = f"{what}; last try failed: {job.last_error}" if job.last_error else what
    return {"name": name, "state": CONFLICTED if conflict else PENDING, "reason": reason,
            "next_try": datetime.fromtimestamp(job.next_try, UTC).isoformat(timespec="seconds")}


def describe(action: Action) -> str:
    """What the queued `action` will do, in a few words."""
    kind = action.kind
    had_local = action.base is not None and action.base.has_local
    had_remote = action.base is not None and action.base.has_remote
    if kind is ActionKind.UPLOAD:
        return "upload (changed locally)" if had_local else "upload (new locally)"
    if kind is ActionKind.DOWNLOAD:
        return "download (changed on the remote)" if had_remote else "download (new on the remote)"
    if kind is ActionKind.DELETE_LOCAL:
        return "move to the trash (deleted on the remote)"
    if kind is ActionKind.DELETE_REMOTE:
        return "delete the remote copy (deleted locally)"
    if kind in (ActionKind.CONFLICT, ActionKind.COMPARE):
        outcome = {
            "both": "both kept (the local version as a conflicted copy)",
            "local": "the local version wins",
            "remote": "the remote version wins (the local one goes to the trash)",
        }.get(action.winner or "both", "both kept")
        if kind is ActionKind.COMPARE:
            return f"changed on both sides: contents to compare; if they differ, {outcome}"
        return f"changed on both sides: {outcome}"
    if kind is ActionKind.RACE:
        return "several versions written on the remote at once: each older one kept as a conflicted copy"
    if kind is ActionKind.RENAME:
        return f"rename from {action.renamed_spelled}"
    if kind is ActionKind.RECORD:
        return "record as in sync (no transfer)"
    if kind is ActionKind.FORGET:
        return "forget (gone from both sides)"
    return action.reason or "cannot be synced"
