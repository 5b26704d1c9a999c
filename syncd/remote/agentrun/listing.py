"""An AgentRun listing, read loosely (protocol notes, "Entries and the listing").

The service pins no shape, so this accepts a bare list or one under ``entries``, ``files``,
``items``, ``children`` or ``data``; nested ``children`` or flat full paths; ``type`` as
``file``/``directory``/``dir`` or ``isDir``/``is_dir``; ``size`` and ``mtime`` optional, the
latter in seconds, milliseconds or ISO 8601; a missing ``path`` built from the parent and
``name``; unknown fields ignored. Every entry must lie under the listed directory; one that does
not is dropped (and said), never followed. Names are not judged here: the planner refuses an
unsafe one before anything touches the disk, and reports it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from syncd.remote.loose import size_of, time_of

_LIST_KEYS = ("entries", "files", "items", "children", "data")
_DIR_TYPES = {"directory", "dir", "folder"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as the service listed it: its absolute path, whether it is a directory (None:
    neither a file nor a directory), its size and mtime when given, and whether its children
    were listed (a directory at the depth limit has none: list it again)."""

    path: str
    is_dir: bool | None
    size: int | None
    mtime: datetime | None
    listed: bool


def entries(payload: object, root: str) -> Iterator[Entry | str]:
    """Every entry under `root` in `payload`, depth first; a string for each one dropped (why)."""
    yield from _walk(_items(payload), root, root)


def one_entry(payload: object, path: str) -> Entry | None:
    """A stat answer as an Entry (None when it is not one)."""
    if isinstance(payload, dict):
        inner = payload.get("data")
        item = inner if isinstance(inner, dict) and ("path" in inner or "name" in inner) else payload
        found = _entry(item, posixpath.dirname(path), path)
        return found if isinstance(found, Entry) else None
    return None


def _items(payload: object) -> list[object]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in _LIST_KEYS:
            value = payload.get(key)
            if isinstance(value, list):
                return value
            if isinstance(value, dict):
                inner = _items(value)
                if inner:
                    return inner
    return []


def _walk(items: list[object], parent: str, root: str) -> Iterator[Entry | str]:
    for item in items:
        found = _entry(item, parent, None)
        if isinstance(found, str):
            yield found
            continue
        if not _under(found.path, root):
            yield f"{found.path!r} is not under {root!r}"
            continue
        yield found
        children = item.get("children") if isinstance(item, dict) else None
        if found.is_dir and isinstance(children, list):
            yield from _walk(children, found.path, root)


def _entry(item: object, parent: str, path: str | None) -> Entry | str:
    if not isinstance(item, dict):
        return "an entry that is not an object"
    raw = item.get("path")
    name = item.get("name")
    if isinstance(raw, str) and raw:
        full = raw if raw.startswith("/") else posixpath.join(parent, raw)
    elif isinstance(name, str) and name:
        full = posixpath.join(parent, name)
    elif path is not None:
        full = path
    else:
        return "an entry without a path or name"
    return Entry(full, _is_dir(item), size_of(item.get("size")), time_of(item.get("mtime")),
                 isinstance(item.get("children"), list))


def _is_dir(item: dict[str, object]) -> bool | None:
    for key in ("isDir", "is_dir"):
        if isinstance(item.get(key), bool):
            return bool(item[key])
    kind = item.get("type")
    if isinstance(kind, str):
        if kind.lower() in _DIR_TYPES:
            return True
        if kind.lower() == "file":
            return False
        return None  # symlink, other: not synced
    return False






def _under(path: str, root: str) -> bool:
    """True when `path` is strictly inside `root`, spelled plainly (no ``.``/``..`` on the way)."""
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        return False
    rest = path[len(prefix):]
    return bool(rest) and all(part not in ("", ".", "..") for part in rest.split("/"))
