"""A BeRay directory listing, read loosely (protocol notes, "The listing").

One level per call; a directory may also arrive with its items nested under ``children``. Items
are dicts with ``name`` and/or ``path`` (relative to the work folder), a ``type`` (``file``;
``directory``/``dir``/``folder``; anything else is skipped), and optional ``size`` and
``modified_at`` (seconds, milliseconds or ISO 8601). Unknown fields are ignored. An item whose
path does not lie under the listed directory is dropped and said, never followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from syncd.remote.loose import size_of, time_of

_DIRS = {"directory", "dir", "folder"}


@dataclass(frozen=True, slots=True)
class Item:
    path: str  # relative to the work folder
    is_dir: bool
    size: int | None
    mtime: datetime | None
    children: list[object] | None  # nested items, when the listing gave them


def items(payload: object, parent: str) -> Iterator[Item | str]:
    """The items of one listed directory `parent` ("" = the work folder); a string for each
    item dropped (why)."""
    listed = payload if isinstance(payload, list) else _inner(payload)
    for raw in listed:
        yield _item(raw, parent)


def _inner(payload: object) -> list[object]:
    if isinstance(payload, dict):
        for key in ("items", "entries", "files", "children", "data"):
            value = payload.get(key)
            if isinstance(value, list):
                return value
    return []


def _item(raw: object, parent: str) -> Item | str:
    if not isinstance(raw, dict):
        return "an item that is not an object"
    name, path = raw.get("name"), raw.get("path")
    if isinstance(path, str) and path:
        full = path.strip("/") if not path.startswith("/") else path
    elif isinstance(name, str) and name:
        full = f"{parent}/{name}" if parent else name
    else:
        return "an item without a name or path"
    if full.startswith("/") or not _under(full, parent):
        return f"{full!r} is not under {parent or '.'!r}"
    kind = raw.get("type")
    is_dir = isinstance(kind, str) and kind.lower() in _DIRS
    if not is_dir and kind not in (None, "file"):
        return f"{full!r} is a {kind}, not a file"
    children = raw.get("children")
    return Item(full, is_dir, size_of(raw.get("size")), time_of(raw.get("modified_at")),
                children if isinstance(children, list) else None)


def _under(path: str, parent: str) -> bool:
    rest = path[len(parent) + 1:] if parent else path
    if parent and not path.startswith(parent + "/"):
        return False
    return bool(rest) and "/" not in rest and rest not in (".", "..")
