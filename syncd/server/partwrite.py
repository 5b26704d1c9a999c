"""Writers of multipart parts, fenced by their upload's state.

A part is written straight into its upload's sparse file as it arrives. Completing an upload
renames that file to the blob, and aborting or deleting it unlinks it; a part still arriving at
that moment holds an open descriptor of the same inode. Without a fence its late bytes would
land in the completed blob (or in nothing anyone owns). So every writer is registered by upload
id, and `fence(file_id)` - called by complete, abort, delete and expiry before they touch the
file - closes them all: any later write raises instead of writing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from syncd.server.problems import ApiError


class PartWriter:
    """Writes one part at its offset of the upload's file, until fenced."""

    def __init__(self, writers: PartWriters, file_id: int, fd: int, offset: int) -> None:
        self._writers = writers
        self.file_id = file_id
        self._fd: int | None = fd
        self.offset = offset

    def write(self, data: bytes) -> int:
        with self._writers.lock:
            if self._fd is None:
                raise ApiError(409, f"upload {self.file_id} was completed, aborted or deleted while this part arrived")
            written = os.pwrite(self._fd, data, self.offset)
        self.offset += written
        return written

    @property
    def fenced(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        with self._writers.lock:
            self._close_locked()
            self._writers.forget(self)

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PartWriters:
    """Every open part writer, by upload id. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._open: dict[int, set[PartWriter]] = {}

    def open(self, file_id: int, path: Path, offset: int) -> PartWriter:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        writer = PartWriter(self, file_id, fd, offset)
        with self.lock:
            self._open.setdefault(file_id, set()).add(writer)
        return writer

    def forget(self, writer: PartWriter) -> None:
        with self.lock:
            writers = self._open.get(writer.file_id)
            if writers is not None:
                writers.discard(writer)
                if not writers:
                    del self._open[writer.file_id]

    def fence(self, file_id: int) -> int:
        """Stop every writer of `file_id` from writing again; how many were stopped."""
        with self.lock:
            writers = self._open.pop(file_id, set())
            for writer in writers:
                writer._close_locked()
        return len(writers)

    def busy(self, file_id: int) -> bool:
        """Whether a part of `file_id` is being written right now."""
        with self.lock:
            return bool(self._open.get(file_id))
