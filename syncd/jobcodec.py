"""Actions as queue payloads: `Action` <-> JSON text, losslessly."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from syncd.model import Action, ActionKind, BaseEntry, LocalFile
from syncd.remote.base import FileStatus, RemoteFile


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def dumps(action: Action) -> str:
    """The JSON text a queue row carries for `action`."""
    return json.dumps(
        {
            "kind": action.kind.value,
            "name": action.name,
            "local": asdict(action.local) if action.local else None,
            "remote": (
                {**asdict(action.remote), "upload_at": _dt(action.remote.upload_at),
                 "status": action.remote.status.value}
                if action.remote else None
            ),
            "base": (
                {**asdict(action.base), "remote_upload_at": _dt(action.base.remote_upload_at)}
                if action.base else None
            ),
            "supersedes": action.supersedes,
            "older_ids": list(action.older_ids),
            "winner": action.winner,
            "reason": action.reason,
        },
        ensure_ascii=False,
    )


def loads(text: str) -> Action:
    """The `Action` a queue row carries."""
    raw: dict[str, Any] = json.loads(text)
    remote = raw["remote"]
    base = raw["base"]
    return Action(
        kind=ActionKind(raw["kind"]),
        name=raw["name"],
        local=LocalFile(**raw["local"]) if raw["local"] else None,
        remote=(
            RemoteFile(**{**remote, "upload_at": _parse_dt(remote["upload_at"]),
                          "status": FileStatus(remote["status"])})
            if remote else None
        ),
        base=BaseEntry(**{**base, "remote_upload_at": _parse_dt(base["remote_upload_at"])}) if base else None,
        supersedes=raw["supersedes"],
        older_ids=tuple(raw["older_ids"]),
        winner=raw["winner"],
        reason=raw["reason"],
    )
