"""Names as a person at a terminal is shown them.

A file name may hold any character but `/` and NUL: a newline would break the one line per
action that scripts and eyes rely on, an ESC would drive the terminal. Every human output
passes names through `shown`; JSON output keeps them exact.
"""

from __future__ import annotations

import re

#: C0 controls, DEL, C1 controls, and the lone surrogates that `surrogateescape` decoding
#: leaves for bytes that are not UTF-8.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def shown(name: str) -> str:
    """`name` with control characters (C0, DEL, C1) and lone surrogates replaced by visible
    escapes (`\\n`, `\\t`, `\\x1b`, `\\x7f`, `\\udcff`); all other characters as they are."""
    return _UNSHOWABLE.sub(
        lambda m: _NAMED.get(m.group()) or (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF else f"\\u{ord(m.group()):04x}"
        ),
        name,
    )
