"""A download's temp file, hashed as it is written (`HashingWriter`)."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO


class HashingWriter:
    """A download's temp file, hashed as it is written, so it need not be read back.

    The client writes front to back and starts a retry over at 0 (seek, truncate): that resets
    the hash. Any other seek leaves the hash unknown (`sha256()` None: read the file back)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._digest = hashlib.sha256()
        self._known = True

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        if self._known:
            self._digest.update(memoryview(data)[:written])
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if position == 0:
            self._digest, self._known = hashlib.sha256(), True
        else:
            self._known = False
        return position

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        if size is not None and size != self._file.tell():
            self._known = False
        return self._file.truncate(size)

    def seekable(self) -> bool:
        return True

    def sha256(self) -> str | None:
        return self._digest.hexdigest() if self._known else None
