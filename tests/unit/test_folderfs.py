"""FolderFS on real directories: once the marker is gone (an unmounted disk leaves an empty mount
point), nothing is written into the folder, and the marker is never recreated in its place."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.core.model import LocalFile
from syncd.local.folderfs import FolderFS, FolderUnavailable


@pytest.fixture
def fs(tmp_path: Path) -> FolderFS:
    folder = FolderFS(tmp_path / "f")
    folder.create_marker()
    return folder


def test_temp_files_are_private_distinct_and_the_tmp_dir_is_remade_inside_the_marker(fs: FolderFS) -> None:
    shutil.rmtree(fs.tmp)
    fd1, first = fs.new_temp()
    fd2, second = fs.new_temp()
    os.close(fd1)
    os.close(fd2)
    assert first != second and first.parent == second.parent == fs.tmp
    assert first.stat().st_mode & 0o777 == 0o600


def test_without_the_marker_nothing_is_written(fs: FolderFS, tmp_path: Path) -> None:
    fd, temp = fs.new_temp()
    os.write(fd, b"downloaded")
    os.close(fd)
    (fs.root / "mine.txt").write_bytes(b"mine")
    mine = LocalFile(name="mine.txt", size=4, mtime_ns=(fs.root / "mine.txt").stat().st_mtime_ns, sha256="0" * 64)
    kept = tmp_path / "kept-temp"
    shutil.move(temp, kept)
    shutil.rmtree(fs.marker)  # the disk went away: only what the mount point holds is left
    now = datetime.now(UTC)

    with pytest.raises(FolderUnavailable, match=r"marker .* is missing"):
        fs.new_temp()
    with pytest.raises(FolderUnavailable):
        fs.install(kept, "new.txt", None, now)
    with pytest.raises(FolderUnavailable):
        fs.to_trash("mine.txt", mine, now)
    with pytest.raises(FolderUnavailable):
        fs.rename_aside("mine.txt", "mine (conflicted copy).txt", mine)
    with pytest.raises(FolderUnavailable):
        fs.move_into("mine.txt", "sent")
    assert sorted(p.name for p in fs.root.iterdir()) == ["mine.txt"]  # no marker, no new file, no sent/
