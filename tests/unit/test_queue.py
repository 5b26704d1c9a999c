"""syncd.state.queue against real SQLite files: coalescing, leases, retries, crash recovery."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from syncd.state.db import State, open_state
from syncd.state.queue import Job, JobState, Queue

T0 = 1_700_000_000.0


class FakeClock:
    """Wall clock that only moves when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(state: State, clock: FakeClock) -> Queue:
    return Queue(state, clock=clock, rng=random.Random(1234))


def only(jobs: list[Job]) -> Job:
    assert len(jobs) == 1, jobs
    return jobs[0]


def row(queue: Queue, name: str, folder: str = "f") -> Job:
    job = queue.get(folder, name)
    assert job is not None
    return job


# -- coalescing ------------------------------------------------------------------


def test_put_creates_a_pending_row_due_now(queue: Queue) -> None:
    job = queue.put("f", "a.txt", "upload", '{"size": 1}')
    assert (job.folder, job.name, job.kind, job.payload) == ("f", "a.txt", "upload", '{"size": 1}')
    assert job.state is JobState.PENDING
    assert (job.attempts, job.next_try, job.dirty, job.lease_owner) == (0, T0, False, None)
    assert queue.get("f", "a.txt") == job


def test_repeated_puts_coalesce_into_one_row_with_the_latest_work(queue: Queue) -> None:
    queue.put("f", "a.txt", "upload", "1")
    queue.put("f", "a.txt", "upload", "2")
    queue.put("f", "a.txt", "download", "3")
    queue.put("g", "a.txt", "upload", "other folder")
    assert queue.counts("f") == {JobState.PENDING: 1, JobState.RUNNING: 0, JobState.FAILED: 0}
    job = row(queue, "a.txt")
    assert (job.kind, job.payload) == ("download", "3")


def test_same_work_keeps_its_backoff_new_work_resets_it(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "timeout")
    backed_off = row(queue, "a")
    assert backed_off.attempts == 1 and backed_off.next_try > T0

    # The same trigger again (a rescan, a poll) must not defeat the backoff...
    assert queue.put("f", "a", "upload", "v1").next_try == backed_off.next_try
    assert row(queue, "a").attempts == 1
    assert queue.claim("w") == []

    # ...while new work gets its own chances, at once.
    clock.advance(0.5)
    renewed = queue.put("f", "a", "upload", "v2")
    assert (renewed.attempts, renewed.next_try) == (0, T0 + 0.5)
    assert renewed.last_error == "timeout"  # kept until a success
    assert only(queue.claim("w")).payload == "v2"


def test_an_urgent_put_makes_backed_off_work_due_now_but_keeps_its_attempts(
    queue: Queue, clock: FakeClock
) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "No space left on device")
    assert queue.claim("w") == []

    clock.advance(0.5)
    urgent = queue.put("f", "a", "upload", "v1", urgent=True)
    assert (urgent.attempts, urgent.next_try) == (1, T0 + 0.5)
    queue.fail(only(queue.claim("w")), "No space left on device")
    assert row(queue, "a").attempts == 2  # a repeat failure backs off further
    queue.put_many([("f", "a", "upload", "v1")], urgent=True)
    assert only(queue.claim("w")).attempts == 2


def test_put_while_running_marks_dirty_and_done_requeues_the_new_work(queue: Queue) -> None:
    queue.put("f", "a", "upload", "v1")
    claimed = only(queue.claim("w"))
    assert claimed.payload == "v1"

    during = queue.put("f", "a", "upload", "v2")
    assert during.state is JobState.RUNNING and during.dirty
    assert queue.claim("other") == []  # still leased to w

    assert queue.done(claimed)
    after = row(queue, "a")
    assert (after.state, after.payload, after.dirty, after.attempts) == (JobState.PENDING, "v2", False, 0)
    again = only(queue.claim("w"))
    assert again.payload == "v2"
    assert queue.done(again)
    assert queue.get("f", "a") is None


def test_put_while_running_with_the_same_work_still_redoes_it(queue: Queue) -> None:
    # The queue cannot tell whether the file changed again: it errs on redoing.
    queue.put("f", "a", "upload", "v1")
    claimed = only(queue.claim("w"))
    queue.put("f", "a", "upload", "v1")
    assert queue.done(claimed)
    assert row(queue, "a").state is JobState.PENDING


