"""File operations relative to directory descriptors, never through a symbolic link.

Every directory below a folder's root is opened with `O_NOFOLLOW | O_DIRECTORY` relative to its
parent's descriptor (`open_child`), and the last step of an operation is made relative to the
parent's descriptor: a directory swapped for a symbolic link (or a file) at any moment makes the
operation fail (`RefusedPath`) instead of writing wherever the link points. `path_parts` is the
one check of a folder-relative path before any of this: safe components, never the marker.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator

from syncd.core.paths import path_reason
from syncd.local.ignore import MARKER
from syncd.local.scan import stat_key

#: How a directory below the folder's root is opened: never through a symbolic link.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: `link` failures that mean "this file system has no hard links here", not "the name is taken".
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS})


class RefusedPath(OSError):
    """A path syncd will not touch: unsafe, inside the marker, or through something that is not
    a real directory of the folder (a symbolic link or a file where a directory should be). An
    `OSError`, so a job that meets it fails with this message and is tried again later, like any
    other local trouble."""


def path_parts(name: str) -> list[str]:
    """The components of `name`, each a safe name, the first not the marker; `RefusedPath`
    otherwise."""
    reason = path_reason(name)
    if reason is None and name.split("/", 1)[0].casefold() == MARKER:
        reason = f"{MARKER}/ is syncd's own"
    if reason is not None:
        raise RefusedPath(errno.EINVAL, f"refusing the path {name!r}: {reason}")
    return name.split("/")


def open_child(parent: int, part: str) -> int:
    """Open directory `part` of `parent`, never through a symbolic link."""
    try:
        return os.open(part, DIR_FLAGS, dir_fd=parent)
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


def stat_at(parent: int, name: str) -> tuple[int, int] | None:
    try:
        return stat_key(os.stat(name, dir_fd=parent, follow_symlinks=False))
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def link_then_unlink(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Rename that never replaces: `FileExistsError` when `dest` is taken."""
    os.link(src, dest, src_dir_fd=src_dir, dst_dir_fd=dest_dir, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir)


def move_no_replace(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Move a file, never replacing one: a hard link then an unlink where the file system has
    hard links, else a look then a rename."""
    try:
        link_then_unlink(src_dir, src, dest_dir, dest)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if stat_at(dest_dir, dest) is not None:
            raise FileExistsError(errno.EEXIST, "file exists", dest) from None
        os.rename(src, dest, src_dir_fd=src_dir, dst_dir_fd=dest_dir)


def copy_at(src_dir: int, src: str, dest_dir: int, dest: str) -> None:
    """Copy a file's bytes, mode and times, both ends relative to directory descriptors."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    with open(fd_in, "rb") as source:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dest_dir)
        with open(fd_out, "wb") as target:
            shutil.copyfileobj(source, target)
            st = os.fstat(source.fileno())
            os.fchmod(target.fileno(), stat.S_IMODE(st.st_mode))
            os.utime(target.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
