"""The sha256 of a multipart upload, computed while its parts arrive in order.

Completing an upload must check its content against the declared hashcode. Reading the whole
file back at that moment costs a second pass over every byte while the client waits; instead,
each part that arrives next in order feeds a copy of the running hash (the hash the part's own
sink computes anyway), which becomes the running hash once the part is whole. Anything out of
the ordinary - a part out of order, a part sent again, a restart of the service - leaves the
upload without a running hash, and completion reads the file back as before.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

_BROKEN = -1


class PartHashes:
    """Running hashes of the multipart uploads in progress, by file id. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[int, tuple[int, Any]] = {}  # file id -> (parts hashed in order, their hash)
        # file id -> (part, hasher) of the one part that continues the running hash: a part that
        # started while its predecessor was still arriving got a fresh hasher and must not chain.
        self._next: dict[int, tuple[int, Any]] = {}

    def hasher_for(self, file_id: int, part: int) -> Any:
        """The hash object part `part`'s bytes should feed: the running hash continued when the
        part is the next in order, else a fresh one (that part breaks the chain when it ends)."""
        with self._lock:
            done, running = self._state.get(file_id, (0, None))
            if done != _BROKEN and part <= done:
                # Rewriting bytes already hashed (even if this attempt fails midway): the running
                # hash may no longer describe the file.
                self._state[file_id] = (_BROKEN, None)
            if part == done + 1:
                hasher = running.copy() if running is not None else hashlib.sha256()
                self._next[file_id] = (part, hasher)
                return hasher
        return hashlib.sha256()

    def part_done(self, file_id: int, part: int, hasher: Any, *, chained: bool = True) -> None:
        """Part `part` was received whole; `hasher` is what its bytes fed (see `hasher_for`)."""
        with self._lock:
            done, _ = self._state.get(file_id, (0, None))
            continues = self._next.get(file_id)
            if continues is not None and continues[0] == part:
                del self._next[file_id]
            if (chained and done != _BROKEN and part == done + 1 and continues is not None
                    and continues[0] == part and continues[1] is hasher):
                self._state[file_id] = (part, hasher)
            else:
                self._state[file_id] = (_BROKEN, None)

    def take(self, file_id: int, parts: int) -> str | None:
        """The sha256 of all `parts` parts if they arrived in order, else None; forgets the upload."""
        with self._lock:
            done, running = self._state.pop(file_id, (0, None))
            self._next.pop(file_id, None)
        return running.hexdigest() if done == parts and running is not None else None

    def forget(self, file_id: int) -> None:
        with self._lock:
            self._state.pop(file_id, None)
            self._next.pop(file_id, None)
