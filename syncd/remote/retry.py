"""The in-process retry policy of remote calls: all tenacity configuration lives here.

Only `TransientError` is retried; `ItemError` and `FatalError` pass straight
through. Waits are exponential with full jitter, but never shorter than the
server's `Retry-After`, and never longer than `max_wait`. After the last
attempt the final syncd error itself is raised (not a tenacity RetryError).

`abort` (the remote's circuit breaker, `syncd.remote.breaker`) cuts a retry loop short: once it
is set, a loop sleeping between attempts wakes at once and raises its last error instead of
trying again. The first attempt of a call is always made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog
import tenacity

from syncd.errors import TransientError

T = TypeVar("T")

log = structlog.get_logger(__name__)


class Abort(Protocol):
    """Set while retrying is pointless (a `threading.Event` is one)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class wait_retry_after(tenacity.wait.wait_base):  # noqa: N801 - named like tenacity's own waits
    """Wait max(Retry-After, backoff), capped at `cap` seconds."""

    def __init__(self, backoff: tenacity.wait.wait_base, cap: float) -> None:
        self.backoff = backoff
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        """Seconds to sleep before the next attempt."""
        wait = self.backoff(retry_state)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return min(wait, self.cap)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one remote retries a transient failure."""

    attempts: int = 5
    backoff: float = 1.0  # first backoff window, seconds; doubles per attempt
    max_wait: float = 30.0  # no single wait is longer, whatever Retry-After says
    sleep: Callable[[float], None] = field(default=time.sleep)
    abort: Abort | None = None  # set: stop retrying (the remote is failing everything)

    def run(self, attempt: Callable[[], T], *, what: str) -> T:
        """Call `attempt` until it returns, fails for good, the attempts run out, or `abort` is set."""
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max(1, self.attempts))
        sleep, call = self.sleep, attempt
        abort = self.abort
        if abort is not None:
            stop = tenacity.stop_any(stop, _stop_when(abort))
            sleep = _sleep_unless(abort)
            call = _unless_aborted(attempt, abort)
        # The first attempt runs bare: most calls succeed at once, and the retry machinery costs
        # more CPU than a small transfer's own work. Only a transient failure builds it, and hands
        # it that failure as its first attempt, so waits, logs and stops are exactly tenacity's.
        try:
            return call()
        except TransientError as exc:
            first: list[TransientError] = [exc]

        def resumed() -> T:
            if first:
                raise first.pop()
            return call()

        # A fresh Retrying per call: its statistics are per call, and calls run on many threads.
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            stop=stop,
            wait=wait_retry_after(
                tenacity.wait_random_exponential(multiplier=self.backoff, max=self.max_wait), self.max_wait
            ),
            sleep=sleep,
            before_sleep=_log_retry(what),
            reraise=True,
        )
        return retrying(resumed)


class _stop_when(tenacity.stop.stop_base):  # noqa: N801 - named like tenacity's own stops
    def __init__(self, abort: Abort) -> None:
        self.abort = abort

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.abort.is_set()


def _sleep_unless(abort: Abort) -> Callable[[float], None]:
    """A sleep that ends early when `abort` is set."""

    def sleep(seconds: float) -> None:
        abort.wait(seconds)

    return sleep


def _unless_aborted(attempt: Callable[[], T], abort: Abort) -> Callable[[], T]:
    """`attempt`, except that a retry after `abort` was set raises the last error again."""
    last: list[TransientError] = []

    def guarded() -> T:
        if last and abort.is_set():
            raise last[-1]
        try:
            return attempt()
        except TransientError as exc:
            last[:] = [exc]
            raise

    return guarded


def _log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "remote.retry", call=what, attempt=state.attempt_number, wait=round(wait, 3), error=str(error)
        )

    return before_sleep
