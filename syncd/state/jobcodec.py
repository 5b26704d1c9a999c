"""Actions as queue payloads: `Action` <-> JSON text, losslessly, across releases.

A payload carries its format version (`"v"`). Rows written by an earlier
release stay in a user's queue through an upgrade, so `loads` reads every
version ever written; a field a version lacks takes its default. A payload from
a newer release (or not an action at all) raises `PayloadError`, which fails
that one job with the reason instead of stopping a worker.

=== =========================================================================
v   what changed
=== =========================================================================
1   (no "v" key) the first release
2   local spelling, journal spellings and floor, `racing`, `duplicates`
3   `renamed_from` (the RENAME kind)
=== =========================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from syncd.core.model import Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.remote.base import FileStatus, RemoteFile

VERSION = 3


class PayloadError(ValueError):
    """A queue payload this release cannot read."""


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _remote(remote: RemoteFile) -> dict[str, Any]:
    return {**asdict(remote), "upload_at": _dt(remote.upload_at), "status": remote.status.value}


def _parse_remote(raw: dict[str, Any]) -> RemoteFile:
    return RemoteFile(**{**raw, "upload_at": _parse_dt(raw["upload_at"]), "status": FileStatus(raw["status"])})


def _base(base: BaseEntry) -> dict[str, Any]:
    floor = base.remote_floor
    return {
        **asdict(base),
        "remote_upload_at": _dt(base.remote_upload_at),
        "remote_floor": {"upload_at": _dt(floor.upload_at), "id": floor.id} if floor else None,
    }


def _parse_base(raw: dict[str, Any]) -> BaseEntry:
    floor = raw.get("remote_floor")
    at = _parse_dt(floor["upload_at"]) if floor else None
    return BaseEntry(**{
        **raw,
        "remote_upload_at": _parse_dt(raw["remote_upload_at"]),
        "remote_floor": Floor(at, floor["id"]) if floor and at else None,
    })


def dumps(action: Action) -> str:
    """The JSON text a queue row carries for `action`."""
    return json.dumps(
        {
            "v": VERSION,
            "kind": action.kind.value,
            "name": action.name,
            "local": asdict(action.local) if action.local else None,
            "remote": _remote(action.remote) if action.remote else None,
            "base": _base(action.base) if action.base else None,
            "supersedes": action.supersedes,
            "older_ids": list(action.older_ids),
            "winner": action.winner,
            "reason": action.reason,
            "racing": [_remote(f) for f in action.racing],
            "duplicates": list(action.duplicates),
            "renamed_from": _base(action.renamed_from) if action.renamed_from else None,
        },
        ensure_ascii=False,
    )


def loads(text: str) -> Action:
    """The `Action` a queue row carries, whichever release wrote it."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise PayloadError(f"queued work is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PayloadError("queued work is not an action")
    version = raw.get("v", 1)
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise PayloadError(f"queued work has format version {version!r}; this syncd reads 1 to {VERSION}")
    try:
        return Action(
            kind=ActionKind(raw["kind"]),
            name=raw["name"],
            local=LocalFile(**raw["local"]) if raw["local"] else None,
            remote=_parse_remote(raw["remote"]) if raw["remote"] else None,
            base=_parse_base(raw["base"]) if raw["base"] else None,
            supersedes=raw["supersedes"],
            older_ids=tuple(raw["older_ids"]),
            winner=raw["winner"],
            reason=raw["reason"],
            racing=tuple(_parse_remote(f) for f in raw.get("racing", ())),
            duplicates=tuple(raw.get("duplicates", ())),
            renamed_from=_parse_base(raw["renamed_from"]) if raw.get("renamed_from") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"queued work cannot be read: {type(exc).__name__}: {exc}") from None
