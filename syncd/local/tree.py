"""Reading a folder's tree from disk, through one narrow seam, and naming what is found.

The scanner and the watcher read directories only through a `TreeReader`: `list_dir` (the
entries of one directory, each with the kind its directory entry tells, so that telling a
file from a directory costs no syscall) and `lstat` (never following a symbolic link).
`OS_READER` is the real one. Tests pass their own to make an entry vanish between the listing
and its `lstat`, or a directory vanish or refuse to open between its parent's listing and its
own, as a live folder does (watchdog's `dirsnapshot` takes the same two calls as parameters).

What a reader raises is the contract: `FileNotFoundError` or `NotADirectoryError` for a path
that is gone (or no longer a directory), any other `OSError` for a path that is there but
cannot be read.

Paths here are *spelled*: relative to the folder, `/`-joined, each component exactly as the
directory lists it (NFD stays NFD). `local_key` turns one into the key syncd knows the file by.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from syncd.core.names import normalize
from syncd.core.paths import RelPath, UnsafePath
from syncd.local.ignore import IgnoreRules


class EntryKind(enum.Enum):
    """What a directory entry says it is (its `d_type`); OTHER: anything else, or a kind the
    entry did not tell, which an `lstat` settles."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symbolic link"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a directory listing: its name as spelled on disk, and its kind."""

    name: str
    kind: EntryKind


class TreeReader(Protocol):
    """The two calls a walk makes (see the module docstring for what they raise)."""

    def list_dir(self, path: Path) -> list[Entry]:
        """Every entry of directory `path` (no `.` or `..`), in no particular order."""
        ...

    def lstat(self, path: Path) -> os.stat_result:
        """`path`'s own status: a symbolic link is not followed."""
        ...


class OsReader:
    """The real file system: `os.scandir` and `os.lstat`."""

    def list_dir(self, path: Path) -> list[Entry]:
        with os.scandir(path) as entries:
            return [Entry(entry.name, _kind(entry)) for entry in entries]

    def lstat(self, path: Path) -> os.stat_result:
        return os.lstat(path)


OS_READER: TreeReader = OsReader()


def _kind(entry: os.DirEntry[str]) -> EntryKind:
    try:
        if entry.is_symlink():
            return EntryKind.SYMLINK
        if entry.is_dir(follow_symlinks=False):
            return EntryKind.DIRECTORY
        if entry.is_file(follow_symlinks=False):
            return EntryKind.FILE
    except OSError:
        pass  # the entry had no type and could not be looked at: the caller's lstat will say why
    return EntryKind.OTHER


def mode_kind(mode: int) -> EntryKind:
    """The kind an `lstat` mode says."""
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIRECTORY
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    return EntryKind.OTHER


def not_synced_reason(mode: int) -> str:
    """Why an entry of this mode is skipped (SPEC, "Names": symlinks, sockets, FIFOs...)."""
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISDIR(mode):
        return "directory"
    return "not a regular file"


def join(parent: str, name: str) -> str:
    """`parent/name`, or `name` at the top (`parent` empty)."""
    return f"{parent}/{name}" if parent else name


def local_key(spelled: str) -> str:
    """The key of the file spelled `spelled` on disk: its NFC form, a `RelPath` when every
    component is safe. (An unsafe name keeps a plain `str` key: the top-level scan lists it as it
    always has, so its sync fails with the reason; a recursive walk skips it.)"""
    try:
        return RelPath.parse(spelled)
    except UnsafePath:
        return normalize(spelled)


def files_below(root: Path, start: str, rules: IgnoreRules, reader: TreeReader = OS_READER) -> Iterator[str]:
    """The spelled paths of every non-directory entry below directory `start` (spelled, relative
    to `root`), depth first. Ignored directories are not entered, ignored entries not yielded,
    symbolic links never followed. A directory that vanished or cannot be read is passed over:
    whoever needs to know looks again with the scanner, which reports it."""
    stack = [start]
    while stack:
        spelled = stack.pop()
        try:
            entries = reader.list_dir(root / spelled)
        except OSError:
            continue
        for entry in entries:
            child = join(spelled, entry.name)
            is_dir = entry.kind is EntryKind.DIRECTORY
            if rules.matches(child, is_dir=is_dir):
                continue
            if is_dir:
                stack.append(child)
            else:
                yield child
