"""What `MemoryRemote` keeps: its files and their parts, injected faults, and the reads of a
local file a put makes. Plain values and functions; the remote's lock guards them.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from syncd.core.names import unsafe_reason
from syncd.errors import RemoteError, TransientError
from syncd.remote.base import Capability, Progress, RemoteFile

#: How much of a body moves per step (a progress report each).
CHUNK = 64 * 1024


def now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class StoredFile:
    id: int
    place: str
    path: str
    size: int
    sha256: str | None  # given by the uploader: checked against the content when complete
    written_at: datetime
    complete: bool
    mtime: datetime
    data: bytes = b""
    digest: str = ""  # sha256 of `data`, once complete
    parts: dict[int, bytes] = dataclasses.field(default_factory=dict)  # a resumable upload's, so far
    part_size: int = 0

    def listed(self, caps: Capability) -> RemoteFile:
        return RemoteFile(
            path=self.path, version=str(self.id), size=self.size,
            sha256=self.digest if Capability.SHA256 in caps else None,
            mtime=self.mtime if Capability.MTIME in caps else None,
            written_at=self.written_at, seq=self.id,
        )


@dataclasses.dataclass
class Fault:
    error: RemoteError
    after: bool


def mtime_of(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)

def read_range(path: Path, start: int, length: int, what: str, progress: Progress | None, base: int = 0) -> bytes:
    """`length` bytes of `path` from `start`, reported to `progress` as `base` + bytes so far."""
    chunks: list[bytes] = []
    got = 0
    try:
        with path.open("rb") as file:
            file.seek(start)
            while got < length:
                chunk = file.read(min(CHUNK, length - got))
                if not chunk:
                    raise TransientError(
                        f"{what} failed: the local file is shorter than expected ({got} of {length} bytes)"
                    )
                chunks.append(chunk)
                got += len(chunk)
                if progress is not None:
                    progress(base + got)
    except OSError as exc:
        raise TransientError(f"{what} failed: cannot read {path.name!r}: {exc.strerror}") from None
    return b"".join(chunks)



def is_safe_part(part: str) -> bool:
    return unsafe_reason(part) is None


def number_of(version: str) -> int:
    """The file number a version names (-1, naming nothing, for text that is not one)."""
    try:
        return int(version)
    except ValueError:
        return -1
