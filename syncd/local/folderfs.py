"""The local side of one synced folder: marker, temp files, trash, atomic installs.

Every write into a folder goes through here, so the folder invariants hold in
one place: downloads land in `.syncd/tmp/` and are renamed over their target
only after fsync and checks; replaced or deleted content goes to
`.syncd/trash/`; a local file that changed since the plan is never replaced.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from syncd.core.model import LocalFile

# Raised here; defined with the rest of the local errors (and imported from here by callers).
from syncd.errors import FolderUnavailable as FolderUnavailable
from syncd.errors import LocalChanged as LocalChanged
from syncd.local.durable import DirSync
from syncd.local.ignore import MARKER
from syncd.local.scan import stat_key
from syncd.remote.base import RemoteFile


class FolderFS:
    """File operations inside one synced folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / MARKER
        self.tmp = self.marker / "tmp"
        self.trash = self.marker / "trash"
        self._dir_sync = DirSync(root)
        self._temp_names = itertools.count()

    def marker_present(self) -> bool:
        return self.marker.is_dir()

    def require_marker(self) -> None:
        """Refuse to go on once the marker is gone: an empty mount point is not the folder."""
        if not self.marker.is_dir():
            raise FolderUnavailable(f"folder marker {self.marker} is missing (unmounted disk or wrong path?): paused")

    def create_marker(self) -> None:
        """Make the folder and its `.syncd/` (first sync of a new folder)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.marker, self.tmp, self.trash):
            d.mkdir(exist_ok=True)

    def clean_tmp(self) -> int:
        """Remove partial downloads left by a crash; return how many."""
        if not self.tmp.is_dir():
            return 0
        removed = 0
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def path(self, name: str) -> Path:
        return self.root / name

    def current(self, name: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of the file now, or None when there is none."""
        try:
            return stat_key(os.stat(self.path(name), follow_symlinks=False))
        except FileNotFoundError:
            return None

    def matches(self, name: str, expected: LocalFile | None) -> bool:
        """True when the file is as the plan saw it (absent when `expected` is None)."""
        now = self.current(name)
        if expected is None:
            return now is None
        return now == (expected.size, expected.mtime_ns)

    def new_temp(self) -> tuple[int, Path]:
        """A new, empty, private file in `.syncd/tmp/` (made if missing), opened for writing."""
        while True:
            path = self.tmp / f"{os.getpid()}-{next(self._temp_names)}.part"
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
            except FileNotFoundError:
                self.require_marker()  # never recreate the marker inside an empty mount point
                self.tmp.mkdir(exist_ok=True)
            except FileExistsError:
                continue  # left by an earlier process with our pid

    def _trash_slot(self, name: str, now: datetime) -> Path:
        slot = self.trash / now.strftime("%Y-%m-%dT%H%M%S.%f")
        self.trash.mkdir(exist_ok=True)  # inside the marker, never in its place
        slot.mkdir(exist_ok=True)
        return slot / name

    def to_trash(self, name: str, expected: LocalFile, now: datetime) -> Path:
        """Move the file to the trash if it is still as planned."""
        self.require_marker()
        if not self.matches(name, expected):
            raise LocalChanged(name)
        target = self._trash_slot(name, now)
        os.rename(self.path(name), target)
        return target

    def install(self, temp: Path, name: str, expected: LocalFile | None, now: datetime) -> os.stat_result:
        """Rename a finished download over `name`; the content it replaces goes to the trash.

        The old content is hard-linked into the trash first, so at every moment
        `name` holds either the old or the new bytes, never nothing.
        """
        self.require_marker()
        if not self.matches(name, expected):
            raise LocalChanged(name)
        target = self.path(name)
        if expected is not None:
            # A replaced file keeps the mode its owner gave it.
            os.chmod(temp, stat.S_IMODE(os.stat(target, follow_symlinks=False).st_mode))
            keep = self._trash_slot(name, now)
            try:
                os.link(target, keep)
            except OSError:
                shutil.copy2(target, keep)
        else:
            os.chmod(temp, 0o666 & ~process_umask())  # a new file: as any program would create it
        os.replace(temp, target)
        self._dir_sync.sync()
        return os.stat(target)

    def rename_aside(self, name: str, new_name: str, expected: LocalFile) -> None:
        """Rename a local file (a conflicted copy), refusing to overwrite anything."""
        self.require_marker()
        if not self.matches(name, expected):
            raise LocalChanged(name)
        os.link(self.path(name), self.path(new_name))  # fails if new_name exists
        os.unlink(self.path(name))

    def move_into(self, name: str, subdir: str) -> Path:
        """Move a drop-in file into `subdir` (after_upload = move:DIR), never overwriting."""
        self.require_marker()
        dest_dir = self.root / subdir
        dest_dir.mkdir(parents=True, exist_ok=True)
        stem, ext = split_ext(name)
        dest = dest_dir / name
        n = 1
        while dest.exists():
            dest = dest_dir / f"{stem} ({n}){ext}"
            n += 1
        os.rename(self.path(name), dest)
        return dest


@functools.cache
def process_umask() -> int:
    """The process's umask, read without changing it where Linux tells (`/proc/self/status`);
    elsewhere set and restored once, while the process is still starting its threads."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def split_ext(name: str) -> tuple[str, str]:
    """`report.final.pdf` -> (`report.final`, `.pdf`); dotfiles keep their name as stem."""
    stem, ext = os.path.splitext(name)
    return (stem, ext) if stem else (name, "")


def conflict_name(name: str, now: datetime) -> str:
    """`NAME (conflicted copy YYYY-MM-DD HHMMSS).EXT` (SPEC, "Conflicts")."""
    stem, ext = split_ext(name)
    return f"{stem} (conflicted copy {now.strftime('%Y-%m-%d %H%M%S')}){ext}"


def race_copy_names(name: str, versions: Sequence[RemoteFile]) -> list[str]:
    """The conflicted-copy name of each racing version of `name` (oldest first): stamped with
    the version's own write time in UTC, so that every machine names it alike. Versions that
    share a second get ` 2`, ` 3`... after the stamp, in version order."""
    names: list[str] = []
    for version in versions:
        copy = base = conflict_name(name, version.written_at.astimezone(UTC))
        n = 1
        while copy in names:
            n += 1
            stem, ext = split_ext(base)
            copy = f"{stem.removesuffix(')')} {n}){ext}"
        names.append(copy)
    return names

