"""`syncd.local.trash`: the trash's size, and purging slots older than `trash_days`, on real
directories (ages given by a fixed `now`)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from syncd.local.trash import Purged, purge_trash, trash_size

DAY = 86400.0
NOW = datetime(2026, 11, 27, 21, 4).timestamp()


def slot(days_ago: float) -> str:
    return datetime.fromtimestamp(NOW - days_ago * DAY).strftime("%Y-%m-%dT%H%M%S.%f")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    (root / ".syncd" / "trash").mkdir(parents=True)
    (root / "synced.txt").write_bytes(b"the folder's own file")
    return root


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_slots_are_aged_by_their_names(folder: Path) -> None:
    trash = folder / ".syncd" / "trash"
    put(trash / slot(10) / "a" / "b.txt", b"12345")
    put(trash / slot(10) / "c.txt", b"123")
    put(trash / slot(6.9) / "d.txt", b"1")
    os.utime(trash / slot(6.9), (NOW - 100 * DAY,) * 2)  # the name wins over the mtime
    assert trash_size(folder) == 9
    assert purge_trash(folder, 7, NOW) == Purged(1, 8)
    assert [p.name for p in trash.iterdir()] == [slot(6.9)]
    assert trash_size(folder) == 1
    assert (folder / "synced.txt").exists()


def test_entries_not_named_as_slots_are_aged_by_their_mtime(folder: Path) -> None:
    trash = folder / ".syncd" / "trash"
    old = put(trash / "by hand" / "x.txt", b"xx").parent
    os.utime(old, (NOW - 8 * DAY,) * 2)
    loose = put(trash / "loose.txt", b"yyy")
    os.utime(loose, (NOW - 8 * DAY,) * 2)
    put(trash / "new by hand" / "z.txt", b"z")
    os.utime(trash / "new by hand", (NOW - DAY,) * 2)
    assert purge_trash(folder, 7, NOW) == Purged(2, 5)
    assert [p.name for p in trash.iterdir()] == ["new by hand"]


def test_days_0_keeps_everything(folder: Path) -> None:
    trash = folder / ".syncd" / "trash"
    put(trash / slot(10_000) / "a.txt", b"a")
    assert purge_trash(folder, 0, NOW) == Purged()
    assert trash_size(folder) == 1


def test_links_are_removed_as_links_never_followed(folder: Path, tmp_path: Path) -> None:
    trash = folder / ".syncd" / "trash"
    outside = tmp_path / "outside"
    put(outside / "dir" / "precious.txt", b"precious")
    put(outside / "file.txt", b"file")
    (trash / slot(30)).symlink_to(outside / "file.txt")  # a link standing as a slot
    put(trash / slot(20) / "kept.txt", b"k")
    (trash / slot(20) / "to-dir").symlink_to(outside / "dir", target_is_directory=True)
    (trash / slot(20) / "to-file").symlink_to(outside / "file.txt")
    purged = purge_trash(folder, 7, NOW)
    assert purged.entries == 2 and purged.trouble is None
    assert list(trash.iterdir()) == []
    assert (outside / "dir" / "precious.txt").read_bytes() == b"precious"
    assert (outside / "file.txt").read_bytes() == b"file"


@pytest.mark.parametrize("link", [".syncd", ".syncd/trash"])
def test_a_marker_or_trash_that_is_a_link_is_left_alone(folder: Path, tmp_path: Path, link: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    put(elsewhere / "trash" / slot(30) / "data.txt", b"not ours")
    put(elsewhere / slot(30) / "data.txt", b"not ours either")
    target = folder / link
    for child in sorted(target.rglob("*"), reverse=True):
        child.rmdir()
    target.rmdir()
    target.symlink_to(elsewhere, target_is_directory=True)
    assert purge_trash(folder, 7, NOW) == Purged()
    assert trash_size(folder) == 0
    assert (elsewhere / "trash" / slot(30) / "data.txt").exists() and (elsewhere / slot(30) / "data.txt").exists()


def test_no_folder_or_no_trash_is_nothing_to_purge(tmp_path: Path) -> None:
    assert purge_trash(tmp_path / "missing", 7, NOW) == Purged()
    assert trash_size(tmp_path / "missing") == 0
    (tmp_path / "bare").mkdir()
    assert purge_trash(tmp_path / "bare", 7, NOW) == Purged()


def test_entries_vanishing_meanwhile_are_simply_gone(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trash = folder / ".syncd" / "trash"
    put(trash / slot(30) / "a.txt", b"a")
    put(trash / slot(31) / "b.txt", b"b")
    real_listdir = os.listdir

    def listdir_then_someone_removes(path: object) -> list[str]:
        names = real_listdir(path)  # type: ignore[call-overload]
        if isinstance(path, int):  # the trash's listing: one slot goes before it is looked at
            (trash / slot(31) / "b.txt").unlink()
            (trash / slot(31)).rmdir()
        return names  # type: ignore[no-any-return]

    monkeypatch.setattr(os, "listdir", listdir_then_someone_removes)
    assert purge_trash(folder, 7, NOW) == Purged(1, 1)
