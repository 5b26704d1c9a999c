"""A folder's trash: how big it is, and removing what it has kept long enough (SPEC, "Trash").

Replaced and deleted content goes to `.syncd/trash/<slot>/<relative path>`, one slot per move,
named by its local time (`FolderFS`: ``2026-11-27T210405.123456``). After `trash_days` days a
slot is removed whole. Its age is read from its name; an entry whose name is not such a time
(copied in by hand, or from another tool) is judged by its own modification time.

What the trash holds came from the folder, which anybody writing there may have shaped, so:

* nothing is followed through a symbolic link: `.syncd` and `trash` are opened with
  ``O_NOFOLLOW`` (a trash that is a link, to anywhere, is left alone), each slot is removed
  bottom up relative to the descriptors of its own directories (`os.fwalk`, which never
  descends into a link), the links met are unlinked, and a link standing as a slot is unlinked,
  its target untouched;
* nothing outside `.syncd/trash` is ever removed;
* an entry that vanishes meanwhile (removed by hand, or by another pass) is simply gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.local.dirfd import RefusedPath, open_child
from syncd.local.ignore import MARKER

TRASH = "trash"
DAY = 86400.0

# `FolderFS._trash_dir`'s slot names: local time, to the microsecond (the fraction optional, and
# anything after it tolerated, should a slot ever get a suffix).
_SLOT = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6})(?:\.(\d{1,6}))?")


@dataclass(frozen=True, slots=True)
class Purged:
    """What one purge removed: slots (top-level entries of the trash) and the bytes they held;
    `trouble`: why a slot could not be removed (the first such reason; the others were)."""

    entries: int = 0
    bytes: int = 0
    trouble: str | None = None


def purge_trash(folder_path: Path, days: int, now: float) -> Purged:
    """Remove the trash slots of the folder at `folder_path` older than `days` days at `now`
    (seconds since the epoch); `days` 0 keeps everything. A folder without a trash has nothing
    to purge. OSError only when the trash itself cannot be read; a slot that cannot be removed
    is left, and said in `Purged.trouble`."""
    if days <= 0:
        return Purged()
    cutoff = now - days * DAY
    entries = size = 0
    trouble: str | None = None
    with _trash_fd(folder_path) as trash:
        if trash is None:
            return Purged()
        for name in os.listdir(trash):
            try:
                st = os.stat(name, dir_fd=trash, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if _age_stamp(name, st) >= cutoff:
                continue
            try:
                held = _remove(trash, name, st)
            except OSError as exc:  # e.g. a directory in it made read-only: the other slots go on
                trouble = trouble or f"{name}: {exc.strerror or exc}"
                continue
            if held is None:
                continue
            entries += 1
            size += held
    return Purged(entries, size, trouble)


def trash_size(folder_path: Path) -> int:
    """The bytes the folder's trash holds (the files' sizes; 0 when there is no trash)."""
    try:
        with _trash_fd(folder_path) as trash:
            if trash is None:
                return 0
            return sum(_tree_size(trash, name) for name in os.listdir(trash))
    except OSError:
        return 0


@contextlib.contextmanager
def _trash_fd(folder_path: Path) -> Iterator[int | None]:
    """A descriptor of `folder_path/.syncd/trash`, reached without following a link (None: there
    is no such directory, or a link or a file stands in its place)."""
    try:
        root = os.open(folder_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        yield None
        return
    fd: int | None = None
    try:
        try:
            marker = open_child(root, MARKER)
            try:
                fd = open_child(marker, TRASH)
            finally:
                os.close(marker)
        except (FileNotFoundError, RefusedPath):
            fd = None
        yield fd
    finally:
        if fd is not None:
            os.close(fd)
        os.close(root)


def _age_stamp(name: str, st: os.stat_result) -> float:
    """When the slot `name` was made: the local time its name says, else its mtime."""
    match = _SLOT.match(name)
    if match:
        try:
            when = datetime.strptime(match.group(1), "%Y-%m-%dT%H%M%S")
        except ValueError:
            return st.st_mtime
        fraction = match.group(2) or "0"
        return when.timestamp() + int(fraction.ljust(6, "0")) / 1e6  # naive: local time, as named
    return st.st_mtime


def _tree_size(parent: int, name: str) -> int:
    """The sizes of the files at and below `name` (in directory `parent`), links not followed;
    what vanishes meanwhile counts nothing."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    with contextlib.suppress(OSError):
        for _, dirs, files, fd in os.fwalk(name, dir_fd=parent, follow_symlinks=False):
            for entry in (*files, *dirs):  # `dirs` holds the links to directories too
                with contextlib.suppress(OSError):
                    st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                    total += 0 if stat.S_ISDIR(st.st_mode) else st.st_size
    return total


def _remove(parent: int, name: str, st: os.stat_result) -> int | None:
    """Remove the entry `name` of directory `parent` (`st`: its lstat) and everything below it,
    bottom up, through descriptors and never through a link; the bytes of the files removed.
    None when it was gone already."""
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return None
        return st.st_size
    removed = 0
    for _, dirs, files, fd in os.fwalk(name, topdown=False, dir_fd=parent, follow_symlinks=False):
        for file in files:
            with contextlib.suppress(FileNotFoundError):
                removed += os.stat(file, dir_fd=fd, follow_symlinks=False).st_size
                os.unlink(file, dir_fd=fd)
        for sub in dirs:  # emptied by now; a link to a directory is listed here too: unlinked
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.stat(sub, dir_fd=fd, follow_symlinks=False).st_mode):
                    os.unlink(sub, dir_fd=fd)
                else:
                    os.rmdir(sub, dir_fd=fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except FileNotFoundError:
        return None
    return removed
