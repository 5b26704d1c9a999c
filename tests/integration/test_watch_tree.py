"""The watcher on a recursive folder, on real files with a real watchdog observer: events map to
relative-path keys, and directory events stand for the files they carry.

Every test waits on conditions; see `tests.support.watching` for the barriers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from syncd.core.paths import RelPath
from syncd.local.watch import Watcher
from tests.support.watching import Make, Recorder, barrier, folder, write

pytestmark = pytest.mark.timeout(60)


def started(make: Make, tmp_path: Path, ignore: tuple[str, ...] = ()) -> tuple[Watcher, Recorder, Path]:
    watcher, rec = make()
    path = folder(tmp_path, "f")
    watcher.add("f", path, ignore, recursive=True)
    watcher.start()
    return watcher, rec, path


def make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write(root / rel, rel.encode())


def test_files_at_any_depth_are_reported_by_relative_path_key(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    (path / "a" / "b").mkdir(parents=True)
    barrier(rec, path)
    write(path / "a" / "b" / "deep.txt")
    write(path / "a" / "top-of-a.txt")
    (path / "cafe\u0301").mkdir()  # NFD directory name
    write(path / "cafe\u0301" / "menu.txt")
    barrier(rec, path)
    assert sorted(rec.names()) == ["a/b/deep.txt", "a/top-of-a.txt", "caf\u00e9/menu.txt"]
    assert all(isinstance(name, RelPath) for _, _, names in rec.calls for name in names)


def test_a_directory_made_and_filled_at_once_is_reported_whole(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    make_tree(path, ["new/x/1.txt", "new/x/y/2.txt", "new/3.txt"])  # faster than the watches are added
    barrier(rec, path)
    assert sorted(set(rec.names())) == ["new/3.txt", "new/x/1.txt", "new/x/y/2.txt"]


def test_a_tree_moved_in_whole_reports_every_file_in_it(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    outside = tmp_path / "elsewhere"
    make_tree(outside, ["project/src/main.c", "project/src/lib/util.c", "project/README"])
    (outside / "project" / "empty").mkdir()
    (outside / "project").rename(path / "project")
    barrier(rec, path)
    assert sorted(set(rec.names())) == ["project/README", "project/src/lib/util.c", "project/src/main.c"]


def test_a_renamed_directory_reports_the_files_under_both_names(make: Make, tmp_path: Path) -> None:
    watcher, rec, path = started(make, tmp_path)
    make_tree(path, ["old/a.txt", "old/sub/b.txt"])
    barrier(rec, path)
    rec.clear()
    (path / "old").rename(path / "new")
    barrier(rec, path)
    # Each file under both names, and each directory's old key (`old/sub` moved with `old`).
    assert set(rec.names()) == {"old/a.txt", "old/sub/b.txt", "new/a.txt", "new/sub/b.txt", "old", "old/sub"}
    assert not rec.troubles  # a subdirectory moving is not the folder moving
    rec.clear()
    write(path / "new" / "sub" / "later.txt")  # its watch followed it
    barrier(rec, path)
    assert rec.names() == ["new/sub/later.txt"]
    assert watcher.folders() == {"f"}


def test_a_directory_moved_out_reports_its_own_key(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    make_tree(path, ["leaving/a.txt", "leaving/deeper/b.txt"])
    barrier(rec, path)
    rec.clear()
    (path / "leaving").rename(tmp_path / "gone")
    barrier(rec, path)
    assert "leaving" in rec.names()  # stands for every tracked file below it
    assert not rec.troubles


def test_a_deleted_tree_reports_its_files_and_its_key(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    make_tree(path, ["doomed/a.txt", "doomed/x/b.txt"])
    barrier(rec, path)
    rec.clear()
    shutil.rmtree(path / "doomed")
    barrier(rec, path)
    assert {"doomed/a.txt", "doomed/x/b.txt", "doomed"} <= set(rec.names())


def test_ignored_directories_the_marker_and_unsafe_names_are_never_reported(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path, ignore=("build/", "**/node_modules", "/docs/*.pdf"))
    make_tree(path, [
        "build/out.o", "src/build/gen.c", "node_modules/x.js", "web/node_modules/y/z.js",
        "docs/manual.pdf", "docs/sub/kept.pdf", "a/b.tmp", "a/back\\slash.txt", ".syncd/trash/s/x.txt",
    ])
    outside = tmp_path / "outside"
    make_tree(outside, ["build/moved-in.o"])
    (outside / "build").rename(path / "web" / "build")
    barrier(rec, path)
    assert sorted(set(rec.names())) == ["docs/sub/kept.pdf"]


def test_a_top_level_folder_still_hears_only_its_top_level(make: Make, tmp_path: Path) -> None:
    watcher, rec = make()
    path = folder(tmp_path, "f")
    watcher.add("f", path, ())  # recursive=False, as before
    watcher.start()
    make_tree(path, ["sub/inner.txt", "top.txt"])
    (path / "sub").rename(path / "renamed")
    barrier(rec, path)
    # Its files, and its subfolders' own names (a pass reports them as skipped), never what is in them.
    names = rec.names()
    assert "top.txt" in names and set(names) <= {"top.txt", "sub", "renamed"}, names
