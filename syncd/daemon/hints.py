"""Hints from remotes that say when a place changed (an event stream): list those folders now.

One thread per folder whose remote follows its place (`Remote.watch`); a remote that says
nothing returns at once and its thread ends (polling finds its changes). A hint marks the folder;
the daemon's loop lists marked folders once they have been quiet for DEBOUNCE (a burst of events
is one listing), or at the latest MAX_DELAY after the first hint. Polling goes on regardless: a
hint only makes a listing come sooner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

import structlog

from syncd.config import FolderConfig
from syncd.remote.base import Remote

log = structlog.get_logger("syncd.daemon.hints")

DEBOUNCE = 0.3
MAX_DELAY = 2.0


class Hints:
    """The folders some remote said changed, and when to list them."""

    def __init__(self, wake: Callable[[], object], clock: Callable[[], float] = time.monotonic) -> None:
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._marked: dict[str, tuple[float, float]] = {}  # folder -> (first hint, last hint)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, remotes: Mapping[str, Remote], folders: Iterable[FolderConfig]) -> None:
        """Follow every folder's remote (those that say nothing end at once)."""
        for folder in folders:
            remote = remotes.get(folder.remote)
            if remote is None:
                continue
            thread = threading.Thread(target=self._follow, args=(remote, folder), daemon=True,
                                      name=f"syncd-hints-{folder.name}")
            self._threads.append(thread)
            thread.start()

    def _follow(self, remote: Remote, folder: FolderConfig) -> None:
        try:
            if remote.watch(folder.place, lambda: self.hint(folder.name), self._stop):
                log.debug("stopped following the remote", folder=folder.name)
        except Exception as exc:  # noqa: BLE001 - hints are an optimisation: polling carries on
            log.warning("cannot follow the remote's events; polling carries on", folder=folder.name, error=str(exc))

    def hint(self, folder: str) -> None:
        """The remote says `folder`'s place may have changed (any thread)."""
        now = self._clock()
        with self._lock:
            first, _ = self._marked.get(folder, (now, now))
            self._marked[folder] = (first, now)
        self._wake()

    def due(self, now: float) -> set[str]:
        """The marked folders to list now (unmarked by this call)."""
        with self._lock:
            ready = {f for f, (first, last) in self._marked.items()
                     if now - last >= DEBOUNCE or now - first >= MAX_DELAY}
            for folder in ready:
                del self._marked[folder]
        return ready

    def deadline(self) -> list[float]:
        """When the next marked folder becomes due (empty: none marked)."""
        with self._lock:
            if not self._marked:
                return []
            return [min(min(last + DEBOUNCE, first + MAX_DELAY) for first, last in self._marked.values())]

    def stop(self) -> None:
        """Stop following. A thread blocked reading its stream ends when the remote's client is
        closed (the daemon closes them next); the daemon does not wait for it."""
        self._stop.set()
        for thread in self._threads:
            thread.join(0.1)
