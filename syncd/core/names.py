"""Which file names are safe to write, on either side.

A name is safe when it is one path component that every filesystem syncd
writes to can hold and that cannot escape the folder: no separators, no NUL
or other control characters, not `.` or `..`, not empty, at most 255 bytes in
UTF-8. Names are compared in Unicode NFC (SPEC, "Names"). The reference server
refuses unsafe names on upload; the planner refuses them on download. Both use
this one function, so the two can never disagree.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 255
#: The control characters: Unicode category Cc, exactly these two ranges.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def unsafe_reason(name: str) -> str | None:
    """Why `name` is not a safe single path component, or None when it is."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"reserved name {name!r}"
    if "/" in name or "\\" in name:
        return "name contains a path separator"
    if "\x00" in name:
        return "name contains NUL"
    if _CONTROL.search(name):
        return "name contains a control character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid Unicode"
    if len(encoded) > MAX_NAME_BYTES:
        return f"name is {len(encoded)} bytes long (the limit is {MAX_NAME_BYTES})"
    return None


def is_safe(name: str) -> bool:
    """True when `name` may be written as a file in a synced folder."""
    return unsafe_reason(name) is None


def normalize(name: str) -> str:
    """The form names are compared in: Unicode NFC."""
    return unicodedata.normalize("NFC", name)
