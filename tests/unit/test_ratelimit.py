"""The client-side rate limiter, driven by an injected clock."""

from __future__ import annotations

import threading

import pytest

from syncd.remote.ratelimit import RateLimiter


class FakeClock:
    """A monotonic clock that moves only when told to (or when someone sleeps on it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_zero_means_no_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.acquire()
    assert clock.slept == []
    assert limiter.interval == 0.0


def test_requests_are_spaced_sixty_over_rpm_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, clock=clock, sleep=clock.sleep)  # one per 0.5 s
    assert limiter.reserve() == 0.0  # the first goes at once
    assert limiter.reserve() == pytest.approx(0.5)
    assert limiter.reserve() == pytest.approx(1.0)  # reservations queue up
    clock.now += 0.25
    assert limiter.reserve() == pytest.approx(1.25)


def test_idle_time_is_not_banked() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 3600  # an hour of silence does not buy a burst
    limiter.acquire()
    limiter.acquire()
    assert clock.slept == [pytest.approx(1.0)]


def test_acquire_sleeps_until_its_slot() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock, sleep=clock.sleep)  # one per 2 s
    for _ in range(4):
        limiter.acquire()
    assert clock.slept == [pytest.approx(2.0)] * 3
    assert clock.now == pytest.approx(1006.0)


def test_threads_get_distinct_slots() -> None:
    clock = FakeClock()  # frozen: every thread asks at the same instant
    limiter = RateLimiter(600, clock=clock, sleep=clock.sleep)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            delay = limiter.reserve()
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(d, 6) for d in delays) == [round(i * 0.1, 6) for i in range(200)]
