"""Folder-relative paths: the one key a file is known by, on both sides.

A `RelPath` is a path relative to a synced folder: one or more components joined by `/`,
each of them a safe name (`syncd.core.names.unsafe_reason`), in Unicode NFC. It is a `str`
(so it is a dict key, a JSON string and a journal column as it is), but only `parse` and the
methods below make one, so a `RelPath` in a signature means "checked". The scanner, planner,
journal, queue, watcher, executor and reports all key files by it; the spelling each side uses
on disk or on the wire travels next to it in the value that side read (`LocalFile.spelling`,
`RemoteFile.path`, the journal's `local_name`/`remote_name`): SPEC, "Names" — each side keeps
its own spelling, syncd never renames to normalise.

Invariants:
* `RelPath.parse(text)` either returns a path whose every component is safe, or raises
  `UnsafePath` naming the first unsafe component and why.
* A `RelPath` is NFC and `/`-joined, never starts or ends with `/`, never holds `//`, `.` or
  `..`: joining it under a folder can never leave that folder.
* Equality, hashing and ordering are the string's (code point order, so a folder sorts before
  what it holds and siblings sort alike on every machine).
"""

from __future__ import annotations

from syncd.core.names import normalize, unsafe_reason

SEPARATOR = "/"


class UnsafePath(ValueError):
    """A path that must never be written locally: which component, and why."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"unsafe path {text!r}: {reason}")
        self.text = text
        self.reason = reason


class RelPath(str):
    """A checked, NFC, `/`-joined path inside a synced folder."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> RelPath:
        """The path `text` names (any Unicode spelling, `/`-separated); `UnsafePath` if a
        component is unsafe or the path is empty."""
        if type(text) is cls:
            return text
        reason = path_reason(text)
        if reason is not None:
            raise UnsafePath(text, reason)
        return cls(normalize(text))

    @classmethod
    def of_parts(cls, parts: tuple[str, ...] | list[str]) -> RelPath:
        """The path of these components (each checked as a single name)."""
        for part in parts:
            if SEPARATOR in part:
                raise UnsafePath(part, "name contains a path separator")
        return cls.parse(SEPARATOR.join(parts))

    @property
    def key(self) -> str:
        """The plain string (NFC, `/`-joined)."""
        return str.__str__(self)

    @property
    def parts(self) -> tuple[str, ...]:
        """The components, outermost first."""
        return tuple(self.split(SEPARATOR))

    @property
    def name(self) -> str:
        """The last component."""
        return self.rpartition(SEPARATOR)[2]

    @property
    def parent(self) -> RelPath | None:
        """The folder holding this path, or None at the top of the synced folder."""
        head, sep, _ = self.rpartition(SEPARATOR)
        return RelPath(head) if sep else None

    @property
    def depth(self) -> int:
        """1 for a file at the top of the folder, 2 one folder down, and so on."""
        return self.count(SEPARATOR) + 1

    def ancestors(self) -> list[RelPath]:
        """Every folder above this path, outermost first."""
        parts = self.parts
        return [RelPath(SEPARATOR.join(parts[:i])) for i in range(1, len(parts))]

    def child(self, name: str) -> RelPath:
        """This path with one more component (checked)."""
        return RelPath.of_parts((*self.parts, name))

    def sibling(self, name: str) -> RelPath:
        """The path of `name` (one component, checked) in this path's folder."""
        parent = self.parent
        return RelPath.of_parts([name]) if parent is None else parent.child(name)

    def is_under(self, other: str) -> bool:
        """True when this path is inside folder `other` (not equal to it)."""
        return self.startswith(other + SEPARATOR)

    def __repr__(self) -> str:
        # Messages quote paths with `!r` (quotes, control characters escaped): a person reads
        # 'video.mp4', not RelPath('video.mp4').
        return str.__repr__(self)


def path_reason(text: str) -> str | None:
    """Why `text` is not a safe folder-relative path, or None when it is."""
    if not text:
        return "empty path"
    for part in text.split(SEPARATOR):
        reason = unsafe_reason(part)
        if reason is not None:
            return f"component {part!r}: {reason}" if SEPARATOR in text else reason
    return None
