"""The names syncd gives the copies it makes: conflicted copies (SPEC, "Conflicts") and the
copies of racing versions (SPEC, "Concurrent writers"), siblings of the file they copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

from syncd.core.paths import RelPath
from syncd.remote.base import RemoteFile


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
