"""Work other threads hand to the daemon's loop, which alone plans.

`call` queues a function and wakes the loop; the loop runs what is queued (`run_due`) at its
next turn, and the caller gets the function's result or exception. What is still queued when
the daemon stops fails with `Stopping`, so no caller waits for ever.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

_A = TypeVar("_A")
_T = TypeVar("_T")


class Stopping(RuntimeError):
    """The daemon stopped before it ran the call."""


class LoopCalls(Generic[_A]):
    """Calls waiting for the loop; each gets the loop's argument (the daemon's `App`)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._calls: queue.SimpleQueue[tuple[Callable[[_A], Any], Future[Any]]] = queue.SimpleQueue()

    def call(self, fn: Callable[[_A], _T]) -> _T:
        """Run `fn` on the loop and return its result (any thread but the loop's)."""
        return self.post(fn).result()

    def post(self, fn: Callable[[_A], _T]) -> Future[_T]:
        """Queue `fn` for the loop; its future, without waiting."""
        future: Future[_T] = Future()
        self._calls.put((fn, future))
        self._wake()
        return future

    def run_due(self, arg: _A) -> None:
        """Run every queued call (the loop's thread)."""
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(arg))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
                future.set_exception(exc)

    def cancel_all(self) -> None:
        """Fail every queued call: the daemon stops."""
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(Stopping("the daemon is stopping"))
