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
import errno
import functools
import itertools
import os
import shutil
import stat
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from syncd.core.model import LocalFile
from syncd.core.paths import RelPath, path_reason

# Raised here; defined with the rest of the local errors (and imported from here by callers).
from syncd.errors import FolderUnavailable as FolderUnavailable
from syncd.errors import LocalChanged as LocalChanged
from syncd.local.durable import DirSync
from syncd.local.ignore import MARKER
from syncd.local.scan import stat_key
from syncd.remote.base import RemoteFile

#: How a directory below the folder's root is opened: never through a symbolic link.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: `link` failures that mean "this file system has no hard links here", not "the name is taken".
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS})


class RefusedPath(OSError):
    """A path syncd will not touch: unsafe, inside the marker, or through something that is not
    a real directory of the folder (a symbolic link or a file where a directory should be). An
    `OSError`, so a job that meets it fails with this message and is tried again later, like any
    other local trouble."""


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
        return self.root.joinpath(*_parts(name))

    def current(self, name: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of the file now, or None when there is none (nor a real directory
        path to it)."""
        parts = _parts(name)
        try:
            parent = self._open_dir(parts[:-1])
        except (FileNotFoundError, RefusedPath):
            return None
        try:
            return _stat_at(parent, parts[-1])
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
        parts = _parts(name)
        with self._lock:
            planned = _closing_fd(self._open_planned(name, parts, expected))
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
        parts = _parts(name)
        final = parts[-1]
        with self._lock:
            if expected is None:
                parent, made = self._make_dir(parts[:-1])
            else:
                parent, made = self._open_planned(name, parts, expected), False
            try:
                if expected is None and _stat_at(parent, final) is not None:
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
        with _closing_fd(parent):  # the directory the file went into, whatever its path is by now
            self._sync_dir(parts[:-1], parent)
        return st

    def rename_aside(self, name: str, new_name: str, expected: LocalFile) -> None:
        """Rename a local file (a conflicted copy), refusing to overwrite anything."""
        self.require_marker()
        parts, new_parts = _parts(name), _parts(new_name)
        with self._lock:
            with _closing_fd(self._open_planned(name, parts, expected)) as parent:
                if new_parts[:-1] == parts[:-1]:
                    _link_then_unlink(parent, parts[-1], parent, new_parts[-1])  # fails if new_name exists
                    return
                with _closing_fd(self._make_dir(new_parts[:-1])[0]) as dest:
                    _link_then_unlink(parent, parts[-1], dest, new_parts[-1])
            self._prune(parts[:-1])

    def remove(self, name: str) -> None:
        """Delete a delivered drop-in file (after_upload = delete); remove the directories this
        left empty. The caller has checked that the file is as planned."""
        self.require_marker()
        parts = _parts(name)
        with self._lock:
            with _closing_fd(self._open_dir(parts[:-1])) as parent:
                os.unlink(parts[-1], dir_fd=parent)
            self._prune(parts[:-1])

    def move_into(self, name: str, subdir: str) -> Path:
        """Move a drop-in file into `subdir` (after_upload = move:DIR), under its relative path
        (`a/b.txt` -> `DIR/a/b.txt`), never overwriting: a name taken there gets ` (1)`, ` (2)`...
        before its extension. Directories this left empty are removed."""
        self.require_marker()
        parts = _parts(name)
        dest_dir = [*_parts(subdir), *parts[:-1]]
        stem, ext = split_ext(parts[-1])
        with self._lock:
            with _closing_fd(self._open_dir(parts[:-1])) as source, _closing_fd(self._make_dir(dest_dir)[0]) as dest:
                for n in itertools.count():
                    candidate = parts[-1] if n == 0 else f"{stem} ({n}){ext}"
                    try:
                        _move_no_replace(source, parts[-1], dest, candidate)
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
                    child = _open_child(fd, part)
                except FileNotFoundError:
                    if not make:
                        raise
                    with contextlib.suppress(FileExistsError):  # or made meanwhile, by another writer
                        os.mkdir(part, dir_fd=fd)
                        made = True
                        if durable:
                            os.fsync(fd)  # the new directory's entry, before anything goes in it
                    child = _open_child(fd, part)
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
        if _stat_at(parent, parts[-1]) != (expected.size, expected.mtime_ns):
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
        with _closing_fd(fd):
            yield fd, self.trash.joinpath(slot, *parts)

    def _keep_in_trash(self, parent: int, parts: Sequence[str], now: datetime) -> None:
        """Keep the current content of `parts[-1]` (in directory `parent`) in the trash, as a
        hard link where the file system has them, else as a copy."""
        with self._trash_dir(parts, now) as (trash_dir, _):
            try:
                os.link(parts[-1], parts[-1], src_dir_fd=parent, dst_dir_fd=trash_dir, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                _copy_at(parent, parts[-1], trash_dir, parts[-1])


def _parts(name: str) -> list[str]:
    """The components of `name`, each a safe name, the first not the marker; `RefusedPath`
    otherwise."""
    reason = path_reason(name)
    if reason is None and name.split("/", 1)[0].casefold() == MARKER:
        reason = f"{MARKER}/ is syncd's own"
    if reason is not None:
        raise RefusedPath(errno.EINVAL, f"refusing the path {name!r}: {reason}")
    return name.split("/")


def _open_child(parent: int, part: str) -> int:
    """Open directory `part` of `parent`, never through a symbolic link."""
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        # Refused by the open itself (Linux says ENOTDIR, others ELOOP); the lstat only words it.
        try:
            link = stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode)
        except OSError:
            link = exc.errno == errno.ELOOP
        if link:
            raise RefusedPath(exc.errno, "a symbolic link where a directory should be: not followed") from None
        raise RefusedPath(exc.errno, "not a directory") from None


def _stat_at(parent: int, name: str) -> tuple[int, int] | None:
    try:
        return stat_key(os.stat(name, dir_fd=parent, follow_symlinks=False))
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _link_then_unlink(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Rename that never replaces: `FileExistsError` when `dest` is taken."""
    os.link(src, dest, src_dir_fd=src_dir, dst_dir_fd=dest_dir, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir)


def _move_no_replace(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Move a file, never replacing one: a hard link then an unlink where the file system has
    hard links, else a look then a rename."""
    try:
        _link_then_unlink(src_dir, src, dest_dir, dest)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if _stat_at(dest_dir, dest) is not None:
            raise FileExistsError(errno.EEXIST, "file exists", dest) from None
        os.rename(src, dest, src_dir_fd=src_dir, dst_dir_fd=dest_dir)


def _copy_at(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Copy a file's bytes, mode and times, both ends relative to directory descriptors."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    with open(fd_in, "rb") as source:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dest_dir)
        with open(fd_out, "wb") as target:
            shutil.copyfileobj(source, target)
            st = os.fstat(source.fileno())
            os.fchmod(target.fileno(), stat.S_IMODE(st.st_mode))
            os.utime(target.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))


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
    """`report.final.pdf` -> (`report.final`, `.pdf`); dotfiles keep their name as stem. Only
    the last component is split: `v1.2/notes` -> (`v1.2/notes`, ``)."""
    head, sep, last = name.rpartition("/")
    stem, ext = os.path.splitext(last)
    return (head + sep + stem, ext) if stem else (name, "")


def _same_kind(name: str, result: str) -> str:
    """`result` as a `RelPath` (checked) when `name` was one, else as it is."""
    return RelPath.parse(result) if isinstance(name, RelPath) else result


def conflict_name(name: str, now: datetime) -> str:
    """`NAME (conflicted copy YYYY-MM-DD HHMMSS).EXT` (SPEC, "Conflicts"): a sibling of `name`,
    in the same directory."""
    stem, ext = split_ext(name)
    return _same_kind(name, f"{stem} (conflicted copy {now.strftime('%Y-%m-%d %H%M%S')}){ext}")


def race_copy_names(name: str, versions: Sequence[RemoteFile]) -> list[str]:
    """The conflicted-copy name of each racing version of `name` (oldest first): stamped with
    the version's own write time in UTC, so that every machine names it alike. Versions that
    share a second get ` 2`, ` 3`... after the stamp, in version order. Siblings of `name`."""
    names: list[str] = []
    for version in versions:
        copy = base = conflict_name(name, version.written_at.astimezone(UTC))
        n = 1
        while copy in names:
            n += 1
            stem, ext = split_ext(base)
            copy = _same_kind(name, f"{stem.removesuffix(')')} {n}){ext}")
        names.append(copy)
    return names