def test_done_deletes_the_row(queue: Queue) -> None:
    queue.put("f", "a", "upload", "v1")
    assert queue.done(only(queue.claim("w")))
    assert queue.get("f", "a") is None
    assert queue.counts("f") == {JobState.PENDING: 0, JobState.RUNNING: 0, JobState.FAILED: 0}


def test_put_many_is_one_fast_transaction(queue: Queue) -> None:
    items = [("f", f"file-{i:05}", "upload", f'{{"n": {i}}}') for i in range(10_000)]
    started = time.perf_counter()
    assert queue.put_many(items) == 10_000
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert queue.pending_count() == 10_000
    # coalesces like put: a second round replaces, never duplicates
    queue.put_many([("f", "file-00000", "download", "new"), ("f", "file-00000", "upload", "newest")])
    assert queue.pending_count() == 10_000
    assert row(queue, "file-00000").payload == "newest"


# -- claiming and leases -----------------------------------------------------------


def test_claim_takes_due_jobs_in_order(queue: Queue, clock: FakeClock) -> None:
    for name in ("c", "a", "b"):
        queue.put("f", name, "upload", "")
        clock.advance(1)
    clock.advance(-10)
    queue.put("f", "early", "upload", "")  # due before the others
    clock.advance(10)
    claimed = queue.claim("w", lease=60, limit=3)
    assert [job.name for job in claimed] == ["early", "c", "a"]
    assert all(job.state is JobState.RUNNING for job in claimed)
    assert all((job.lease_owner, job.lease_until) == ("w", clock.now + 60) for job in claimed)
    assert [job.name for job in queue.claim("w", limit=10)] == ["b"]
    assert queue.claim("w") == []


def test_claim_can_be_limited_to_some_folders(queue: Queue) -> None:
    for folder in ("f", "g", "h"):
        queue.put(folder, "a", "upload", "")
    assert queue.claim("w", limit=10, folders=[]) == []
    assert sorted(job.folder for job in queue.claim("w", limit=10, folders={"g", "h"})) == ["g", "h"]
    assert queue.counts("f")[JobState.PENDING] == 1  # untouched, not leased and dropped


def test_claim_skips_jobs_not_yet_due(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "")
    queue.fail(only(queue.claim("w")), "503", retry_after=30)
    assert queue.claim("w") == []
    assert queue.next_due() == pytest.approx(T0 + 30, abs=2)
    due = queue.next_due()
    assert due is not None
    clock.now = due
    assert only(queue.claim("w")).name == "a"


