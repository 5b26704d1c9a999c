"""FolderFS below the folder's top level, on real directories: downloads make the directories
they need, the trash keeps the tree, directories syncd emptied are removed (and no others), and
no path, whatever it says or whatever a directory was swapped for, writes outside the folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import syncd.local.folderfs as folderfs_module
from syncd.core.model import LocalFile
from syncd.core.paths import RelPath
from syncd.local.copynames import conflict_name, race_copy_names, split_ext
from syncd.local.dirfd import RefusedPath
from syncd.local.folderfs import FolderFS, LocalChanged
from syncd.remote.base import RemoteFile

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.fixture
def fs(tmp_path: Path) -> FolderFS:
    folder = FolderFS(tmp_path / "f")
    folder.create_marker()
    return folder


def put(fs: FolderFS, rel: str, data: bytes) -> LocalFile:
    """A file in the folder, and the LocalFile a scan would have seen of it."""
    path = fs.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return LocalFile(name=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256="0" * 64)


def download(fs: FolderFS, data: bytes) -> Path:
    fd, temp = fs.new_temp()
    os.write(fd, data)
    os.close(fd)
    return temp


def trash_files(fs: FolderFS) -> dict[str, bytes]:
    """Relative path below its slot -> bytes, of everything in the trash."""
    return {
        p.relative_to(fs.trash).as_posix().split("/", 1)[1]: p.read_bytes() for p in fs.trash.rglob("*") if p.is_file()
    }


def test_a_download_installs_into_parent_directories_made_on_demand(fs: FolderFS) -> None:
    st = fs.install(download(fs, b"deep"), "a/b/c/new.txt", None, NOW)
    target = fs.root / "a/b/c/new.txt"
    assert target.read_bytes() == b"deep" and st.st_ino == target.stat().st_ino
    assert fs.current("a/b/c/new.txt") == (4, target.stat().st_mtime_ns)
    assert not list(fs.tmp.iterdir())
    # A second file into the same, now existing, directories.
    fs.install(download(fs, b"next"), RelPath.parse("a/b/c/next.txt"), None, NOW)
    assert sorted(os.listdir(fs.root / "a/b/c")) == ["new.txt", "next.txt"]


def test_a_replaced_file_keeps_its_old_content_in_the_trash_under_its_tree(fs: FolderFS) -> None:
    old = put(fs, "docs/2026/plan.txt", b"old")
    (fs.root / "docs/2026/plan.txt").chmod(0o640)
    fs.install(download(fs, b"new"), "docs/2026/plan.txt", old, NOW)
    assert (fs.root / "docs/2026/plan.txt").read_bytes() == b"new"
    assert (fs.root / "docs/2026/plan.txt").stat().st_mode & 0o777 == 0o640
    assert trash_files(fs) == {"docs/2026/plan.txt": b"old"}


def test_a_file_that_changed_since_the_plan_is_not_replaced_below_the_top(fs: FolderFS) -> None:
    planned = put(fs, "d/x.txt", b"v1")
    put(fs, "d/x.txt", b"changed!")
    with pytest.raises(LocalChanged):
        fs.install(download(fs, b"remote"), "d/x.txt", planned, NOW)
    with pytest.raises(LocalChanged):
        fs.install(download(fs, b"remote"), "d/y.txt", planned, NOW)  # planned as there, but it is not
    with pytest.raises(LocalChanged):
        fs.install(download(fs, b"remote"), "d/x.txt", None, NOW)  # planned as absent
    assert (fs.root / "d/x.txt").read_bytes() == b"changed!"


def test_trashing_a_directorys_files_keeps_the_tree_and_removes_the_emptied_directories(fs: FolderFS) -> None:
    files = {"proj/src/a.py": b"a", "proj/src/util/b.py": b"b", "proj/README": b"r"}
    seen = {rel: put(fs, rel, data) for rel, data in files.items()}
    for rel in ["proj/src/util/b.py", "proj/src/a.py", "proj/README"]:
        target = fs.to_trash(rel, seen[rel], NOW)
        assert target.read_bytes() == files[rel] and target.relative_to(fs.trash).as_posix().endswith("/" + rel)
    assert trash_files(fs) == files  # the same tree, in the trash
    assert sorted(os.listdir(fs.root)) == [".syncd"]  # proj/ and all below it went as they emptied


def test_a_directory_holding_anything_else_is_left_with_everything_above_it(fs: FolderFS) -> None:
    synced = put(fs, "a/b/synced.txt", b"s")
    put(fs, "a/b/foreign.bak", b"not syncd's")
    (fs.root / "a" / "c").mkdir()  # an empty directory that is not on the way out
    fs.to_trash("a/b/synced.txt", synced, NOW)
    assert sorted(os.listdir(fs.root / "a" / "b")) == ["foreign.bak"]
    assert (fs.root / "a" / "c").is_dir()


def test_the_folder_root_and_the_marker_are_never_removed(fs: FolderFS) -> None:
    top = put(fs, "top.txt", b"t")
    fs.to_trash("top.txt", top, NOW)
    assert fs.root.is_dir() and fs.marker.is_dir() and fs.tmp.is_dir()


def test_a_delivered_drop_in_is_removed_with_the_directories_it_emptied(fs: FolderFS) -> None:
    put(fs, "in/batch/report.csv", b"r")
    fs.remove("in/batch/report.csv")
    assert sorted(os.listdir(fs.root)) == [".syncd"]


def test_move_into_keeps_the_relative_tree_never_overwrites_and_prunes(fs: FolderFS) -> None:
    put(fs, "in/2026/report.tar.gz", b"second")
    put(fs, "sent/in/2026/report.tar.gz", b"first delivery")
    dest = fs.move_into("in/2026/report.tar.gz", "sent")
    assert dest == fs.root / "sent/in/2026/report.tar (1).gz"
    assert dest.read_bytes() == b"second"
    assert (fs.root / "sent/in/2026/report.tar.gz").read_bytes() == b"first delivery"
    assert sorted(os.listdir(fs.root)) == [".syncd", "sent"]  # in/ emptied, removed
    put(fs, "top.txt", b"t")
    assert fs.move_into("top.txt", "out/sent") == fs.root / "out/sent/top.txt"


def test_a_conflicted_copy_is_a_sibling_in_the_same_directory(fs: FolderFS) -> None:
    local = put(fs, "v1.2/notes", b"mine")
    copy = conflict_name("v1.2/notes", NOW)
    assert copy == "v1.2/notes (conflicted copy 2026-03-04 050607)"  # the extension is the last name's
    fs.rename_aside("v1.2/notes", copy, local)
    assert sorted(os.listdir(fs.root / "v1.2")) == ["notes (conflicted copy 2026-03-04 050607)"]
    key = conflict_name(RelPath.parse("d/report.final.pdf"), NOW)
    assert isinstance(key, RelPath) and key == "d/report.final (conflicted copy 2026-03-04 050607).pdf"
    assert split_ext("d.x/.bashrc") == ("d.x/.bashrc", "")


def test_race_copies_are_siblings_numbered_within_one_second() -> None:
    versions = [
        RemoteFile("d/e/doc.txt", str(i), 1, "0" * 64, written_at=datetime(2026, 1, 1, 12, 0, 0, i, tzinfo=UTC), seq=i)
        for i in (1, 2)
    ]
    assert race_copy_names(RelPath.parse("d/e/doc.txt"), versions) == [
        "d/e/doc (conflicted copy 2026-01-01 120000).txt",
        "d/e/doc (conflicted copy 2026-01-01 120000 2).txt",
    ]


@pytest.mark.parametrize(
    "hostile", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "a//b", "./x", ".syncd/tmp/x", ".SYNCD/x", ""]
)
def test_no_path_reaches_outside_the_folder_or_into_the_marker(fs: FolderFS, tmp_path: Path, hostile: str) -> None:
    with pytest.raises(RefusedPath, match="refusing the path"):
        fs.install(download(fs, b"x"), hostile, None, NOW)
    with pytest.raises(RefusedPath):
        fs.path(hostile)
    with pytest.raises(RefusedPath):
        fs.current(hostile)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    assert not list((fs.marker / "tmp").glob("x"))


def test_a_symlinked_ancestor_is_refused_not_followed(fs: FolderFS, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(b"precious")
    (fs.root / "a").mkdir()
    (fs.root / "a" / "b").symlink_to(outside)  # a directory swapped for a link, by someone else
    temp = download(fs, b"attack")
    for name in ["a/b/new.txt", "a/b/victim.txt", "a/b/deeper/new.txt"]:
        assert fs.current(name) is None  # nothing below a link is the folder's
        with pytest.raises(RefusedPath, match=r"a/b: a symbolic link"):
            fs.install(temp, name, None, NOW)
    victim = LocalFile("a/b/victim.txt", 8, (outside / "victim.txt").stat().st_mtime_ns, "0" * 64)
    with pytest.raises(LocalChanged):
        fs.to_trash("a/b/victim.txt", victim, NOW)
    with pytest.raises(LocalChanged):
        fs.install(temp, "a/b/victim.txt", victim, NOW)
    put(fs, "mine.txt", b"mine")
    with pytest.raises(RefusedPath):
        fs.move_into("mine.txt", "a/b")
    assert sorted(os.listdir(outside)) == ["victim.txt"] and (outside / "victim.txt").read_bytes() == b"precious"
    assert temp.exists()  # the download is still ours, in .syncd/tmp


def test_a_symlinked_folder_marker_path_is_still_the_folder_but_links_inside_are_not(tmp_path: Path) -> None:
    # The folder's own root may be reached through a link (the owner's choice); below it, none.
    real = tmp_path / "real"
    FolderFS(real).create_marker()
    (tmp_path / "via-link").symlink_to(real)
    fs = FolderFS(tmp_path / "via-link")
    fs.install(download(fs, b"ok"), "d/file.txt", None, NOW)
    assert (real / "d" / "file.txt").read_bytes() == b"ok"


def test_a_file_where_a_directory_should_be_is_refused(fs: FolderFS) -> None:
    put(fs, "a", b"a file")
    with pytest.raises(RefusedPath, match="a: not a directory"):
        fs.install(download(fs, b"x"), "a/b.txt", None, NOW)
    assert (fs.root / "a").read_bytes() == b"a file"


def test_a_failed_install_leaves_no_empty_directories_behind(fs: FolderFS) -> None:
    missing = fs.tmp / "no-such-download"
    with pytest.raises(FileNotFoundError):
        fs.install(missing, "x/y/z.txt", None, NOW)
    assert sorted(os.listdir(fs.root)) == [".syncd"]


def test_a_directory_swapped_for_a_link_mid_install_still_gets_nothing_outside(
    fs: FolderFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The swap lands between the walk that opened a/b and the rename into it: the rename goes
    # into the directory that was opened (now a/b-moved), never through the new link.
    outside = tmp_path / "outside"
    outside.mkdir()
    (fs.root / "a" / "b").mkdir(parents=True)
    real_replace = os.replace

    def swap_then_replace(src: str, dst: str, **kwargs: int) -> None:
        (fs.root / "a" / "b").rename(fs.root / "a" / "b-moved")
        (fs.root / "a" / "b").symlink_to(outside)
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(folderfs_module.os, "replace", swap_then_replace)
    fs.install(download(fs, b"mine"), "a/b/new.txt", None, NOW)
    assert list(outside.iterdir()) == []
    assert (fs.root / "a" / "b-moved" / "new.txt").read_bytes() == b"mine"
