"""A bounded, seekable window on an open file, for streaming uploads.

httpx streams a multipart file field by calling `read(64 KiB)` until it gets
b"", after `seek(0)`; it learns the field's length by seeking to the end. A
`FileSlice` answers those calls for bytes `[start, start + length)` of the
file, so an upload (or one part of it) never holds more than one chunk in
memory, and never sends more than `length` bytes even if the file grew.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import BinaryIO

from syncd.errors import FileShrank


class FileSlice(io.RawIOBase):
    """Bytes `[start, start + length)` of `file`; position 0 is `start`."""

    def __init__(
        self,
        file: BinaryIO,
        start: int,
        length: int,
        *,
        name: str = "",
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._file = file
        self._start = start
        self._length = length
        self._pos = 0
        self._name = name
        # Called with the position reached after every read (bytes of the slice sent so far).
        self._on_read = on_read

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable (httpx seeks to 0 and to the end)."""
        return True

    def tell(self) -> int:
        """Position within the slice."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move within the slice; positions are clamped to `[0, length]`."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + offset), self._length)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill `buffer` from the file; b"" only at the end of the slice."""
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(want)
        if not data:
            # The file shrank under us: what we promised in Content-Length cannot be sent.
            raise FileShrank(
                f"upload {self._name!r} failed: the local file is shorter than expected "
                f"({self._start + self._pos} of {self._start + self._length} bytes); it changed"
            )
        buffer[: len(data)] = data
        self._pos += len(data)
        if self._on_read is not None:
            self._on_read(self._pos)
        return len(data)
