"""The circuit breaker of a remote: when it opens, who may probe, how the cool-down grows,
and which calls of a guarded remote count."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.base import Capability, RemoteFile
from syncd.remote.breaker import Breaker, Breakers, GuardedRemote

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> Breaker:
    return Breaker("r", threshold=3, cool_down=30, max_cool_down=100, clock=clock)


def in_thread(func: Any) -> Any:
    """`func()` run on another thread (another worker); its result."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(func()))
    thread.start()
    thread.join()
    return out[0]


def trip(breaker: Breaker) -> None:
    """Fail `threshold` transfers of different files in a row."""
    for i in range(breaker.threshold):
        breaker.failure("500", f"file {i}")


def test_a_run_of_failures_opens_it_a_success_between_resets_the_run(breaker: Breaker, clock: FakeClock) -> None:
    for i in range(2):
        breaker.failure("500", f"a{i}")
    breaker.success()
    for i in range(2):
        breaker.failure("500", f"b{i}")
    assert breaker.until is None and breaker.admits() and not breaker.tripped.is_set()
    breaker.failure("HTTP 500 from /uploadSimpleFile", "b2")
    assert breaker.until == T0 + 30
    assert breaker.tripped.is_set()
    assert not breaker.admits()
    reason = breaker.reason()
    assert reason is not None
    assert "remote r is failing" in reason and "3 transfers failed in a row" in reason
    assert "HTTP 500 from /uploadSimpleFile" in reason and "until 2023-11-14T22:13:50+00:00" in reason


