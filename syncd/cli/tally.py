"""What the progress display shows, as plain values and plain text (no terminal here:
`cli/progress.py` draws it).

Counts come from the queue alone: the work of a drain is the rows outstanding when it starts,
plus rows queued meanwhile (a file planned again because it changed under its transfer); a row
is done once it left the outstanding set (finished, or failed for good: those are counted apart).
Bytes are the rows' `size` (what a transfer may move; 0 for deletions and moves), counted when
the row is finished: a large file's bytes arrive at its end, a failed file's never.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncd.cli.text import shown
from syncd.state.queue import Job


@dataclass(frozen=True, slots=True)
class Start:
    """The queue when the drain started: outstanding rows and bytes, the newest row id, and
    the time (the queue's clock)."""

    files: int
    bytes: int
    newest_id: int
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Current:
    """One transfer under way."""

    kind: str
    name: str
    size: int | None


@dataclass(frozen=True, slots=True)
class Tally:
    """Where a drain is."""

    files_done: int  # failed ones included
    files_total: int
    bytes_done: int  # failed ones not included
    bytes_total: int
    current: tuple[Current, ...] = ()
    files_failed: int = 0

    @property
    def by_bytes(self) -> bool:
        """Whether progress, rate and time left are measured in bytes (else in files: a drain
        of deletions and moves only)."""
        return self.bytes_total > 0

    @property
    def completed(self) -> int:
        return self.bytes_done if self.by_bytes else self.files_done

    @property
    def total(self) -> int:
        return self.bytes_total if self.by_bytes else self.files_total


def tally(
    start: Start,
    outstanding: tuple[int, int],
    queued_since: tuple[int, int],
    running: Iterable[Job],
    failed: tuple[int, int] = (0, 0),
) -> Tally:
    """The tally from the start and one look at the queue: `outstanding` (rows, bytes) now,
    `queued_since` the part of it queued after the start, `failed` the rows that failed for
    good since the start."""
    left_files, left_bytes = outstanding[0] - queued_since[0], outstanding[1] - queued_since[1]
    return Tally(
        files_done=max(0, start.files - left_files),
        files_total=start.files + queued_since[0],
        bytes_done=max(0, start.bytes - left_bytes - failed[1]),
        bytes_total=start.bytes + queued_since[1],
        current=tuple(Current(job.kind, job.name, job.size) for job in running),
        files_failed=failed[0],
    )


def size_text(size: float) -> str:
    """`size` bytes in decimal units, as file managers show them: 382 B, 1.2 kB, 3.4 MB."""
    if size < 1000:
        return f"{int(size)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 999.95 or unit == "TB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def counts_text(t: Tally) -> str:
    """`152/303 files · 1 failed · 1.2/2.4 MB` (no failures, no bytes when nothing has a
    size: left out)."""
    files = f"{t.files_done}/{t.files_total} files"
    if t.files_failed:
        files += f" · {t.files_failed} failed"
    if not t.by_bytes:
        return files
    total = size_text(t.bytes_total)
    unit = total.split()[1]
    return f"{files} · {_in_unit(t.bytes_done, unit)}/{total}"


def _in_unit(size: int, unit: str) -> str:
    """`size` in the unit of the total, without it: 0.4 (of 2.4 MB)."""
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
    return str(size) if scale == 1 else f"{size / scale:.1f}"


def rate_text(speed: float | None, *, by_bytes: bool) -> str:
    """The rate: `3.1 MB/s`, `12 files/s`; `--` before there is one."""
    if speed is None:
        return "--/s"
    return f"{size_text(speed)}/s" if by_bytes else f"{speed:.0f} files/s"


def eta_text(seconds: float | None) -> str:
    """Time left: `eta 0:01:05`; `eta --` before it can be told."""
    if seconds is None:
        return "eta --"
    whole = int(seconds + 0.5)
    return f"eta {whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


#: How a transfer's kind reads in the display.
_VERBS = {
    "upload": "upload", "rename": "move", "download": "download", "delete_local": "delete",
    "delete_remote": "delete", "conflict": "conflict", "compare": "compare", "race": "compare",
}


def current_text(current: Current) -> str:
    """`upload   photos/IMG_0042.jpg  1.2 MB`; the name with control characters escaped."""
    size = f"  {size_text(current.size)}" if current.size else ""
    return f"{_VERBS.get(current.kind, current.kind):<8} {shown(current.name)}{size}"
