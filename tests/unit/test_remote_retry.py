"""The retry policy of remote calls: what is retried, how long it waits, what it raises."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from syncd.errors import FatalError, ItemError, RemoteError, TransientError
from syncd.remote.retry import RetryPolicy


def failing(errors: Sequence[RemoteError], result: str = "done") -> tuple[Callable[[], str], list[int]]:
    """A call that raises `errors` one by one, then returns `result`; and its call counter."""
    calls: list[int] = []
    pending = list(errors)

    def call() -> str:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return result

    return call, calls


def test_transient_errors_are_retried_until_success() -> None:
    sleeps: list[float] = []
    call, calls = failing([TransientError("a"), TransientError("b")])
    assert (
        RetryPolicy(attempts=3, backoff=0.01, max_wait=1, sleep=sleeps.append).run(call, what="x") == "done"
    )
    assert len(calls) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 1 for s in sleeps)


@pytest.mark.parametrize("error", [ItemError("bad name", status=400), FatalError("auth", status=401)])
def test_item_and_fatal_errors_are_not_retried(error: RemoteError) -> None:
    call, calls = failing([error])
    with pytest.raises(type(error)) as caught:
        RetryPolicy(attempts=5, sleep=lambda s: None).run(call, what="x")
    assert caught.value is error
    assert len(calls) == 1


def test_the_last_transient_error_itself_is_raised() -> None:
    last = TransientError("third", status=503)
    call, calls = failing([TransientError("first"), TransientError("second"), last])
    with pytest.raises(TransientError) as caught:
        RetryPolicy(attempts=3, backoff=0.01, sleep=lambda s: None).run(call, what="x")
    assert caught.value is last
    assert len(calls) == 3


def test_retry_after_sets_a_floor_on_the_wait() -> None:
    sleeps: list[float] = []
    call, _ = failing([TransientError("slow", status=429, retry_after=2.5)] * 3)
    RetryPolicy(attempts=4, backoff=0.001, max_wait=10, sleep=sleeps.append).run(call, what="x")
    assert len(sleeps) == 3 and all(2.5 <= s <= 10 for s in sleeps)


def test_no_wait_exceeds_max_wait() -> None:
    sleeps: list[float] = []
    call, _ = failing([TransientError("slow", status=503, retry_after=3600)] * 2 + [TransientError("x")] * 5)
    RetryPolicy(attempts=8, backoff=100, max_wait=4, sleep=sleeps.append).run(call, what="x")
    assert len(sleeps) == 7
    assert sleeps[:2] == [4, 4]
    assert all(0 <= s <= 4 for s in sleeps)


def test_backoff_window_grows() -> None:
    sleeps: list[float] = []
    call, _ = failing([TransientError("x")] * 9)
    RetryPolicy(attempts=10, backoff=1, max_wait=10_000, sleep=sleeps.append).run(call, what="x")
    # Full jitter: attempt n waits uniformly in [0, 2**n); the window, not each wait, doubles.
    assert all(0 <= s <= 2 ** (n + 1) for n, s in enumerate(sleeps))
    assert max(sleeps[5:]) > 2  # nine draws that all stay in the first window are (nearly) impossible


class SetOnWait:
    """An abort flag that becomes set while the retry loop sleeps (the breaker opening meanwhile)."""

    def __init__(self) -> None:
        self.set_now = False
        self.waits: list[float | None] = []

    def is_set(self) -> bool:
        return self.set_now

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.set_now = True
        return True


def test_abort_set_during_a_wait_ends_the_loop_with_the_last_error_and_no_further_attempt() -> None:
    last = TransientError("500", status=500)
    call, calls = failing([last] * 5)
    abort = SetOnWait()
    with pytest.raises(TransientError) as caught:
        RetryPolicy(attempts=5, backoff=10, max_wait=30, abort=abort).run(call, what="x")
    assert caught.value is last
    assert len(calls) == 1  # woke from its one wait, and tried no more
    assert len(abort.waits) == 1


def test_abort_already_set_still_makes_the_first_attempt_but_no_retry() -> None:
    abort = threading.Event()
    abort.set()
    call, calls = failing([TransientError("a")])
    with pytest.raises(TransientError):
        RetryPolicy(attempts=5, sleep=lambda s: pytest.fail("slept"), abort=abort).run(call, what="x")
    assert len(calls) == 1
    ok, ok_calls = failing([])
    assert RetryPolicy(attempts=5, abort=abort).run(ok, what="x") == "done"  # a listing still works
    assert len(ok_calls) == 1


def test_abort_clear_changes_nothing() -> None:
    call, calls = failing([TransientError("a"), TransientError("b")])
    abort = threading.Event()
    assert RetryPolicy(attempts=3, backoff=0.001, max_wait=0.01, abort=abort).run(call, what="x") == "done"
    assert len(calls) == 3
