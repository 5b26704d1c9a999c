"""Listing a local folder: top-level regular files, hashed only when they changed.

The journal doubles as the hash cache: a file whose size and mtime match its
journal row keeps the row's sha256, so a no-op pass over a large folder costs
one `scandir` and a `stat` per file, no reads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from syncd.core.model import BaseEntry, LocalFile
from syncd.core.names import normalize
from syncd.core.paths import RelPath
from syncd.local.ignore import ignore_rules

HASH_CHUNK = 1024 * 1024


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

    files: dict[str, LocalFile] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: on-disk spelling -> why it is not synced: another file already has its NFC name
    shadowed: dict[str, str] = field(default_factory=dict)


def stat_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_size, st.st_mtime_ns


def scan_folder(
    folder: Path, ignore: Iterable[str], known: Mapping[str, BaseEntry], *, only: Collection[str] | None = None
) -> LocalListing:
    """List `folder`'s top-level regular files; hash those whose (size, mtime) changed.

    With `only`, just those (NFC) names are looked at: the directory is still
    read once, so a name stored in another normal form is found all the same.
    Files are keyed by NFC name and keep their on-disk spelling. When two
    spellings share an NFC name, the one the journal knows (else the NFC one,
    else the first in code-point order) is synced and the other is `shadowed`.
    """
    rules = ignore_rules(ignore)
    listing = LocalListing()
    taken: dict[str, str] = {}  # NFC name -> the spelling synced for it
    with os.scandir(folder) as entries:
        for entry in entries:
            if rules.matches(entry.name):
                continue
            name = normalize(entry.name)
            if only is not None and name not in only:
                continue
            other = taken.get(name)
            if other is not None:
                if _preference(other, known) < _preference(entry.name, known):
                    listing.shadowed[entry.name] = _shadowed(other)
                    continue
                listing.shadowed[other] = _shadowed(entry.name)
                for found in (listing.files, listing.skipped, listing.errors):
                    found.pop(name, None)
            taken[name] = entry.name
            _look(entry, name, known, listing)
    return listing


def _shadowed(by: str) -> str:
    return f"same name as {by!r} in another Unicode spelling: not synced, left as it is"


def _look(entry: os.DirEntry[str], name: str, known: Mapping[str, BaseEntry], listing: LocalListing) -> None:
    """Add one directory entry to `listing` under its NFC `name`."""
    try:
        if entry.is_symlink():
            listing.skipped[name] = "symbolic link"
            return
        if entry.is_dir(follow_symlinks=False):
            listing.skipped[name] = "directory"
            return
        if not entry.is_file(follow_symlinks=False):
            listing.skipped[name] = "not a regular file"
            return
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return  # vanished while we looked: the next pass will see
    except OSError as exc:
        listing.errors[name] = f"cannot stat: {exc.strerror}"
        return
    base = known.get(name)
    if base is not None and (base.local_size, base.local_mtime_ns) == stat_key(st) and base.local_sha256:
        sha = base.local_sha256
    else:
        try:
            sha = sha256_of(Path(entry.path))
        except FileNotFoundError:
            return
        except OSError as exc:
            listing.errors[name] = f"cannot read: {exc.strerror}"
            return
    spelling = entry.name if entry.name != name else None
    listing.files[name] = LocalFile(
        name=RelPath(name), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha, spelling=spelling
    )


def _preference(spelling: str, known: Mapping[str, BaseEntry]) -> tuple[int, str]:
    """Which of several spellings of one NFC name a scan takes: the journal's, then NFC, then
    code-point order (so the choice is stable from pass to pass)."""
    name = normalize(spelling)
    base = known.get(name)
    if base is not None and (base.local_name or name) == spelling:
        return 0, spelling
    return (1 if spelling == name else 2), spelling
