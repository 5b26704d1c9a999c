"""The pure settle/coalesce step: a fake clock, a dict for a disk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.settle import Key, Settler, Stat

A: Key = ("f", "a.txt")
B: Key = ("f", "b.txt")
C: Key = ("g", "c.txt")


class Disk:
    """What `stat` sees: key -> (size, mtime_ns); missing keys do not exist."""

    def __init__(self) -> None:
        self.files: dict[Key, Stat] = {}

    def __call__(self, key: Key) -> Stat:
        return self.files.get(key)


def test_a_touched_key_is_due_once_after_settle() -> None:
    disk = Disk()
    disk.files[A] = (3, 100)
    s = Settler(1.0)
    s.touch(A, 10.0, (3, 100))
    assert s.next_deadline() == 11.0
    assert s.due(10.9, disk) == []
    assert s.due(11.0, disk) == [A]
    assert s.due(20.0, disk) == []
    assert s.pending() == 0
    assert s.next_deadline() is None


def test_each_touch_rearms_the_timer() -> None:
    disk = Disk()
    s = Settler(1.0)
    for t in (0.0, 0.5, 1.2, 2.0):
        disk.files[A] = (int(t * 10), int(t * 10))
        s.touch(A, t, disk(A))
    assert s.pending() == 1
    assert s.due(2.9, disk) == []
    assert s.due(3.0, disk) == [A]


def test_a_silent_write_rearms_instead_of_reporting() -> None:
    disk = Disk()
    disk.files[A] = (1, 1)
    s = Settler(1.0)
    s.touch(A, 0.0, (1, 1))
    disk.files[A] = (2, 2)  # written, but no event told us
    assert s.due(1.0, disk) == []
    assert s.next_deadline() == 2.0
    assert s.due(2.0, disk) == [A]


def test_a_vanished_file_is_due_too() -> None:
    disk = Disk()
    s = Settler(0.5)
    s.touch(A, 0.0, None)
    assert s.due(0.5, disk) == [A]


def test_a_file_that_vanished_after_its_event_waits_one_more_period() -> None:
    disk = Disk()
    s = Settler(0.5)
    s.touch(A, 0.0, (1, 1))
    assert s.due(0.5, disk) == []  # stat changed (now missing): start over
    assert s.due(1.0, disk) == [A]


def test_due_reports_all_quiet_keys_and_keeps_the_rest() -> None:
    disk = Disk()
    disk.files.update({A: (1, 1), B: (2, 2), C: (3, 3)})  # present: a vanished key may wait (below)
    s = Settler(1.0)
    s.touch(A, 0.0, (1, 1))
    s.touch(C, 0.2, (3, 3))
    s.touch(B, 0.9, (2, 2))
    assert s.due(1.5, disk) == [A, C]
    assert s.pending() == 1
    assert s.next_deadline() == 1.9


def test_touching_again_moves_a_key_behind_the_others() -> None:
    disk = Disk()
    disk.files.update({A: (1, 1), B: (2, 2)})
    s = Settler(1.0)
    s.touch(A, 0.0, (1, 1))
    s.touch(B, 0.1, (2, 2))
    s.touch(A, 0.5, (1, 1))
    assert s.next_deadline() == 1.1
    assert s.due(1.2, disk) == [B]
    assert s.due(1.5, disk) == [A]


def test_forget_drops_one_folder() -> None:
    disk = Disk()
    s = Settler(1.0)
    s.touch(A, 0.0, None)
    s.touch(C, 0.0, None)
    s.forget("f")
    assert s.pending() == 1
    assert s.due(5.0, disk) == [C]


# An operation after `dt` seconds: an event for key i, a write to key i that produced no event, or a look.
ops = st.lists(
    st.tuples(st.sampled_from(["touch", "silent", "due"]), st.integers(0, 3), st.floats(0.0, 2.0, allow_nan=False)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.sampled_from([0.3, 1.0]))
def test_reported_once_per_quiet_period_and_never_early(steps: list[tuple[str, int, float]], settle: float) -> None:
    keys: list[Key] = [("f", "a"), ("f", "b"), ("g", "a"), ("g", "c")]
    disk = Disk()
    s = Settler(settle)
    now = 0.0
    last_change: dict[Key, float] = {}  # last event or silent write
    unreported: set[Key] = set()  # had an event since its last report

    def look() -> None:
        reported = s.due(now, disk)
        assert len(reported) == len(set(reported))
        for key in reported:
            assert key in unreported, f"{key} reported twice in one quiet period"
            assert now - last_change[key] >= settle, f"{key} reported before it was quiet for {settle}s"
            unreported.discard(key)

    for op, i, dt in steps:
        now += dt
        key = keys[i]
        if op == "due":
            look()
            continue
        disk.files[key] = (i if op == "touch" else i + 100, int(now * 1e9))
        last_change[key] = now
        if op == "touch":
            s.touch(key, now, disk(key))
            unreported.add(key)
        deadline = s.next_deadline()
        assert (deadline is None) == (s.pending() == 0)
        if deadline is not None and deadline - 1e-6 > now:
            assert s.due(deadline - 1e-6, disk) == [], "something was due before the next deadline"

    # Once the disk is quiet, whatever waits settles within two periods (one re-arm at most).
    for _ in range(2):
        now += settle * 1.001  # a hair more: float sums need not add up exactly
        look()
    assert s.pending() == 0
    assert unreported == set()


def test_a_vanished_name_waits_for_the_rest_of_its_folder_to_settle() -> None:
    # `mv a b` where b is still being written (a copy, then a delete): both halves come out together.
    disk = Disk()
    s = Settler(1.0, rename_window=30.0)
    s.touch(A, 0.0, None)  # a.txt is gone
    disk.files[B] = (1, 1)
    s.touch(B, 0.0, (1, 1))
    for t in (0.5, 1.0, 1.5):  # b.txt still growing
        disk.files[B] = (int(t * 10), int(t * 10))
        s.touch(B, t, disk(B))
    assert s.due(1.2, disk) == []  # a.txt would be due, but its folder is busy
    assert s.due(2.4, disk) == []
    assert sorted(s.due(2.5, disk)) == [A, B]


def test_a_vanished_name_does_not_wait_for_another_folder() -> None:
    disk = Disk()
    s = Settler(1.0)
    s.touch(A, 0.0, None)
    disk.files[C] = (1, 1)
    s.touch(C, 0.5, (1, 1))
    assert s.due(1.0, disk) == [A]


def test_a_vanished_name_waits_no_longer_than_the_rename_window() -> None:
    disk = Disk()
    s = Settler(1.0, rename_window=5.0)
    s.touch(A, 0.0, None)
    t = 0.0
    released: list[Key] = []
    while t < 20.0 and not released:  # b.txt is written forever
        disk.files[B] = (int(t * 10), int(t * 10))
        s.touch(B, t, disk(B))
        t += 0.25
        released = s.due(t, disk)
    assert released == [A] and 5.0 <= t <= 7.0


def test_a_held_name_goes_with_the_last_of_its_folder_even_when_held_again_just_before() -> None:
    disk = Disk()
    disk.files[B] = (1, 1)
    s = Settler(0.3, rename_window=30.0)
    s.touch(A, 0.0, None)
    s.touch(B, 0.25, (1, 1))  # B's last write lands just before A's quiet period ends
    assert s.due(0.3, disk) == []  # A held: B still waits
    assert sorted(s.due(0.55, disk)) == [A, B]  # B settles: A goes with it, not a period later
