"""A BeRay listing is read loosely, one level at a time, and nothing outside the listed
directory gets through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.remote.beray.listing import Item, items

T = 1767225600.25
WHEN = datetime.fromtimestamp(T, UTC)


def found(payload: object, parent: str = "out") -> list[Item]:
    return [i for i in items(payload, parent) if isinstance(i, Item)]


def test_the_stand_in_shape() -> None:
    payload = [{"name": "a.txt", "path": "out/a.txt", "type": "file", "size": 6, "modified_at": T},
               {"name": "sub dir", "path": "out/sub dir", "type": "directory", "modified_at": T + 1}]
    a, sub = found(payload)
    assert (a.path, a.is_dir, a.size, a.mtime) == ("out/a.txt", False, 6, WHEN)
    assert (sub.path, sub.is_dir, sub.size) == ("out/sub dir", True, None)


def test_names_only_nested_children_and_wrapped_lists() -> None:
    payload = {"items": [{"name": "n.txt", "size": 1},
                         {"name": "d", "type": "folder", "children": [{"name": "x", "type": "file", "size": 2}]}]}
    n, d = found(payload, "")
    assert n.path == "n.txt" and d.is_dir and d.children == [{"name": "x", "type": "file", "size": 2}]
    assert [i.path for i in found(d.children, d.path)] == ["d/x"]


@pytest.mark.parametrize(("value", "expected"), [
    (T, WHEN), (T * 1000, WHEN), ("2026-01-01T00:00:00.250Z", WHEN), ("nope", None), (None, None), (True, None),
])
def test_modified_at_in_seconds_milliseconds_or_iso(value: object, expected: datetime | None) -> None:
    [item] = found([{"name": "m", "type": "file", "size": 1, "modified_at": value}])
    assert item.mtime == expected


@pytest.mark.parametrize("raw", [
    {"path": "../etc/passwd", "type": "file"}, {"path": "/etc/passwd", "type": "file"},
    {"path": "other/a.txt", "type": "file"}, {"path": "out/deeper/a.txt", "type": "file"},
    {"name": "..", "type": "file"}, {"path": "out/link", "type": "symlink"}, {"type": "file"}, "x",
])
def test_items_outside_the_listed_directory_or_not_files_are_dropped_and_said(raw: object) -> None:
    [dropped] = list(items([raw], "out"))
    assert isinstance(dropped, str)
