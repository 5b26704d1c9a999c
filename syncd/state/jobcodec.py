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
4   syncd's own words: remote files as (path, version, size, sha256, mtime,
    written_at, seq), journal rows with `remote_version`/`remote_sha256`/
    `remote_written_at`, versions as text (`supersedes`, `older`,
    `duplicates`). Versions 1-3 were written against a BDD chat: an id is
    read as its decimal text, a hashcode as the sha256 it proves.
=== =========================================================================
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from syncd.core.model import Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.remote.base import EPOCH, RemoteFile

VERSION = 4


#: What a version 1-3 payload's `hashcode` must look like to prove content (a sha256).
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_of_hashcode(hashcode: str | None) -> str | None:
    """The sha256 a version 1-3 payload's hashcode proves, or None."""
    text = (hashcode or "").lower()
    return text if _SHA256.fullmatch(text) else None


class PayloadError(ValueError):
    """A queue payload this release cannot read."""


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _remote(remote: RemoteFile) -> dict[str, Any]:
    return {**asdict(remote), "mtime": _dt(remote.mtime), "written_at": _dt(remote.written_at)}


def _parse_remote(raw: dict[str, Any], version: int) -> RemoteFile:
    if version < 4:  # a chat file: id, filename, size, hashcode, upload_at, status
        return RemoteFile(
            path=raw["filename"], version=str(raw["id"]), size=raw["size"],
            sha256=sha256_of_hashcode(raw["hashcode"]), written_at=_parse_dt(raw["upload_at"]) or EPOCH,
            seq=int(raw["id"]),
        )
    return RemoteFile(**{**raw, "mtime": _parse_dt(raw["mtime"]), "written_at": _parse_dt(raw["written_at"])})


def _base(base: BaseEntry) -> dict[str, Any]:
    floor = base.remote_floor
    return {
        **asdict(base),
        "remote_written_at": _dt(base.remote_written_at),
        "remote_floor": {"written_at": _dt(floor.written_at), "seq": floor.seq} if floor else None,
    }


def _parse_base(raw: dict[str, Any], version: int) -> BaseEntry:
    raw = dict(raw)
    floor = raw.pop("remote_floor", None)
    if version < 4:
        remote_id = raw.pop("remote_id")
        raw["remote_version"] = None if remote_id is None else str(remote_id)
        raw["remote_sha256"] = sha256_of_hashcode(raw.pop("remote_hashcode"))
        raw["remote_written_at"] = raw.pop("remote_upload_at")
        at = _parse_dt(floor["upload_at"]) if floor else None
        parsed_floor = Floor(at, floor["id"]) if floor and at else None
    else:
        at = _parse_dt(floor["written_at"]) if floor else None
        parsed_floor = Floor(at, floor["seq"]) if floor and at else None
    return BaseEntry(**{
        **raw,
        "name": RelPath.parse(raw["name"]),
        "remote_written_at": _parse_dt(raw["remote_written_at"]),
        "remote_floor": parsed_floor,
    })


def _parse_local(raw: dict[str, Any]) -> LocalFile:
    return LocalFile(**{**raw, "name": RelPath.parse(raw["name"])})


def _versions(values: list[Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


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
            "older": list(action.older),
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
        supersedes = raw["supersedes"]
        return Action(
            kind=ActionKind(raw["kind"]),
            name=raw["name"],
            local=_parse_local(raw["local"]) if raw["local"] else None,
            remote=_parse_remote(raw["remote"], version) if raw["remote"] else None,
            base=_parse_base(raw["base"], version) if raw["base"] else None,
            supersedes=None if supersedes is None else str(supersedes),
            older=_versions(raw["older_ids"] if version < 4 else raw["older"]),
            winner=raw["winner"],
            reason=raw["reason"],
            racing=tuple(_parse_remote(f, version) for f in raw.get("racing", ())),
            duplicates=_versions(raw.get("duplicates", [])),
            renamed_from=_parse_base(raw["renamed_from"], version) if raw.get("renamed_from") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PayloadError(f"queued work cannot be read: {type(exc).__name__}: {exc}") from None
