"""Counting in messages: ``1 file``, ``2 files``, never ``1 files``."""

from __future__ import annotations


def counted(n: int, word: str, plural: str | None = None) -> str:
    """`n` and `word`, in the plural (``word + "s"`` unless given) unless `n` is 1."""
    return f"{n} {word if n == 1 else plural or word + 's'}"
