"""Which remotes get no work now, and why: refused us (401/403), or failing (its breaker).

Two causes, kept apart:

* *refused*: a listing or a transfer answered with an authentication error (`FatalError`,
  `AuthExpired` among them). Set by whoever saw it; lifted only by a listing the remote
  answers again (the pass's, or the daemon's poll): a transfer that works says nothing
  about a login.
* *failing*: the remote's circuit breaker (`syncd.remote.breaker`) is open; it closes itself.

Invariants:

* status (`State.remote_paused`) always shows the current reason of either kind, refused
  first, and is written only when it changes;
* when a pause ends (a refusal lifted, a breaker closed), the remote's queued work is made due
  at once and idle workers are woken: work refused meanwhile waits out no backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

from syncd.remote.breaker import Breaker, Breakers
from syncd.state.db import State
from syncd.state.queue import Queue


class RemotePauses:
    """The refused remotes, and the breakers, as status and the workers see them.

    `folders_of(remote)` names the configured folders of a remote (the config may change);
    `notify_work` wakes idle workers."""

    def __init__(
        self,
        state: State,
        queue: Queue,
        breakers: Breakers,
        folders_of: Callable[[str], Collection[str]],
        notify_work: Callable[[], None],
    ) -> None:
        self.state = state
        self.queue = queue
        self.breakers = breakers
        self._folders_of = folders_of
        self._notify_work = notify_work
        self._lock = threading.Lock()
        self._refused: dict[str, str] = {}  # remote -> why: no work claimed for it
        breakers.listen(self._breaker_changed)

    def refused(self) -> set[str]:
        """The remotes that refused us, now."""
        with self._lock:
            return set(self._refused)

    def pause(self, remote: str, reason: str | None) -> None:
        """Pause a remote that refused us (`reason`, shown in status; its folders' work waits,
        unclaimed), or lift the pause (None) once it answers again. (A remote that answers its
        listings may still be failing its transfers: that pause is its breaker's, not lifted here.)"""
        with self._lock:
            was = remote in self._refused
            if reason is None:
                self._refused.pop(remote, None)
            else:
                self._refused[remote] = reason
        self._publish(remote)
        if reason is None and was:  # work refused meanwhile waits out no backoff
            self._wake(remote)

    def _publish(self, remote: str) -> None:
        """Write why `remote` gets no work (refused us, or failing: its breaker) where status reads it."""
        with self._lock:
            refused = self._refused.get(remote)
        reason = refused or self.breakers.get(remote).reason()
        if reason != self.state.remote_paused(remote):
            self.state.set_remote_paused(remote, reason)

    def _wake(self, remote: str) -> None:
        """Make the work of `remote`'s folders due now and wake idle workers."""
        for folder in self._folders_of(remote):
            self.queue.wake(folder)
        self._notify_work()

    def _breaker_changed(self, breaker: Breaker) -> None:
        """A breaker opened (say so in status) or closed (that too, and the work waiting for
        its remote is due now)."""
        self._publish(breaker.remote)
        if breaker.until is None:
            self._wake(breaker.remote)
