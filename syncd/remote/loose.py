"""Listing fields read loosely, for services that pin no shape (AgentRun, BeRay): a size, and a
modification time in seconds, milliseconds or ISO 8601. Anything else reads as absent."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def size_of(value: object) -> int | None:
    """A byte count: a non-negative integer (or a float that is one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def time_of(value: object) -> datetime | None:
    """A time: epoch seconds, epoch milliseconds (values above 1e11), or ISO 8601 (UTC when it
    names no zone)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        try:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return None
