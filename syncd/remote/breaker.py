"""A circuit breaker per remote (SPEC, "A failing remote").

A remote can answer its listings and still fail every transfer asked of it (a broken storage
back end behind a healthy front). Retried item by item, each item would run its whole retry
schedule, in-process and then in the queue, and a `reconcile` of a few thousand files would
never end. The breaker sees the run of failures and stops sending the remote work for a while::

    closed ──`threshold` transfer failures in a row, ──> open, for a cool-down
      │       of `spread` different files or more
      ^                                                  │ cool-down over
      │ a transfer succeeds                              v
      └──────────────────────────────────────────── half-open: one probe job
                                                         │ the probe fails
                                                         v
                                            open again, the cool-down doubled (capped)

What counts is the outcome of a transfer call (`upload`, `download`, `delete`, a multipart
resume) after that call's own in-process retries: `GuardedRemote` reports it. The run must
span several files: one file the remote keeps refusing (a poison item) is that item's trouble,
retried with its own backoff, and must not hold back the remote's other work. Listings do not
count (a remote that lists is the very case this is for); neither do item errors (4xx: the
remote answered), authentication errors (the engine pauses the remote for those), local trouble
or a file that is not settled yet.

While the breaker is open the engine claims no work of the remote's folders, `tripped` is set
so that retry loops in flight stop at their next wait (it is the remote's `RetryPolicy.abort`),
and `reason()` says why, and until when, in `status`. Failures of calls that started before it
opened say nothing new and are ignored; a success from any call closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import structlog

from syncd.errors import TransientError
from syncd.remote.base import Capability, Remote, RemoteFile

log = structlog.get_logger("syncd.remote.breaker")

T = TypeVar("T")

#: Transfer failures in a row, with no success between them, that open the breaker...
THRESHOLD = 5
#: ...when they concern at least this many different files.
SPREAD = 3
#: The first cool-down (s); each failed probe doubles it, up to MAX_COOL_DOWN.
COOL_DOWN = 30.0
MAX_COOL_DOWN = 900.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Breaker:
    """The breaker of one remote. Thread-safe; `clock` is wall-clock seconds (shown in status)."""

    def __init__(
        self,
        remote: str,
        *,
        threshold: int = THRESHOLD,
        spread: int = SPREAD,
        cool_down: float = COOL_DOWN,
        max_cool_down: float = MAX_COOL_DOWN,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[Breaker], None] | None = None,
    ) -> None:
        if threshold < 1 or cool_down <= 0:
            raise ValueError("threshold must be at least 1 and cool_down positive")
        self.remote = remote
        self.threshold = threshold
        self.spread = max(1, min(spread, threshold))
        self.cool_down = cool_down
        self.max_cool_down = max(max_cool_down, cool_down)
        self.clock = clock
        self.on_change = on_change
        #: Set while retrying this remote's calls is pointless: open, and no probe running.
        self.tripped = threading.Event()
        self._lock = threading.Lock()
        self._failures = 0  # transfer failures in a row (probes included)
        self._subjects: set[str] = set()  # the files they concern (up to `spread` of them)
        self._last_error: str | None = None
        self._until: float | None = None  # open (or half-open) until then; None: closed
        self._next_cool_down = cool_down
        self._probe: int | None = None  # the thread running the half-open probe

    # -- reading ------------------------------------------------------------------------------

    @property
    def until(self) -> float | None:
        """While open: when the cool-down ends (the next probe may start); None when closed."""
        with self._lock:
            return self._until

    def reason(self, *, last_error: bool = True) -> str | None:
        """Why the remote gets no work (for status and reports), or None when it is closed;
        with the last failure's message unless `last_error` is False."""
        with self._lock:
            if self._until is None:
                return None
            last = f" (last: {self._last_error})" if last_error else ""
            return (
                f"remote {self.remote} is failing: {self._failures} transfers failed in a row{last}; "
                f"no work is sent to it until {_iso(self._until)}, then one transfer tries it again"
            )

    # -- claiming -----------------------------------------------------------------------------

    def admits(self) -> bool:
        """May the calling thread claim this remote's work now?

        Closed: yes. Open: not before the cool-down ends; then one thread at a time (the probe),
        which is the caller if no other thread holds the probe. The probe's own retries run in
        full. A probe that ends without a verdict hands it back with `release`."""
        with self._lock:
            if self._until is None:
                return True
            me = threading.get_ident()
            if self._probe is not None:
                return self._probe == me
            if self.clock() < self._until:
                return False
            self._probe = me
            self.tripped.clear()
            return True

    def release(self) -> None:
        """The calling thread's probe (if it holds it) ended with no verdict: its job made no
        transfer call, or it claimed other work. Another probe may start."""
        with self._lock:
            if self._until is not None and self._probe == threading.get_ident():
                self._probe = None
                self.tripped.set()

    # -- outcomes -----------------------------------------------------------------------------

    def success(self) -> None:
        """A transfer call succeeded: the run of failures is over, an open breaker closes."""
        with self._lock:
            self._failures = 0
            self._subjects.clear()
            if self._until is None:
                return
            self._until, self._probe, self._next_cool_down = None, None, self.cool_down
            self.tripped.clear()
        log.info("remote recovered", remote=self.remote)
        self._changed()

    def failure(self, error: str, subject: str = "") -> None:
        """A transfer call failed after its in-process retries (a transient failure);
        `subject` names what it moved (the file), to tell a failing remote from a poison item."""
        with self._lock:
            if self._until is not None and self._probe != threading.get_ident():
                return  # started before the breaker opened, or cut short by it: no news
            self._failures += 1
            self._last_error = error
            if self._until is not None:
                self._probe = None  # the probe failed: open again, for longer
            else:
                if len(self._subjects) < self.spread:
                    self._subjects.add(subject)
                if self._failures < self.threshold or len(self._subjects) < self.spread:
                    return
            cool_down = self._next_cool_down
            self._until = self.clock() + cool_down
            self._next_cool_down = min(self.max_cool_down, cool_down * 2)
            self.tripped.set()
            failures, until = self._failures, self._until
        log.warning(
            "remote failing", remote=self.remote, failures=failures, cool_down_s=cool_down, until=_iso(until),
            error=error,
        )
        self._changed()

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self)
        except Exception as exc:  # noqa: BLE001 - telling others must never fail the transfer itself
            log.error("breaker listener failed", remote=self.remote, exc_info=exc)


