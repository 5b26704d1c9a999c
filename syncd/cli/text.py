"""Text as a terminal shows it: names and messages from disks and remotes, made safe to print.

A file name may hold any character but `/` and NUL: a newline would break a line-per-item
listing in two, an escape sequence would drive the terminal. Human output passes such text
through `shown`; JSON output keeps it exact (JSON escapes it itself).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, lone surrogates (a name
# that was not valid UTF-8 on disk, decoded with surrogateescape).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(name: str) -> str:
    """`name` with every control character and lone surrogate replaced by a visible escape
    (``\\n``, ``\\x1b``, ``\\udcff``), so it prints on one line and drives no terminal."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        if char in _NAMED:
            return _NAMED[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSHOWABLE.sub(escape, name)