def test_after_the_cool_down_one_worker_probes_and_its_success_closes_it(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.now = T0 + 29.9
    assert not breaker.admits()
    clock.now = T0 + 30
    assert breaker.admits()  # this thread holds the probe...
    assert breaker.admits()
    assert not in_thread(breaker.admits)  # ...and no other worker gets one
    assert not breaker.tripped.is_set()  # the probe's own retries run in full
    breaker.success()
    assert breaker.until is None and breaker.reason() is None
    assert in_thread(breaker.admits)


def test_a_failed_probe_opens_it_again_for_twice_as_long_up_to_the_cap(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    for cool_down in (60, 100, 100):
        clock.now = breaker.until or 0
        assert breaker.admits()
        breaker.failure("500 again")
        assert breaker.until == clock.now + cool_down
        assert breaker.tripped.is_set()
    clock.now = breaker.until or 0
    assert breaker.admits()
    breaker.success()
    trip(breaker)  # closed again: the next run starts over at the first cool-down
    assert breaker.until == clock.now + 30


def test_failures_of_calls_other_than_the_probe_say_nothing_new(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    until = breaker.until
    in_thread(lambda: breaker.failure("cut short by the breaker"))
    assert breaker.until == until
    clock.now = T0 + 30
    assert breaker.admits()
    in_thread(lambda: breaker.failure("an old call, still failing"))
    assert breaker.until == until  # only the probe's verdict counts
    breaker.failure("the probe failed")
    assert breaker.until == clock.now + 60


def test_a_probe_that_made_no_transfer_hands_it_back(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.now = T0 + 30
    assert breaker.admits()
    in_thread(breaker.release)  # not that thread's probe: nothing happens
    assert not in_thread(breaker.admits)
    breaker.release()
    assert breaker.tripped.is_set()
    assert in_thread(breaker.admits)


def test_a_success_of_any_call_closes_an_open_breaker(breaker: Breaker) -> None:
    trip(breaker)
    in_thread(breaker.success)  # a long transfer that started before it opened, and got through
    assert breaker.until is None and not breaker.tripped.is_set()


def test_listeners_hear_of_opening_and_closing(clock: FakeClock) -> None:
    heard: list[float | None] = []
    breakers = Breakers(clock=clock, threshold=2)
    early = breakers.get("a")
    breakers.listen(lambda b: heard.append(b.until))
    assert breakers.get("a") is early
    late = breakers.get("b")
    for breaker in (early, late):
        trip(breaker)
        breaker.success()
    assert heard == [T0 + 30, None, T0 + 30, None]
    assert {b.remote for b in breakers} == {"a", "b"}


def test_one_file_failing_again_and_again_does_not_open_it(breaker: Breaker) -> None:
    for _ in range(10):
        breaker.failure("500 for this one file", "poison.bin")
    breaker.failure("500", "other.bin")
    assert breaker.until is None  # a poison item, not a failing remote
    breaker.failure("500", "third.bin")
    assert breaker.until is not None  # three different files failing, nothing in between: the remote


def test_a_failing_listener_does_not_fail_the_call(breaker: Breaker) -> None:
    def boom(_: Breaker) -> None:
        raise RuntimeError("listener")

    breaker.on_change = boom
    trip(breaker)
    assert breaker.until is not None


class Scripted:
    """A remote whose calls raise what the test says, else succeed."""

    capabilities = Capability.LIST | Capability.DELETE | Capability.RENAME | Capability.SIGN_URL

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls: list[str] = []
        self.resumes: list[str | None] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.error is not None:
            raise self.error

    def list(self, place: str) -> list[RemoteFile]:
        self._call("list")
        return []

    def put(self, place: str, path: str, source: Path, *, size: int, sha256: str | None = None,
            progress: Any = None, resume: str | None = None, on_resume: Any = None) -> RemoteFile:
        self._call("put")
        self.resumes.append(resume)
        return RemoteFile(path, "7", size, seq=7)

    def get(self, place: str, file: RemoteFile, out: BinaryIO, *, progress: Any = None,
            limit: int | None = None) -> int:
        self._call("get")
        return 0

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        self._call("find_copy")
        return None

    def delete(self, place: str, path: str, version: str) -> None:
        self._call("delete")

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        self._call("move")
        return RemoteFile(new_path, file.version, file.size, seq=file.seq)

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        self._call("sign_url")
        return "u"

    def probe(self, place: str) -> str:
        self._call("probe")
        return "ok"

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        self._call("watch")
        return False

    def close(self) -> None:
        self._call("close")


FILE = RemoteFile("a", "1", 1, seq=1)


def test_a_guarded_remote_counts_transfers_only(tmp_path: Path) -> None:
    breaker = Breaker("r", threshold=1, spread=1)
    remote = Scripted()
    guarded = GuardedRemote(remote, breaker)
    assert guarded.capabilities == remote.capabilities
    remote.error = TransientError("listing 503")
    with pytest.raises(TransientError):
        guarded.list("c")
    with pytest.raises(TransientError):
        guarded.find_copy("c", "a", 1, "0" * 64)
    with pytest.raises(TransientError):
        guarded.sign_url("c", FILE)
    assert breaker.until is None  # a listing (and the copy lookup, a listing) is not a transfer
    for error in (ItemError("413"), FatalError("401")):
        remote.error = error
        with pytest.raises(type(error)):
            guarded.put("c", "a", tmp_path / "a", size=1)
    assert breaker.until is None  # the remote answered: not a failing remote
    remote.error = TransientError("500")
    with pytest.raises(TransientError):
        guarded.get("c", FILE, io.BytesIO())
    assert breaker.until is not None
    remote.error = None
    # Resuming an upload (once a call of its own, now `put` given the token) is a transfer too.
    assert guarded.put("c", "a", tmp_path / "a", size=1, resume="token") == RemoteFile("a", "7", 1, seq=7)
    assert remote.resumes[-1] == "token"  # passed on
    assert breaker.until is None
    guarded.delete("c", "a", "1")
    assert guarded.put("c", "a", tmp_path / "a", size=1).version == "7"
    assert guarded.sign_url("c", FILE) == "u"
    assert guarded.move("c", FILE, "b") == RemoteFile("b", "1", 1, seq=1)
    assert remote.calls[-4:] == ["delete", "put", "sign_url", "move"]
    remote.error = TransientError("500")
    with pytest.raises(TransientError):
        guarded.move("c", FILE, "b")
    assert breaker.until is not None  # a move is a transfer call too


def test_a_guarded_remote_names_the_file_each_failure_concerns(tmp_path: Path) -> None:
    breaker = Breaker("r", threshold=3, spread=2)
    remote = Scripted()
    remote.error = TransientError("500")
    guarded = GuardedRemote(remote, breaker)
    for _ in range(3):
        with pytest.raises(TransientError):
            guarded.put("c", "a", tmp_path / "a", size=1)
    assert breaker.until is None
    with pytest.raises(TransientError):
        guarded.delete("c", "b", "9")
    assert breaker.until is not None