class Breakers:
    """The breakers of a config's remotes, by remote name, created as asked for; kept across
    config reloads (a remote keeps its breaker while its name stays)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, **settings: Any) -> None:
        self._clock = clock
        self._settings = settings
        self._lock = threading.Lock()
        self._breakers: dict[str, Breaker] = {}
        self._listener: Callable[[Breaker], None] | None = None

    def get(self, remote: str) -> Breaker:
        with self._lock:
            breaker = self._breakers.get(remote)
            if breaker is None:
                breaker = Breaker(remote, clock=self._clock, on_change=self._listener, **self._settings)
                self._breakers[remote] = breaker
            return breaker

    def listen(self, listener: Callable[[Breaker], None]) -> None:
        """Call `listener(breaker)` whenever a breaker opens or closes (on the reporting thread)."""
        with self._lock:
            self._listener = listener
            for breaker in self._breakers.values():
                breaker.on_change = listener

    def __iter__(self) -> Iterator[Breaker]:
        with self._lock:
            return iter(list(self._breakers.values()))


class GuardedRemote:
    """A remote whose transfer calls report their outcome to its breaker; everything else
    passes straight through (listings, `find_copy`, signed URLs)."""

    def __init__(self, remote: Remote, breaker: Breaker) -> None:
        self.remote = remote
        self.breaker = breaker

    def _counted(self, subject: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            result = call(*args, **kwargs)
        except TransientError as exc:
            self.breaker.failure(str(exc), subject)
            raise
        self.breaker.success()
        return result

    @property
    def capabilities(self) -> Capability:
        return self.remote.capabilities

    def list(self, place: str) -> list[RemoteFile]:
        return self.remote.list(place)

    def stat(self, place: str, path: str) -> RemoteFile | None:
        return self.remote.stat(place, path)

    def put(self, place: str, path: str, source: Path, **more: Any) -> RemoteFile:
        return self._counted(f"put {place}/{path}", self.remote.put, place, path, source, **more)

    def get(self, place: str, file: RemoteFile, out: BinaryIO, **more: Any) -> int:
        return self._counted(f"get {place}/{file.path}", self.remote.get, place, file, out, **more)

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        return self.remote.find_copy(place, path, size, sha256)

    def delete(self, place: str, path: str, version: str) -> None:
        self._counted(f"delete {place}/{path}", self.remote.delete, place, path, version)

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        return self._counted(f"move {place}/{file.path}", self.remote.move, place, file, new_path)

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        return self.remote.sign_url(place, file, expires_in)

    def probe(self, place: str) -> str:
        return self.remote.probe(place)

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        return self.remote.watch(place, on_hint, stop)

    def close(self) -> None:
        self.remote.close()
