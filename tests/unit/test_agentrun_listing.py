"""An AgentRun listing is read loosely, and nothing outside the listed directory gets through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.remote.agentrun.listing import Entry, entries, one_entry

ROOT = "/home/user/p"
T = 1767225600.25
WHEN = datetime.fromtimestamp(T, UTC)


def files(payload: object) -> dict[str, tuple[int | None, datetime | None]]:
    return {e.path: (e.size, e.mtime) for e in entries(payload, ROOT) if isinstance(e, Entry) and e.is_dir is False}


def test_the_stand_in_shape_nested() -> None:
    payload = {"path": ROOT, "entries": [
        {"name": "a.txt", "path": f"{ROOT}/a.txt", "type": "file", "size": 6, "mode": "0o644", "mtime": T},
        {"name": "sub", "path": f"{ROOT}/sub", "type": "directory", "size": 4096, "mtime": T, "children": [
            {"name": "b.txt", "path": f"{ROOT}/sub/b.txt", "type": "file", "size": 1, "mtime": T, "extra": [1]},
            {"name": "deep", "path": f"{ROOT}/sub/deep", "type": "directory", "mtime": T},
        ]},
    ]}
    assert files(payload) == {f"{ROOT}/a.txt": (6, WHEN), f"{ROOT}/sub/b.txt": (1, WHEN)}
    deep = [e for e in entries(payload, ROOT) if isinstance(e, Entry) and e.path.endswith("/deep")]
    assert deep[0].is_dir and not deep[0].listed  # past the depth: to be listed on its own


@pytest.mark.parametrize("key", ["entries", "files", "items", "children", "data"])
def test_the_list_under_any_of_its_keys_or_bare(key: str) -> None:
    items = [{"path": f"{ROOT}/x", "isDir": False, "size": 2}]
    assert files({key: items}) == {f"{ROOT}/x": (2, None)}
    assert files(items) == {f"{ROOT}/x": (2, None)}
    assert files({"data": {"entries": items}}) == {f"{ROOT}/x": (2, None)}


def test_flat_full_paths_names_only_and_relative_paths() -> None:
    payload = [
        {"path": f"{ROOT}/d/deep.txt", "type": "file", "size": 3},
        {"name": "n.txt", "type": "file"},
        {"path": "rel.txt", "is_dir": False, "size": 0},
        {"path": f"{ROOT}/d", "type": "dir"},
    ]
    assert set(files(payload)) == {f"{ROOT}/d/deep.txt", f"{ROOT}/n.txt", f"{ROOT}/rel.txt"}


@pytest.mark.parametrize(("mtime", "expected"), [
    (T, WHEN), (int(T), datetime.fromtimestamp(int(T), UTC)), (T * 1000, WHEN),
    ("2026-01-01T00:00:00.250Z", WHEN), ("2026-01-01T08:00:00.250+08:00", WHEN),
    ("yesterday", None), (None, None), (True, None), (float("nan"), None), (-5, None),
])
def test_mtimes_in_seconds_milliseconds_or_iso(mtime: object, expected: datetime | None) -> None:
    assert files([{"path": f"{ROOT}/m", "type": "file", "size": 1, "mtime": mtime}]) == {f"{ROOT}/m": (1, expected)}


def test_symlinks_and_other_types_are_not_files() -> None:
    payload = [{"path": f"{ROOT}/l", "type": "symlink", "size": 1}, {"path": f"{ROOT}/o", "type": "other"}]
    assert files(payload) == {}


@pytest.mark.parametrize("path", ["/etc/passwd", "/home/user/pother/x", f"{ROOT}/../x", f"{ROOT}/a/../../x",
                                  f"{ROOT}//x", f"{ROOT}/./x", ROOT])
def test_an_entry_outside_the_listed_directory_is_dropped_and_said(path: str) -> None:
    found = list(entries([{"path": path, "type": "file", "size": 1}], ROOT))
    assert len(found) == 1 and isinstance(found[0], str)


def test_garbage_is_dropped_not_fatal() -> None:
    found = list(entries({"entries": [1, "x", None, {"type": "file"}]}, ROOT))
    assert all(isinstance(f, str) for f in found) and len(found) == 4
    assert list(entries("nonsense", ROOT)) == []


def test_a_stat_answer_plain_or_wrapped() -> None:
    path = f"{ROOT}/a.txt"
    plain = one_entry({"name": "a.txt", "path": path, "type": "file", "size": 6, "mtime": T}, path)
    wrapped = one_entry({"code": "SUCCESS", "data": {"path": path, "type": "file", "size": 6}}, path)
    assert plain is not None and (plain.size, plain.mtime) == (6, WHEN)
    assert wrapped is not None and wrapped.size == 6
    assert one_entry([1], path) is None
