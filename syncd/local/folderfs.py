"""The local side of one synced folder: marker, temp files, trash, atomic installs.

Every write into a folder goes through here, so the folder invariants hold in one place:

* Downloads land in `.syncd/tmp/` and are renamed over their target only after fsync and
  checks; a local file that changed since the plan is never replaced (`LocalChanged`).
* Files are named by their path relative to the folder, `/`-joined, as spelled on disk (a key,
  or the spelling a `LocalFile` carries). Every component is checked (`path_reason`: no `..`,
  no `.`, no empty or over-long names, no separators or control characters) and the first may
  not be the marker: no name, whatever its origin, reaches outside the folder or into `.syncd/`.
* Directories inside the folder are never followed through a symbolic link. Each path is
  opened one component at a time, `openat`-style: every directory below the folder's root is
  opened with `O_NOFOLLOW | O_DIRECTORY` relative to its parent's descriptor, and the last
  step (rename, link, unlink, stat, mkdir, rmdir) is made relative to the parent's descriptor.
  A directory swapped for a symbolic link (or a file) at any moment makes the operation fail
  (`RefusedPath`) instead of writing wherever the link points; there is no check-then-use gap
  to race. (The folder's own root is opened as configured: pointing it through a link is the
  owner's choice.)
* Missing parent directories of an installed file are made as it needs them, each one fsynced
  into its parent before anything is put in it.
* Replaced or deleted content goes to `.syncd/trash/<timestamp>/`, under its relative path: the
  trash keeps the folder's tree.
* When syncd moves a file out (trash, `after_upload` delete or move), each directory above it
  that this left empty is removed, innermost first; `rmdir` removes only an empty directory,
  so a directory holding anything else (a file syncd never saw, an ignored one) stays, and so
  does everything above it. The folder's root and `.syncd/` are never removed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from syncd.core.model import LocalFile

# Raised here; defined with the rest of the local errors (and imported from here by callers).
from syncd.errors import FolderUnavailable as FolderUnavailable
from syncd.errors import LocalChanged as LocalChanged
from syncd.local.copynames import split_ext
from syncd.local.dirfd import (
    NO_HARD_LINKS,
    RefusedPath,
    closing_fd,
    copy_at,
    link_then_unlink,
    move_no_replace,
    open_child,
    path_parts,
    stat_at,
)
from syncd.local.durable import DirSync
from syncd.local.ignore import MARKER

_locks_guard = threading.Lock()
_tree_locks: dict[Path, threading.Lock] = {}


def _tree_lock(root: Path) -> threading.Lock:
    """One lock per folder in this process: held while a directory is made and filled, and while
    emptied ones are removed, so a download never lands in a directory being removed."""
    with _locks_guard:
        return _tree_locks.setdefault(root, threading.Lock())


class FolderFS:
    """File operations inside one synced folder (see the module docstring for the invariants)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = root / MARKER
        self.tmp = self.marker / "tmp"
        self.trash = self.marker / "trash"
        self._dir_sync = DirSync(root)
        self._sub_syncs: dict[tuple[str, ...], DirSync] = {}
        self._temp_names = itertools.count()
        self._lock = _tree_lock(root)

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
        """Where `name` (a checked relative path) is, for reading it."""
        return self.root.joinpath(*path_parts(name))

    def current(self, name: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of the file now, or None when there is none (nor a real directory
        path to it)."""
        parts = path_parts(name)
        try:
            parent = self._open_dir(parts[:-1])
        except (FileNotFoundError, RefusedPath):
            return None
        try:
            return stat_at(parent, parts[-1])
        finally:
            os.close(parent)

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

    def to_trash(self, name: str, expected: LocalFile, now: datetime) -> Path:
        """Move the file to the trash if it is still as planned; remove the directories this
        left empty."""
        self.require_marker()
        parts = path_parts(name)
        with self._lock:
            planned = closing_fd(self._open_planned(name, parts, expected))
            with planned as parent, self._trash_dir(parts, now) as (trash_dir, target):
                os.rename(parts[-1], parts[-1], src_dir_fd=parent, dst_dir_fd=trash_dir)
            self._prune(parts[:-1])
        return target

    def install(self, temp: Path, name: str, expected: LocalFile | None, now: datetime) -> os.stat_result:
        """Rename a finished download over `name`; the content it replaces goes to the trash.
        A new file's missing parent directories are made (and made durable) first.

        The old content is hard-linked into the trash first, so at every moment
        `name` holds either the old or the new bytes, never nothing.
        """
        self.require_marker()
        parts = path_parts(name)
        final = parts[-1]
        with self._lock:
            if expected is None:
                parent, made = self._make_dir(parts[:-1])
            else:
                parent, made = self._open_planned(name, parts, expected), False
            try:
                if expected is None and stat_at(parent, final) is not None:
                    raise LocalChanged(name)
                if expected is not None:
                    # A replaced file keeps the mode its owner gave it.
                    os.chmod(temp, stat.S_IMODE(os.stat(final, dir_fd=parent, follow_symlinks=False).st_mode))
                    self._keep_in_trash(parent, parts, now)
                else:
                    os.chmod(temp, 0o666 & ~process_umask())  # a new file: as any program would create it
                os.replace(temp, final, dst_dir_fd=parent)
                st = os.stat(final, dir_fd=parent, follow_symlinks=False)
            except BaseException:
                os.close(parent)
                if made:
                    self._prune(parts[:-1])  # the directories made for it, should they be left empty
                raise
        with closing_fd(parent):  # the directory the file went into, whatever its path is by now
            self._sync_dir(parts[:-1], parent)
        return st

    def rename_aside(self, name: str, new_name: str, expected: LocalFile) -> None:
        """Rename a local file (a conflicted copy), refusing to overwrite anything."""
        self.require_marker()
        parts, new_parts = path_parts(name), path_parts(new_name)
        with self._lock:
            with closing_fd(self._open_planned(name, parts, expected)) as parent:
                if new_parts[:-1] == parts[:-1]:
                    link_then_unlink(parent, parts[-1], parent, new_parts[-1])  # fails if new_name exists
                    return
                with closing_fd(self._make_dir(new_parts[:-1])[0]) as dest:
                    link_then_unlink(parent, parts[-1], dest, new_parts[-1])
            self._prune(parts[:-1])

    def remove(self, name: str) -> None:
        """Delete a delivered drop-in file (after_upload = delete); remove the directories this
        left empty. The caller has checked that the file is as planned."""
        self.require_marker()
        parts = path_parts(name)
        with self._lock:
            with closing_fd(self._open_dir(parts[:-1])) as parent:
                os.unlink(parts[-1], dir_fd=parent)
            self._prune(parts[:-1])

    def move_into(self, name: str, subdir: str) -> Path:
        """Move a drop-in file into `subdir` (after_upload = move:DIR), under its relative path
        (`a/b.txt` -> `DIR/a/b.txt`), never overwriting: a name taken there gets ` (1)`, ` (2)`...
        before its extension. Directories this left empty are removed."""
        self.require_marker()
        parts = path_parts(name)
        dest_dir = [*path_parts(subdir), *parts[:-1]]
        stem, ext = split_ext(parts[-1])
        with self._lock:
            with closing_fd(self._open_dir(parts[:-1])) as source, closing_fd(self._make_dir(dest_dir)[0]) as dest:
                for n in itertools.count():
                    candidate = parts[-1] if n == 0 else f"{stem} ({n}){ext}"
                    try:
                        move_no_replace(source, parts[-1], dest, candidate)
                        break
                    except FileExistsError:
                        continue
            self._prune(parts[:-1])
        return self.root.joinpath(*dest_dir, candidate)

    # -- directories, one component at a time ------------------------------------------------

    def _open_dir(self, parts: Sequence[str], base: Path | None = None) -> int:
        """A descriptor of directory `base/parts...` (`base`: the folder's root), each component
        opened `O_NOFOLLOW` relative to the one before. `FileNotFoundError` when one is missing,
        `RefusedPath` when one is a symbolic link or not a directory."""
        return self._walk(parts, base, make=False)[0]

    def _make_dir(self, parts: Sequence[str], base: Path | None = None, *, durable: bool = True) -> tuple[int, bool]:
        """As `_open_dir`, making the missing directories (each fsynced into its parent when
        `durable`); also says whether any was made."""
        return self._walk(parts, base, make=True, durable=durable)

    def _walk(
        self, parts: Sequence[str], base: Path | None, *, make: bool, durable: bool = True
    ) -> tuple[int, bool]:
        fd = os.open(self.root if base is None else base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        made = False
        try:
            for depth, part in enumerate(parts, 1):
                try:
                    child = open_child(fd, part)
                except FileNotFoundError:
                    if not make:
                        raise
                    with contextlib.suppress(FileExistsError):  # or made meanwhile, by another writer
                        os.mkdir(part, dir_fd=fd)
                        made = True
                        if durable:
                            os.fsync(fd)  # the new directory's entry, before anything goes in it
                    child = open_child(fd, part)
                except RefusedPath as exc:
                    where = "/".join(parts[:depth])
                    raise RefusedPath(exc.errno, f"{where}: {exc.strerror}") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd, made

    def _open_planned(self, name: str, parts: Sequence[str], expected: LocalFile) -> int:
        """A descriptor of `name`'s directory, once the file there is checked to be as planned;
        `LocalChanged` when it is not (or its directory is gone or no longer a real one)."""
        try:
            parent = self._open_dir(parts[:-1])
        except (FileNotFoundError, RefusedPath):
            raise LocalChanged(name) from None
        if stat_at(parent, parts[-1]) != (expected.size, expected.mtime_ns):
            os.close(parent)
            raise LocalChanged(name)
        return parent

    def _prune(self, dir_parts: Sequence[str]) -> None:
        """Remove the directories `dir_parts` names, innermost first, while each is empty. Stops
        at the first that is not (or is gone, or is not a real directory). Never the root."""
        for depth in range(len(dir_parts), 0, -1):
            try:
                parent = self._open_dir(dir_parts[: depth - 1])
            except OSError:
                return
            try:
                os.rmdir(dir_parts[depth - 1], dir_fd=parent)
            except OSError:
                return  # ENOTEMPTY: it holds something syncd did not take out of it
            finally:
                os.close(parent)

    def _sync_dir(self, dir_parts: Sequence[str], fd: int) -> None:
        """Make the entries of the folder's directory `dir_parts` (open as `fd`) durable, in a
        group commit with the other threads syncing it."""
        if not dir_parts:
            self._dir_sync.sync(fd)
            return
        key = tuple(dir_parts)
        with self._lock:
            sync = self._sub_syncs.get(key)
            if sync is None:
                sync = self._sub_syncs[key] = DirSync(self.root.joinpath(*key))
        sync.sync(fd)

    # -- trash -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _trash_dir(self, parts: Sequence[str], now: datetime) -> Iterator[tuple[int, Path]]:
        """The descriptor of the directory `name` goes to in a new trash slot (its relative
        tree made there), and the path it will have."""
        slot = now.strftime("%Y-%m-%dT%H%M%S.%f")
        self.trash.mkdir(exist_ok=True)  # inside the marker, never in its place
        fd, _ = self._make_dir([slot, *parts[:-1]], self.trash, durable=False)
        with closing_fd(fd):
            yield fd, self.trash.joinpath(slot, *parts)

    def _keep_in_trash(self, parent: int, parts: Sequence[str], now: datetime) -> None:
        """Keep the current content of `parts[-1]` (in directory `parent`) in the trash, as a
        hard link where the file system has them, else as a copy."""
        with self._trash_dir(parts, now) as (trash_dir, _):
            try:
                os.link(parts[-1], parts[-1], src_dir_fd=parent, dst_dir_fd=trash_dir, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in NO_HARD_LINKS:
                    raise
                copy_at(parent, parts[-1], trash_dir, parts[-1])


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
