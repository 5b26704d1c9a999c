"""What the last pass over a folder left out of sync without queuing any work for it.

The queue says what is pending, running or failed; these rows say the rest of what `syncd
status --files` lists (SPEC): entries the scan skipped (a symbolic link, a FIFO, a subfolder
of a folder that syncs its top level only), names it could not read, deletions `max_delete`
held back, local deletions the remote keeps (it cannot delete, or `delete = false`).

A pass writes them (`replace_notices`), never a dry run: a full pass replaces every row of its
folder, a pass over some names just the rows of those names (and of the paths below a name
that is a directory). Rows are keyed by the name as spelled on the local disk; `since` is when
the name was first seen in its state, kept while it stays so.

A name that is not valid UTF-8 on disk (decoded with surrogateescape) cannot be SQLite text:
names are stored as their bytes on disk, and a reason's lone surrogates as visible escapes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from syncd.core.names import normalize
from syncd.state.db import State


class NoticeState(StrEnum):
    """Why a name is out of sync with no work queued for it (`syncd status --files` words)."""

    SKIPPED = "skipped"
    FAILED = "failed"
    HELD_BACK = "deletion held back"
    UNSUPPORTED = "not supported by this remote"


@dataclass(frozen=True, slots=True)
class Notice:
    """One name a pass left out of sync, and why. `name` is spelled as on the local disk."""

    name: str
    state: NoticeState
    reason: str
    since: str | None = None  # ISO 8601; set when read back


def replace_notices(
    state: State, folder: str, notices: Iterable[Notice], *, now: str, keys: Collection[str] | None = None
) -> None:
    """Record `notices` as what a pass over `folder` found, in one transaction: in place of
    every row of the folder (`keys` None: a full pass), or of the rows of `keys` (keys, NFC)
    and of the paths below them."""
    fresh = {notice.name: notice for notice in notices}
    with state.transaction() as conn:
        old = {
            _loaded(name): (NoticeState(st) if st in _STATES else None, since)
            for name, st, since in conn.execute("SELECT name, state, since FROM notices WHERE folder = ?", (folder,))
        }
        gone = [name for name in old if keys is None or name in fresh or _covered(normalize(name), keys)]
        conn.executemany(
            "DELETE FROM notices WHERE folder = ? AND CAST(name AS BLOB) = ?",
            ((folder, _stored(name)) for name in gone),
        )
        conn.executemany(
            "INSERT INTO notices (folder, name, state, reason, since) VALUES (?, ?, ?, ?, ?)",
            (
                (folder, _stored(n.name), n.state.value, _text(n.reason),
                 old[n.name][1] if n.name in old and old[n.name][0] is n.state else now)
                for n in fresh.values()
            ),
        )


def read_notices(state: State, folder: str) -> list[Notice]:
    """Every row of `folder`, by name."""
    rows = state.fetchall(
        "SELECT name, state, reason, since FROM notices WHERE folder = ? ORDER BY name", (folder,)
    )
    return [Notice(_loaded(name), NoticeState(st) if st in _STATES else NoticeState.SKIPPED, reason, since)
            for name, st, reason, since in rows]


def _stored(name: str) -> bytes:
    """A name as stored: its bytes on disk (any name, UTF-8 or not)."""
    return name.encode("utf-8", "surrogateescape")


def _loaded(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _text(reason: str) -> str:
    """A reason as SQLite text: lone surrogates (from a name that is not UTF-8) as escapes."""
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")


_STATES = frozenset(s.value for s in NoticeState)


def _covered(key: str, keys: Collection[str]) -> bool:
    """`key` is one of `keys`, or below one of them (a directory's key stands for its tree)."""
    if key in keys:
        return True
    cut = key.rfind("/")
    while cut > 0:
        key = key[:cut]
        if key in keys:
            return True
        cut = key.rfind("/")
    return False
