"""Folder-relative paths: the one key a file is known by, on both sides.

A `RelPath` is a path relative to a synced folder: one or more components joined by `/`,
each of them a safe name (`syncd.core.names.unsafe_reason`), compared in Unicode NFC. Its
`key` is what the scanner, planner, journal, queue, watcher and reports use; the spelling a
side uses on disk or on the wire is kept next to it by whoever read it (SPEC, "Names": each
side keeps its own spelling, syncd never renames to normalise).

Invariants:
* `RelPath.parse(text)` either returns a path whose every component is safe, or raises
  `UnsafePath` naming the first unsafe component and why. Nothing else makes a `RelPath`.
* `key` is NFC and `/`-joined, never starts or ends with `/`, never holds `//`, `.` or `..`:
  joining it under a folder can never leave that folder.
* Equality, hashing and ordering are by `key` (code point order, so a parent sorts before
  its children and siblings sort alike on every machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.core.names import normalize, unsafe_reason

SEPARATOR = "/"


class UnsafePath(ValueError):
    """A path that must never be written locally: which component, and why."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"unsafe path {text!r}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, order=True, slots=True)
class RelPath:
    """A checked, NFC, `/`-joined path inside a synced folder."""

    key: str
    parts: tuple[str, ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> RelPath:
        """The path `text` names (any Unicode spelling, `/`-separated); `UnsafePath` if a
        component is unsafe or the path is empty."""
        reason = path_reason(text)
        if reason is not None:
            raise UnsafePath(text, reason)
        parts = tuple(normalize(part) for part in text.split(SEPARATOR))
        return cls(SEPARATOR.join(parts), parts)

    @classmethod
    def of_parts(cls, parts: tuple[str, ...] | list[str]) -> RelPath:
        """The path of these components (each checked as a single name)."""
        for part in parts:
            if SEPARATOR in part:
                raise UnsafePath(part, "name contains a path separator")
        return cls.parse(SEPARATOR.join(parts))

    @property
    def name(self) -> str:
        """The last component."""
        return self.parts[-1]

    @property
    def parent(self) -> RelPath | None:
        """The folder holding this path, or None at the top of the synced folder."""
        return None if len(self.parts) == 1 else RelPath(SEPARATOR.join(self.parts[:-1]), self.parts[:-1])

    @property
    def depth(self) -> int:
        """1 for a file at the top of the folder, 2 one folder down, and so on."""
        return len(self.parts)

    def ancestors(self) -> list[RelPath]:
        """Every folder above this path, outermost first."""
        return [RelPath(SEPARATOR.join(self.parts[:i]), self.parts[:i]) for i in range(1, len(self.parts))]

    def child(self, name: str) -> RelPath:
        """This path with one more component (checked)."""
        return RelPath.of_parts((*self.parts, name))

    def is_under(self, other: RelPath) -> bool:
        """True when this path is inside folder `other` (not equal to it)."""
        return len(self.parts) > len(other.parts) and self.parts[: len(other.parts)] == other.parts

    def __str__(self) -> str:
        return self.key


def path_reason(text: str) -> str | None:
    """Why `text` is not a safe folder-relative path, or None when it is."""
    if not text:
        return "empty path"
    for part in text.split(SEPARATOR):
        reason = unsafe_reason(part)
        if reason is not None:
            return f"component {part!r}: {reason}" if SEPARATOR in text else reason
    return None
