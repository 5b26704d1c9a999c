"""The BeRay event stream: events parsed properly, every event and reconnection a hint."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from syncd.daemon.hints import DEBOUNCE, MAX_DELAY, Hints
from syncd.remote.beray.events import events, follow


def test_events_join_data_lines_and_skip_comments_and_fields() -> None:
    lines = ["event: status", "id: 1", 'data: {"a":', "data: 1}", "", ": keepalive", "", "retry: 5", "",
             "data:x", "", "data: tail"]
    assert list(events(lines)) == ['{"a":\n1}', "x", "tail"]


def test_follow_hints_on_connect_and_each_event_and_reconnects_after_failures() -> None:
    stop = threading.Event()
    hints: list[int] = []
    opened: list[int] = []

    def open_stream() -> Iterable[str]:
        opened.append(1)
        if len(opened) == 1:
            raise OSError("refused")  # the first connection fails: retried after a backoff
        if len(opened) >= 3:
            stop.set()
        return ["data: one", "", ": keepalive", "data: two", ""]

    waits: list[float] = []
    real_wait = stop.wait

    def quick_wait(timeout: float | None = None) -> bool:
        waits.append(timeout or 0)
        return real_wait(0)

    stop.wait = quick_wait  # type: ignore[method-assign]
    follow(open_stream, lambda: hints.append(1), stop, what="test")
    assert len(opened) == 3
    assert len(hints) == 3 + 1  # connect + two events; then a connect, and stop reads no further
    assert waits and waits[0] == 1.0


def test_hints_are_debounced_and_never_delayed_past_the_limit() -> None:
    now = [100.0]
    woken: list[int] = []
    hints = Hints(lambda: woken.append(1), clock=lambda: now[0])
    hints.hint("out")
    assert woken and hints.due(now[0]) == set()
    assert hints.deadline() == [100.0 + DEBOUNCE]
    for _ in range(20):  # a burst keeps it quiet-waiting, up to MAX_DELAY
        now[0] += DEBOUNCE / 2
        hints.hint("out")
    assert hints.due(now[0]) == {"out"} and now[0] - 100.0 >= MAX_DELAY
    assert hints.due(now[0]) == set() and hints.deadline() == []