@pytest.mark.parametrize("connections", ["shared", "one-per-thread"])
def test_claim_is_exclusive_across_threads(state_dir: Path, state: State, connections: str) -> None:
    total, workers = 300, 8
    Queue(state).put_many(("f", f"n{i}", "upload", "") for i in range(total))
    barrier = threading.Barrier(workers)
    claimed: list[list[int]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        own = open_state(state_dir, writer=False) if connections == "one-per-thread" else state
        try:
            queue = Queue(own)
            barrier.wait()
            while batch := queue.claim(f"worker-{n}", limit=3):
                claimed[n].extend(job.id for job in batch)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            if own is not state:
                own.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [job_id for ids in claimed for job_id in ids]
    assert len(every) == len(set(every)) == total
    assert Queue(state).counts("f")[JobState.RUNNING] == total


def test_expired_lease_is_reclaimed_and_the_old_holder_is_ignored(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    first = only(queue.claim("w1", lease=10))
    assert queue.next_due() == T0 + 10  # a waiting worker wakes for the expiry

    clock.advance(9.9)
    assert queue.claim("w2", lease=10) == []
    clock.advance(0.1)
    second = only(queue.claim("w2", lease=10))
    assert second.id == first.id and second.lease_owner == "w2"

    assert not queue.done(first)
    assert not queue.fail(first, "late")
    assert queue.renew(first) is None
    assert row(queue, "a").lease_owner == "w2"
    assert queue.done(second)
    assert queue.get("f", "a") is None


def test_same_owner_cannot_finish_an_older_lease(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    old = only(queue.claim("w", lease=10))
    clock.advance(10)
    new = only(queue.claim("w", lease=10))
    assert new.claims == old.claims + 1
    assert not queue.done(old)
    assert queue.done(new)


def test_renew_extends_the_lease(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    job = only(queue.claim("w", lease=10))
    clock.advance(8)
    renewed = queue.renew(job, lease=10)
    assert renewed is not None and renewed.lease_until == T0 + 18
    clock.advance(5)
    assert queue.claim("other") == []
    assert queue.done(job)  # the original Job still names the lease


def test_renew_owned_keeps_a_live_workers_rows_from_being_taken_over(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.put("f", "b", "upload", "v1")
    mine = only(queue.claim("w1", lease=10))
    theirs = only(queue.claim("w2", lease=10))
    clock.advance(8)
    assert queue.renew_owned(["w1", "gone"], lease=10) == 1
    assert queue.renew_owned([]) == 0
    clock.advance(5)  # w2's lease expired, w1's was extended
    assert [j.name for j in queue.claim("w3", limit=5)] == [theirs.name]
    assert queue.done(mine)


# -- failures and retries ------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    with tempfile.TemporaryDirectory() as tmp, open_state(Path(tmp)) as state:
        queue = Queue(state, rng=random.Random(7), base_backoff=2.0, max_backoff=60)
        for failures in range(80):
            cap = min(60.0, 2.0 * 2**failures)
            for _ in range(20):
                assert cap / 2 <= queue.backoff(failures) <= cap
        draws = {queue.backoff(10) for _ in range(50)}
        assert len(draws) > 1  # jittered, not a constant


def test_failures_back_off_until_max_backoff(state: State, clock: FakeClock) -> None:
    queue = Queue(state, clock=clock, rng=random.Random(3), base_backoff=2, max_backoff=60, max_attempts=100)
    queue.put("f", "a", "upload", "v1")
    for failures in range(12):
        assert queue.fail(only(queue.claim("w")), f"error {failures}")
        job = row(queue, "a")
        cap = min(60.0, 2.0 * 2**failures)
        delay = job.next_try - clock.now
        assert cap / 2 <= delay <= cap
        assert (job.state, job.attempts, job.last_error) == (
            JobState.PENDING,
            failures + 1,
            f"error {failures}",
        )
        assert (job.lease_owner, job.lease_until) == (None, None)
        clock.now = job.next_try


def test_retry_after_is_honoured_and_capped(state: State, clock: FakeClock) -> None:
    queue = Queue(state, clock=clock, rng=random.Random(3), base_backoff=2, max_backoff=600)
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "429", retry_after=120)
    assert row(queue, "a").next_try == T0 + 120
    clock.now = T0 + 120
    queue.fail(only(queue.claim("w")), "429", retry_after=10**9)  # absurd: capped at max_backoff
    assert row(queue, "a").next_try == T0 + 120 + 600
    clock.now = T0 + 720
    queue.fail(only(queue.claim("w")), "429", retry_after=0.1)  # shorter than the backoff: backoff wins
    assert row(queue, "a").next_try - clock.now >= 4


def test_permanent_failure(queue: Queue) -> None:
    queue.put("f", "a", "upload", "v1")
    assert queue.fail(only(queue.claim("w")), "413 too large", permanent=True)
    job = row(queue, "a")
    assert (job.state, job.last_error, job.attempts) == (JobState.FAILED, "413 too large", 1)
    assert queue.claim("w") == []
    assert queue.failed("f") == [job]
    assert queue.next_due() is None


def test_max_attempts_then_failed(state: State, clock: FakeClock) -> None:
    queue = Queue(state, clock=clock, rng=random.Random(0), max_attempts=3)
    queue.put("f", "a", "upload", "v1")
    for attempt in range(1, 4):
        (job,) = queue.claim("w")
        queue.fail(job, f"boom {attempt}")
        clock.now = max(clock.now, row(queue, "a").next_try)
    job = row(queue, "a")
    assert (job.state, job.attempts, job.last_error) == (JobState.FAILED, 3, "boom 3")


def test_fail_while_dirty_requeues_the_new_work(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    for _ in range(2):
        queue.fail(only(queue.claim("w")), "timeout")
        clock.now = row(queue, "a").next_try
    claimed = only(queue.claim("w"))
    queue.put("f", "a", "upload", "v2")
    assert queue.fail(claimed, "413", permanent=True)
    job = row(queue, "a")
    assert (job.state, job.payload, job.attempts, job.next_try) == (JobState.PENDING, "v2", 0, clock.now)


def test_postpone_puts_a_row_back_until_then_without_counting_an_attempt(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "timeout")
    clock.now = row(queue, "a").next_try
    assert queue.postpone(only(queue.claim("w")), "remote failing", until=clock.now + 30)
    job = row(queue, "a")
    assert (job.state, job.attempts, job.next_try, job.last_error) == (
        JobState.PENDING, 1, clock.now + 30, "remote failing"
    )
    assert job.lease_owner is None
    assert queue.claim("w") == []
    assert queue.next_due() == clock.now + 30


def test_postpone_while_dirty_keeps_the_new_work_and_starts_its_attempts_over(
    queue: Queue, clock: FakeClock
) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "timeout")
    clock.now = row(queue, "a").next_try
    claimed = only(queue.claim("w"))
    queue.put("f", "a", "upload", "v2")
    assert queue.postpone(claimed, "remote failing", until=clock.now + 30)
    job = row(queue, "a")
    assert (job.state, job.payload, job.attempts, job.dirty) == (JobState.PENDING, "v2", 0, False)


def test_postpone_with_a_lost_lease_changes_nothing(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "v1")
    stale = only(queue.claim("w", lease=10))
    clock.advance(11)
    only(queue.claim("w2"))
    assert not queue.postpone(stale, "remote failing", until=clock.now + 30)
    assert row(queue, "a").lease_owner == "w2"


def test_release_owned_puts_a_dead_workers_rows_back_at_once(queue: Queue, clock: FakeClock) -> None:
    for name in ("a", "b", "c"):
        queue.put("f", name, "upload", "")
    dead = queue.claim("dead", limit=2)
    live = only(queue.claim("live"))
    clock.advance(5)
    assert queue.release_owned(["dead"]) == 2
    assert queue.release_owned([]) == 0
    for job in dead:
        after = row(queue, job.name)
        assert (after.state, after.lease_owner, after.attempts) == (JobState.PENDING, None, 0)
        assert after.next_try <= clock.now
    assert row(queue, live.name).state is JobState.RUNNING
    assert {job.name for job in queue.claim("w", limit=5)} == {job.name for job in dead}


def test_next_due_can_be_limited_to_some_folders(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "a", "upload", "")
    clock.advance(10)
    queue.put("g", "b", "upload", "")
    queue.fail(only(queue.claim("w", folders=["g"])), "timeout")
    assert queue.next_due() == T0
    assert queue.next_due(["f"]) == T0
    assert queue.next_due(["g"]) == row(queue, "b", "g").next_try > clock.now
    assert queue.next_due(["h"]) is None
    assert queue.next_due([]) is None


def test_retry_requeues_failed_jobs(queue: Queue, clock: FakeClock) -> None:
    for folder, name in (("f", "a"), ("f", "b"), ("g", "c")):
        queue.put(folder, name, "upload", "v1")
    for job in queue.claim("w", limit=3):
        queue.fail(job, "nope", permanent=True)
    clock.advance(100)
    assert queue.retry("f") == 2
    assert queue.retry("f") == 0
    a = row(queue, "a")
    assert (a.state, a.attempts, a.next_try, a.last_error) == (JobState.PENDING, 0, clock.now, "nope")
    assert row(queue, "c", folder="g").state is JobState.FAILED
    assert queue.retry() == 1
    assert queue.failed() == []


def test_put_revives_a_failed_row(queue: Queue) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "nope", permanent=True)
    job = queue.put("f", "a", "upload", "v1")
    assert (job.state, job.attempts) == (JobState.PENDING, 0)


def test_put_without_revive_leaves_a_failed_row_with_the_same_work(queue: Queue) -> None:
    queue.put("f", "a", "upload", "v1")
    queue.fail(only(queue.claim("w")), "nope", permanent=True)
    assert queue.put("f", "a", "upload", "v1", revive_failed=False).state is JobState.FAILED
    queue.put_many([("f", "a", "upload", "v1")], revive_failed=False)
    assert row(queue, "a").state is JobState.FAILED
    assert queue.put("f", "a", "upload", "v2", revive_failed=False).state is JobState.PENDING


# -- recovery ---------------------------------------------------------------------------

CLAIM_AND_HANG = """
import sys
from pathlib import Path
from syncd.state.queue import Queue
from syncd.state.db import open_state
queue = Queue(open_state(Path(sys.argv[1])))
queue.put_many([("f", name, "upload", name) for name in ("a", "b", "c")])
jobs = queue.claim("doomed", lease=3600, limit=2)
print(" ".join(job.name for job in jobs), flush=True)
sys.stdin.readline()
"""


def test_resume_after_a_killed_process(state_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["a", "b"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()

    with open_state(state_dir) as state:
        queue = Queue(state)
        assert queue.counts("f") == {JobState.PENDING: 1, JobState.RUNNING: 2, JobState.FAILED: 0}
        assert queue.resume() == 2
        assert queue.resume() == 0
        assert queue.counts("f") == {JobState.PENDING: 3, JobState.RUNNING: 0, JobState.FAILED: 0}
        # the leases were for an hour; after resume the work is due at once
        claimed = queue.claim("w", limit=10)
        assert sorted((job.name, job.payload) for job in claimed) == [("a", "a"), ("b", "b"), ("c", "c")]


def test_resume_needs_the_writer_lock(state_dir: Path, state: State) -> None:
    with open_state(state_dir, writer=False) as reader, pytest.raises(RuntimeError, match="writer"):
        Queue(reader).resume()


# -- resume tokens -------------------------------------------------------------------------

TOKEN = '{"multipart_file_id": 7}'


def test_a_resume_token_is_kept_across_failures_and_comes_back_with_the_next_claim(
    queue: Queue, clock: FakeClock
) -> None:
    queue.put("f", "big.bin", "upload", "v1")
    job = only(queue.claim("w"))
    assert job.resume is None
    assert queue.set_resume(job, TOKEN)
    assert row(queue, "big.bin").resume == TOKEN  # committed at once, before the job ends
    assert queue.fail(job, "connection reset")
    assert row(queue, "big.bin").resume == TOKEN
    clock.advance(3600)
    again = only(queue.claim("w"))
    assert (again.resume, again.attempts) == (TOKEN, 1)
    assert queue.fail(again, "refused", permanent=True)
    assert queue.retry() == 1
    assert only(queue.claim("w")).resume == TOKEN


def test_only_the_lease_holder_records_a_token(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "big.bin", "upload", "v1")
    old = only(queue.claim("w1", lease=10))
    clock.advance(11)
    new = only(queue.claim("w2", lease=10))
    assert not queue.set_resume(old, TOKEN)  # its lease expired and the row was claimed again
    assert row(queue, "big.bin").resume is None
    assert queue.set_resume(new, TOKEN)
    assert queue.set_resume(new, None)  # a worker may also forget its token
    assert row(queue, "big.bin").resume is None


def test_new_work_drops_the_token_the_same_work_keeps_it(queue: Queue, clock: FakeClock) -> None:
    queue.put("f", "big.bin", "upload", "v1")
    job = only(queue.claim("w"))
    queue.set_resume(job, TOKEN)
    queue.fail(job, "reset")
    queue.put("f", "big.bin", "upload", "v1")  # the next pass plans the same work
    assert row(queue, "big.bin").resume == TOKEN
    queue.put("f", "big.bin", "upload", "v2")  # the file changed: a token of v1 means nothing to v2
    assert row(queue, "big.bin").resume is None

    clock.advance(3600)
    running = only(queue.claim("w"))
    assert queue.set_resume(running, TOKEN)
    queue.put("f", "big.bin", "download", "v3")  # new work while the worker still uploads v2
    assert row(queue, "big.bin").resume is None
    assert not queue.set_resume(running, "token of v2")  # not the row's work any more
    assert queue.fail(running, "reset")
    requeued = row(queue, "big.bin")
    assert (requeued.kind, requeued.payload, requeued.resume) == ("download", "v3", None)


def test_done_drops_the_token_even_when_the_row_stays_for_newer_work(queue: Queue) -> None:
    queue.put("f", "big.bin", "upload", "v1")
    job = only(queue.claim("w"))
    queue.set_resume(job, TOKEN)
    queue.put("f", "big.bin", "upload", "v1")  # the same work asked again mid-flight: dirty
    assert queue.done(job)
    requeued = row(queue, "big.bin")
    assert (requeued.state, requeued.resume) == (JobState.PENDING, None)  # that upload is finished
    assert queue.done(only(queue.claim("w")))
    assert queue.get("f", "big.bin") is None


SET_TOKEN_AND_HANG = """
import sys
from pathlib import Path
from syncd.state.queue import Queue
from syncd.state.db import open_state
queue = Queue(open_state(Path(sys.argv[1])))
queue.put("f", "big.bin", "upload", "v1")
[job] = queue.claim("doomed", lease=3600)
queue.set_resume(job, sys.argv[2])
print("recorded", flush=True)
sys.stdin.readline()
"""


def test_a_token_survives_a_killed_process_and_comes_back_after_resume(state_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SET_TOKEN_AND_HANG, str(state_dir), TOKEN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "recorded"
    finally:
        child.send_signal(signal.SIGKILL)  # right after the token was recorded, mid-job
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()

    with open_state(state_dir) as state:
        queue = Queue(state)
        assert queue.resume() == 1
        job = only(queue.claim("w"))
        assert (job.payload, job.resume, job.claims) == ("v1", TOKEN, 2)


# -- reading -----------------------------------------------------------------------------


def test_counts_and_listings(queue: Queue, clock: FakeClock) -> None:
    assert queue.counts_by_folder() == {}
    assert queue.next_due() is None
    for name in ("a", "b", "c", "d"):
        queue.put("f", name, "upload", "")
    queue.put("g", "x", "download", "")
    running = queue.claim("w", limit=2)
    queue.fail(running[0], "bad", permanent=True)
    assert queue.counts_by_folder() == {
        "f": {JobState.PENDING: 2, JobState.RUNNING: 1, JobState.FAILED: 1},
        "g": {JobState.PENDING: 1, JobState.RUNNING: 0, JobState.FAILED: 0},
    }
    assert queue.counts("g") == {JobState.PENDING: 1, JobState.RUNNING: 0, JobState.FAILED: 0}
    assert queue.counts("none") == {JobState.PENDING: 0, JobState.RUNNING: 0, JobState.FAILED: 0}
    assert queue.pending_count() == 3
    assert queue.pending_count("f") == 2
    assert queue.outstanding("f") == 3
    assert [job.name for job in queue.failed()] == ["a"]
    assert [(job.name, job.state) for job in queue.jobs("f")] == [
        ("a", JobState.FAILED),
        ("b", JobState.RUNNING),
        ("c", JobState.PENDING),
        ("d", JobState.PENDING),
    ]
    assert [(job.folder, job.name) for job in queue.jobs()][-1] == ("g", "x")
    assert queue.next_due() == T0

    assert queue.remove_folder("f") == 4
    assert queue.counts_by_folder() == {"g": {JobState.PENDING: 1, JobState.RUNNING: 0, JobState.FAILED: 0}}
    assert not queue.done(running[1])  # its row went with the folder


def test_reader_sees_the_writers_counts(state_dir: Path, queue: Queue) -> None:
    queue.put_many(("f", f"n{i}", "upload", "") for i in range(5))
    queue.claim("w", limit=2)
    with open_state(state_dir, writer=False) as reader:
        assert Queue(reader).counts("f") == {JobState.PENDING: 3, JobState.RUNNING: 2, JobState.FAILED: 0}


# -- property: coalescing never loses the latest work ----------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])


class CoalescingMachine(RuleBasedStateMachine):
    """Random put/claim/done/fail/retry/clock sequences against a model of the latest work.

    Model: `latest[name]` is the last (kind, payload) put; `finished` holds the
    names whose latest work a `done` completed; `lease[name]` is the (id,
    claims) of the live lease; `put_since_claim` tells whether the lease holder
    is working on stale work.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.state = open_state(Path(self.tmp.name) / "state")
        self.queue = Queue(self.state, clock=self.clock, rng=random.Random(0), max_attempts=3)
        self.latest: dict[str, tuple[str, str]] = {}
        self.finished: set[str] = set()
        self.lease: dict[str, tuple[int, int]] = {}
        self.put_since_claim: dict[str, bool] = {}
        self.held: list[Job] = []
        self.tokens: dict[str, str | None] = {}  # the resume token each row should carry

    def teardown(self) -> None:
        self.state.close()
        self.tmp.cleanup()

    @initialize()
    def start(self) -> None:
        assert self.queue.resume() == 0

    @rule(name=NAMES, kind=st.sampled_from(["upload", "download"]), payload=st.sampled_from(["1", "2", "3"]))
    def put(self, name: str, kind: str, payload: str) -> None:
        job = self.queue.put("f", name, kind, payload)
        assert (job.kind, job.payload) == (kind, payload)
        if self.latest.get(name) != (kind, payload):
            self.tokens[name] = None
        self.latest[name] = (kind, payload)
        self.finished.discard(name)
        self.put_since_claim[name] = True

    @rule(limit=st.integers(1, 3), lease=st.sampled_from([5.0, 50.0]))
    def claim(self, limit: int, lease: float) -> None:
        for job in self.queue.claim("w", lease=lease, limit=limit):
            assert (job.kind, job.payload) == self.latest[job.name]  # always the latest work
            assert job.resume == self.tokens.get(job.name)  # and what it needs to resume
            self.lease[job.name] = (job.id, job.claims)
            self.put_since_claim[job.name] = False
            self.held.append(job)

    def _finish(self, index: int, outcome: str) -> None:
        job = self.held.pop(index % len(self.held))
        holds = self.lease.get(job.name) == (job.id, job.claims)
        if outcome == "done":
            ok = self.queue.done(job)
        else:
            ok = self.queue.fail(job, "err", permanent=outcome == "permanent", retry_after=1.0)
        assert ok == holds
        if ok:
            del self.lease[job.name]
            if outcome == "done":
                self.tokens[job.name] = None
            if outcome == "done" and not self.put_since_claim[job.name]:
                self.finished.add(job.name)

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(0, 10), outcome=st.sampled_from(["done", "done", "transient", "permanent"]))
    def finish(self, index: int, outcome: str) -> None:
        self._finish(index, outcome)

    @precondition(lambda self: bool(self.held))
    @rule(index=st.integers(0, 10), token=st.sampled_from(["t1", "t2", None]))
    def set_resume(self, index: int, token: str | None) -> None:
        job = self.held[index % len(self.held)]
        holds = self.lease.get(job.name) == (job.id, job.claims)
        expected = holds and (job.kind, job.payload) == self.latest[job.name]
        assert self.queue.set_resume(job, token) == expected
        if expected:
            self.tokens[job.name] = token

    @rule()
    def restart(self) -> None:
        self.queue.resume()  # as a new process does at start: every lease is gone
        self.lease.clear()
        self.held.clear()

    @rule(seconds=st.sampled_from([0.5, 6.0, 100.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def retry(self) -> None:
        self.queue.retry()

    @invariant()
    def one_row_per_file_with_the_latest_work(self) -> None:
        per_name = self.state.fetchall("SELECT name, count(*) FROM jobs GROUP BY folder, name")
        assert all(count == 1 for _, count in per_name)
        for name, (kind, payload) in self.latest.items():
            job = self.queue.get("f", name)
            if name in self.finished:
                assert job is None
                continue
            assert job is not None and (job.kind, job.payload) == (kind, payload)
            assert job.resume == self.tokens.get(name)
            assert (job.state is JobState.RUNNING) == (name in self.lease)
            assert job.dirty == (job.state is JobState.RUNNING and self.put_since_claim[name])


TestCoalescing = CoalescingMachine.TestCase
TestCoalescing.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
