"""Listing a local folder: its regular files (the top level, or the whole tree), hashed only
when they changed.

The journal doubles as the hash cache: a file whose size and mtime match its journal row keeps
the row's sha256, so a no-op pass over a large folder costs one directory listing per directory
and an `lstat` per file, no reads.

Invariants of a listing (SPEC, "Names"):

* Files are keyed by the NFC form of their path relative to the folder (a `RelPath`); a file
  whose path is spelled otherwise on disk (an NFD file or directory name) keeps that spelling in
  `LocalFile.spelling`, and every read, replace and trash uses it.
* Only regular files are listed. Symbolic links (never followed), FIFOs, sockets, devices, and
  subdirectories of a top-level folder are in `skipped`, with the reason, under their spelled
  path; so is, in a recursive walk, an entry whose name cannot be a key (a backslash, a
  control character...).
* `.syncd/` is never entered, nor a directory the ignore rules exclude (`build/`,
  `**/node_modules`): nothing below it is listed, whatever `!` patterns say. Ignore rules are
  matched against the spelled relative path, as git matches the path on disk.
* Two entries of one directory whose names are equal in NFC (files or directories alike) are
  both left alone on disk; the one the journal knows, else the NFC one, else the first in code
  point order, is listed, and the other is `shadowed` (with everything below it).
* What could not be read is in `errors` under its key: a file that cannot be stat'ed or read, a
  directory that cannot be listed (the rest of the walk goes on). Such a path is neither present
  nor absent (`LocalListing.unreadable`): nothing below it may be taken as deleted. An entry
  that vanished while the walk looked is simply not listed; the next look sees what happened.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from syncd.core.frozen import maker
from syncd.core.model import BaseEntry, LocalFile
from syncd.core.names import normalize
from syncd.core.paths import RelPath, UnsafePath, path_reason
from syncd.local.ignore import IgnoreRules, ignore_rules
from syncd.local.tree import OS_READER, Entry, EntryKind, TreeReader, join, local_key, mode_kind, not_synced_reason

HASH_CHUNK = 1024 * 1024
_make_local_file = maker(LocalFile)


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LocalListing:
    """What a scan found: syncable files, what it skipped and why, what it could not read."""

    #: key (NFC relative path) -> the file
    files: dict[str, LocalFile] = field(default_factory=dict)
    #: spelled relative path -> why it is not synced (a symlink, a FIFO, a subdirectory...)
    skipped: dict[str, str] = field(default_factory=dict)
    #: key of a file or directory -> why it could not be read
    errors: dict[str, str] = field(default_factory=dict)
    #: spelled relative path -> why it is not synced: another entry already has its NFC name
    shadowed: dict[str, str] = field(default_factory=dict)

    def unreadable(self, name: str) -> bool:
        """True when `name` (a key), or a directory above it, could not be read: the scan cannot
        tell whether it exists, so it must be neither uploaded nor taken as deleted."""
        return bool(self.errors) and (name in self.errors or any(head in self.errors for head in _heads(name)))


def stat_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns


def scan_folder(
    folder: Path,
    ignore: Iterable[str],
    known: Mapping[str, BaseEntry],
    *,
    only: Collection[str] | None = None,
    recursive: bool = False,
    exclude: Collection[str] = (),
    reader: TreeReader = OS_READER,
) -> LocalListing:
    """List `folder`'s regular files (its top level, or with `recursive` its whole tree); hash
    those whose (size, mtime) changed since `known` (the journal, by key).

    With `only` (keys), just those files are looked at: only the directories they live in are
    read, each directory still read whole, so a name stored in another normal form is found all
    the same. A key in `only` that names a directory stands for everything below it.
    `exclude`: keys of directories a recursive walk does not enter (the folder's `after_upload`
    directory, whose files are delivered and done). `reader`: the disk (a seam for tests).

    The folder itself must be readable: a failure to list it is raised, never reported as an
    empty folder. See the module docstring for the rest.
    """
    walk = _Walk(folder, ignore_rules(ignore), known, only, recursive, exclude, reader)
    walk.run()
    return walk.listing


def widen(names: Collection[str], known: Iterable[str]) -> set[str]:
    """`names` plus every key of `known` below one of them: a key reported for a directory that
    is gone (the watcher cannot list what it held) stands for every file tracked under it."""
    wanted = set(names)
    below = {key for key in known if any(head in wanted for head in _heads(key))}
    return wanted | below


def _heads(key: str) -> Iterable[str]:
    """The directories above `key`, innermost first."""
    cut = key.rfind("/")
    while cut > 0:
        key = key[:cut]
        yield key
        cut = key.rfind("/")


def _shadowed(by: str) -> str:
    return f"same name as {by!r} in another Unicode spelling: not synced, left as it is"


class _Walk:
    """One scan: a depth-first walk of the directories it needs, filling `listing`."""

    def __init__(
        self,
        folder: Path,
        rules: IgnoreRules,
        known: Mapping[str, BaseEntry],
        only: Collection[str] | None,
        recursive: bool,
        exclude: Collection[str],
        reader: TreeReader,
    ) -> None:
        self.folder, self.rules, self.known, self.recursive, self.reader = folder, rules, known, recursive, reader
        # One lstat per file: on the real disk, of a path string (no `Path` made per file).
        self.lstat = self._lstat_os if reader is OS_READER else self._lstat_reader
        self._prefix = os.path.join(folder, "")
        self.listing = LocalListing()
        self.exclude = {normalize(d) for d in exclude}
        self.only = None if only is None else set(only)
        #: directories to read for `only`: those above a wanted key
        self.on_the_way = set() if only is None else {head for key in only for head in _heads(key)}

    def run(self) -> None:
        # (key, spelled path, everything below is wanted); the folder itself is ("", "", ...).
        stack: list[tuple[str, str, bool]] = [("", "", self.only is None)]
        while stack:
            key, spelled, whole = stack.pop()
            try:
                entries = self.reader.list_dir(self.folder / spelled if spelled else self.folder)
            except (FileNotFoundError, NotADirectoryError):
                if not spelled:
                    raise
                continue  # gone since its parent was listed: what it held is gone from here too
            except OSError as exc:
                if not spelled:
                    raise
                self.listing.errors[key] = f"cannot read directory: {exc.strerror or exc}"
                continue
            self._directory(key, spelled, whole, entries, stack)

    def _directory(
        self, key: str, spelled: str, whole: bool, entries: list[Entry], stack: list[tuple[str, str, bool]]
    ) -> None:
        """Look at one directory's entries, grouped by NFC name (a group of two or more is one
        name in several spellings: one is looked at, the others are shadowed)."""
        groups: dict[str, list[tuple[str, Entry]]] = {}
        for entry in sorted(entries, key=lambda e: e.name):
            child_spelled = join(spelled, entry.name)
            if self.rules.matches(child_spelled, is_dir=entry.kind is EntryKind.DIRECTORY):
                continue
            child_key = join(key, normalize(entry.name))
            if whole or self._wanted(child_key, entry.kind):
                groups.setdefault(child_key, []).append((child_spelled, entry))
        for child_key, found in groups.items():
            if len(found) > 1:
                found.sort(key=lambda item: self._preference(child_key, *item))
                for other, _ in found[1:]:
                    self.listing.shadowed[other] = _shadowed(found[0][0])
            child_spelled, entry = found[0]
            self._look(child_key, child_spelled, entry, whole or child_key in (self.only or ()), stack)

    def _lstat_os(self, spelled: str) -> os.stat_result:
        return os.lstat(self._prefix + spelled)

    def _lstat_reader(self, spelled: str) -> os.stat_result:
        return self.reader.lstat(self.folder / spelled)

    def _wanted(self, key: str, kind: EntryKind) -> bool:
        """With `only`: is this entry one of the keys, or (walking the tree) a directory above one?"""
        assert self.only is not None
        if key in self.only:
            return True
        return self.recursive and kind in (EntryKind.DIRECTORY, EntryKind.OTHER) and key in self.on_the_way

    def _look(self, key: str, spelled: str, entry: Entry, whole: bool, stack: list[tuple[str, str, bool]]) -> None:
        """List one entry under `key`, skip it with a reason, or queue it to be walked."""
        if self.recursive:
            try:
                key = RelPath.parse(key)
            except UnsafePath as exc:
                self.listing.skipped[spelled] = f"unsafe name: {exc.reason}"
                return
        else:
            key = local_key(key)
        kind = entry.kind
        st: os.stat_result | None = None
        if kind in (EntryKind.FILE, EntryKind.OTHER):
            try:
                st = self.lstat(spelled)
            except FileNotFoundError:
                return  # vanished while we looked: the next pass will see
            except OSError as exc:
                self.listing.errors[key] = f"cannot stat: {exc.strerror or exc}"
                return
            kind = mode_kind(st.st_mode)  # what it is now, should it have been replaced since the listing
        if kind is EntryKind.SYMLINK:
            self.listing.skipped[spelled] = "symbolic link"
        elif kind is EntryKind.DIRECTORY:
            if not self.recursive:
                self.listing.skipped[spelled] = "directory"
            elif key not in self.exclude:
                stack.append((key, spelled, whole))
        elif kind is EntryKind.OTHER:
            assert st is not None
            self.listing.skipped[spelled] = not_synced_reason(st.st_mode)
        else:
            assert st is not None
            self._file(key, spelled, st)

    def _file(self, key: str, spelled: str, st: os.stat_result) -> None:
        if not isinstance(key, RelPath):  # a top-level name no remote may be sent: fails, reported
            self.listing.errors[key] = f"unsafe name: {path_reason(spelled)}"
            return
        base = self.known.get(key)
        if base is not None and (base.local_size, base.local_mtime_ns) == stat_key(st) and base.local_sha256:
            sha = base.local_sha256
        else:
            try:
                sha = sha256_of(self.folder / spelled)
            except FileNotFoundError:
                return
            except OSError as exc:
                self.listing.errors[key] = f"cannot read: {exc.strerror}"
                return
        # name, size, mtime_ns, sha256, spelling (a scan makes one per file)
        self.listing.files[key] = _make_local_file(
            key, st.st_size, st.st_mtime_ns, sha, spelled if spelled != key else None
        )

    def _preference(self, key: str, spelled: str, entry: Entry) -> tuple[int, str]:
        """Which of several spellings of one NFC name a scan takes: the journal's, then NFC, then
        code point order (so the choice is stable from pass to pass). A directory is the
        journal's when the journal knows a file below it under that spelling."""
        if entry.kind is EntryKind.DIRECTORY:
            below = [(base.local_name or name) for name, base in self.known.items() if name.startswith(key + "/")]
            if any(name.startswith(spelled + "/") for name in below):
                return 0, spelled
        else:
            base = self.known.get(key)
            if base is not None and (base.local_name or key) == spelled:
                return 0, spelled
        return (1 if entry.name == normalize(entry.name) else 2), spelled
