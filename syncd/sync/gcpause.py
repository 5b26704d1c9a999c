"""The cyclic garbage collector, paused while a pass looks at a folder.

A pass makes an object or more per file (the listing, the journal, the scan, the plan), keeps
them all until it ends, and puts none of them in a reference cycle. The collector, triggered by
so many allocations, would walk every one of them again and again for nothing: at 100,000 files
that is a good part of the pass. `collection_paused()` turns it off for the duration; nested
and from several threads at once, it is on again (if it was on at first) once the last ends.
Whatever the pass freed is freed by reference counting as always; only cycles wait.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = True


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (reference counting goes on)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
