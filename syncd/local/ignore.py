"""Which paths a folder ignores: gitignore-style patterns, matched by `pathspec`.

This module is the one place that knows the library. A folder's rules are the built-in list
followed by its own `ignore` patterns, as lines of one `.gitignore`: a pattern without `/`
matches a name at any depth, a leading `/` anchors it to the folder's top, a trailing `/`
makes it match directories only (and so everything under them), `**` spans directories,
and `!` re-includes what an earlier line excluded, built-ins included. Matching is
case-sensitive. Two differences, because a pattern is a TOML string and not a line of a file:
a leading `#` is a literal `#` (an entry is never a comment) and trailing spaces are kept.

The marker directory (`.syncd`) is ignored by a rule outside the patterns: no `!` brings
it back.

Matching stays about as cheap as one regular expression per name: the patterns that
exclude are also joined into one expression, and only a path it matches (few, in a
folder) is asked of the library, whose answer is final.

The library is imported when rules are first compiled (`_spec`), not with this module: loading
a config whose folders have no patterns of their own, as `syncd status` does, never needs it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec

MARKER = ".syncd"
BUILTIN_PATTERNS = ("*.part", "*.crdownload", "*.tmp", "~$*", ".~lock.*", "*~", ".*.swp", ".DS_Store")

# How pathspec (1.x) writes a pattern without `/` ("*.bak": any depth, a file or a directory):
# `^(?:.+/)?` + the name's expression + `(?:(?P<ps_d>/)|$)`. The screen writes the two ends once
# for all such patterns (far cheaper than once per pattern, and no named group twice).
_ANY_DEPTH = "^(?:.+/)?"
_NAME_END = "(?:(?P<ps_d>/)|$)"
_DIR_GROUP = "(?P<ps_d>/)"


def _line(pattern: str) -> str:
    """The `.gitignore` line for one configured pattern: a leading `#` escaped (a list entry is
    not a comment) and trailing spaces escaped (git would strip them; TOML quotes show them)."""
    line = "\\" + pattern if pattern.startswith("#") else pattern
    stripped = line.rstrip(" ")
    spaces = len(line) - len(stripped)
    if not spaces:
        return line
    escaped = (len(stripped) - len(stripped.rstrip("\\"))) % 2  # the first space already is
    return stripped + " " * escaped + "\\ " * (spaces - escaped)


def _spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """`lines` as one `.gitignore`, compiled by the library's `simple` backend (whose patterns
    carry the `re` expressions `_screen` joins); ValueError for a line it refuses."""
    import pathspec  # here, not at the top: see the module's doc

    return pathspec.GitIgnoreSpec.from_lines(lines, backend="simple")


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be an ignore pattern, or None when it can."""
    if "\x00" in pattern:
        return "must not contain a NUL character"
    try:
        [compiled] = _spec([_line(pattern)]).patterns
    except ValueError as exc:  # pathspec's GitIgnorePatternError is a ValueError
        cause = exc.__cause__ or exc
        return f"{pattern!r} is not a valid gitignore pattern ({cause})"
    if compiled.include is None:
        return (
            f"{pattern!r} matches nothing as a gitignore pattern "
            "(an unclosed '[' or a lone '/'; write '\\[' for a literal '[')"
        )
    return None


class IgnoreRules:
    """The built-in list plus one folder's patterns; `matches` answers for one path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            problem = pattern_problem(pattern)
            if problem is not None:
                raise ValueError(problem)
        #: the `.gitignore` lines the folder's patterns became
        self.lines = tuple(_line(p) for p in self.patterns)
        self._spec = _spec([*BUILTIN_PATTERNS, *self.lines])
        self._screen = _screen(self._spec)

    def matches(self, relpath: str, *, is_dir: bool = False) -> bool:
        """True when `relpath` (`/`-joined, relative to the folder; a bare name at the top) is
        ignored. `is_dir`: it names a directory, which `logs/`-style patterns match."""
        if MARKER in relpath and MARKER in relpath.split("/"):
            return True
        path = relpath + "/" if is_dir else relpath
        if self._screen is not None and self._screen(path) is None:
            return False  # no excluding pattern matches: nothing can ignore it
        return self._spec.match_file(path, separators=())

    def covers(self, relpath: str, *, is_dir: bool = False) -> bool:
        """True when `relpath` is ignored or lies in an ignored directory: what a walk that does
        not enter ignored directories never reaches (as in git, a `!` pattern cannot bring back
        a path whose directory is excluded). Used where one path is judged alone (a file event)."""
        head = relpath
        while (cut := head.rfind("/")) > 0:
            head = head[:cut]
            if self.matches(head, is_dir=True):
                return True
        return self.matches(relpath, is_dir=is_dir)

    def __repr__(self) -> str:
        return f"IgnoreRules({self.patterns!r})"


def _screen(spec: pathspec.GitIgnoreSpec) -> Callable[[str], object] | None:
    """One expression that matches whatever any excluding pattern of `spec` matches (the
    patterns' own expressions, joined), or None when they cannot be joined."""
    names: list[str] = []  # patterns of the any-depth shape, their middles
    others: list[str] = []
    for pattern in spec.patterns:
        if not pattern.include:
            continue  # a no-op or a re-include: it never makes a path ignored
        regex = getattr(pattern, "regex", None)
        if not isinstance(regex, re.Pattern) or regex.flags & ~re.UNICODE:
            return None
        text = regex.pattern
        if text.startswith(_ANY_DEPTH) and text.endswith(_NAME_END):
            names.append(f"(?:{text[len(_ANY_DEPTH):-len(_NAME_END)]})")
        else:
            others.append(f"(?:{text.replace(_DIR_GROUP, '/')})")
    if names:
        others.insert(0, f"{_ANY_DEPTH}(?:{'|'.join(names)})(?:/|$)")
    if not others:
        return lambda _path: None
    try:
        return re.compile("|".join(others)).search
    except re.error:
        return None  # the library's expressions changed shape: ask it about every path


@functools.lru_cache(maxsize=64)
def _rules(patterns: tuple[str, ...]) -> IgnoreRules:
    return IgnoreRules(patterns)


def ignore_rules(patterns: Iterable[str]) -> IgnoreRules:
    """The rules for a folder's `ignore` patterns, built once per distinct tuple of them."""
    return _rules(tuple(patterns))


def is_ignored(name: str, patterns: Iterable[str], *, recursive: bool = False) -> bool:
    """True when the remote path `name` is ignored under a folder's `ignore` patterns: in a
    recursive folder, also when a directory above it is. A path with a `/` names no file of a
    top-level folder, and a path into the marker none of any folder: no rule applies, so the
    name checks further on refuse it (a hostile `.syncd/tmp/x` is reported, not hidden)."""
    if "/" not in name:
        return ignore_rules(patterns).matches(name)
    if not recursive or name.split("/", 1)[0] == MARKER:
        return False
    return ignore_rules(patterns).covers(name)
