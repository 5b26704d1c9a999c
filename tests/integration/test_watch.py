"""The watcher on real files with a real watchdog observer (a folder's top level).

Every test waits on conditions; see `tests.support.watching` for the barriers.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import syncd.local.observer as observer_module
from syncd.local.watch import Watcher
from tests.support.daemon import wait_for
from tests.support.leaks import no_new_threads
from tests.support.watching import SETTLE, WAIT, Make, Recorder, barrier, folder, write

pytestmark = pytest.mark.timeout(60)


def poll(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition on state that has no notification of its own."""
    wait_for(predicate, WAIT, what, every=0.005)


def started(make: Make, tmp_path: Path, ignore: tuple[str, ...] = ()) -> tuple[Watcher, Recorder, Path]:
    watcher, rec = make()
    path = folder(tmp_path, "f")
    watcher.add("f", path, ignore)
    watcher.start()
    return watcher, rec, path


def test_a_created_file_is_reported_once_after_settle(make: Make, tmp_path: Path) -> None:
    watcher, rec, path = started(make, tmp_path)
    done = write(path / "report.pdf", b"hello")
    rec.wait_for(lambda: bool(rec.times("f", "report.pdf")), "report.pdf")
    barrier(rec, path)
    (reported,) = rec.times("f", "report.pdf")
    assert reported - done >= SETTLE
    assert rec.names() == ["report.pdf"]
    assert watcher.pending() == 0
    assert watcher.folders() == {"f"}


@pytest.mark.parametrize("temp", [".notes.txt.swp", "notes.txt.tmp", "notes.txt~"])
def test_save_via_temp_file_and_replace_is_one_report(make: Make, tmp_path: Path, temp: str) -> None:
    _, rec, path = started(make, tmp_path)
    write(path / "notes.txt", b"v1")
    barrier(rec, path)
    rec.clear()
    write(path / temp, b"v2 " * 1000)
    os.replace(path / temp, path / "notes.txt")
    done = time.monotonic()
    barrier(rec, path)
    assert rec.names() == ["notes.txt"]
    assert rec.times("f", "notes.txt")[0] - done >= SETTLE


def test_truncate_and_rewrite_is_one_report(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    write(path / "data.csv", b"a,b\n" * 100)
    barrier(rec, path)
    rec.clear()
    with open(path / "data.csv", "r+b") as f:
        f.truncate(0)
        f.flush()
        time.sleep(SETTLE / 4)  # pacing the writer, like an editor that is slow to write back
        f.write(b"c,d\n" * 200)
    done = time.monotonic()
    barrier(rec, path)
    assert rec.names() == ["data.csv"]
    assert rec.times("f", "data.csv")[0] - done >= SETTLE


def test_appends_closer_than_settle_are_one_report_after_the_last(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    for i in range(6):
        write(path / "log.txt", f"line {i}\n".encode(), "ab")
        time.sleep(SETTLE / 4)
    done = time.monotonic() - SETTLE / 4
    barrier(rec, path)
    assert rec.names() == ["log.txt"]
    assert rec.times("f", "log.txt")[0] - done >= SETTLE


def test_a_slow_writer_is_reported_only_when_it_stops(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    with open(path / "video.mp4", "wb") as f:
        end = time.monotonic() + 4 * SETTLE
        while time.monotonic() < end:
            f.write(b"\0" * 4096)
            f.flush()
            time.sleep(SETTLE / 3)
            assert not rec.times("f", "video.mp4"), "reported while still being written"
    done = time.monotonic()
    rec.wait_for(lambda: bool(rec.times("f", "video.mp4")), "video.mp4")
    barrier(rec, path)
    assert rec.names() == ["video.mp4"]
    assert rec.times("f", "video.mp4")[0] - done >= SETTLE


def test_a_download_renamed_in_from_the_marker_is_reported_under_its_name(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    staged = path / ".syncd" / "tmp" / "dl-1234"
    write(staged, b"remote content")
    os.replace(staged, path / "from remote.txt")
    barrier(rec, path)
    assert rec.names() == ["from remote.txt"]


def test_ignored_names_and_what_subdirectories_hold_are_never_reported(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path, ignore=("*.bak", "build/"))
    for name in ("a.tmp", "b.part", "~$c.docx", ".~lock.d#", ".e.swp", "f~", ".DS_Store", "g.bak"):
        write(path / name)
    write(path / ".syncd" / "tmp" / "partial")
    (path / ".syncd" / "trash").mkdir()
    (path / "build").mkdir()
    (path / "sub").mkdir()
    write(path / "sub" / "inner.txt")
    (path / "sub" / "inner.txt").rename(path / "sub" / "moved.txt")
    barrier(rec, path)
    # A top-level folder's subdirectory is named itself (its pass reports it as skipped), never
    # what it holds; an ignored one not even that. (Filled meanwhile, it settles after the barrier.)
    rec.wait_for(lambda: "sub" in rec.names(), "sub")
    assert rec.names() == ["sub"]


def test_ignore_patterns_are_gitignore_style_with_negation(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path, ignore=("*.bak", "!important.bak", "!keep.tmp", "!.syncd"))
    for name in ("other.bak", "important.bak", "scratch.tmp", "keep.tmp"):
        write(path / name)
    write(path / ".syncd" / "tmp" / "partial")
    barrier(rec, path)
    assert sorted(rec.names()) == ["important.bak", "keep.tmp"]


def test_deletion_and_renames_report_every_name_involved(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("gone.txt", "old.txt", "leaving.txt"):
        write(path / name)
    barrier(rec, path)
    rec.clear()
    (path / "gone.txt").unlink()
    (path / "old.txt").rename(path / "new.txt")
    (path / "leaving.txt").rename(outside / "leaving.txt")
    barrier(rec, path)
    assert sorted(rec.names()) == ["gone.txt", "leaving.txt", "new.txt", "old.txt"]


def test_unicode_names_are_reported_in_nfc(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    write(path / "cafe\u0301.txt")  # NFD on disk
    barrier(rec, path)
    assert rec.names() == ["caf\u00e9.txt"]


def test_two_folders_are_reported_in_batches_per_folder(make: Make, tmp_path: Path) -> None:
    watcher, rec = make()
    one, two = folder(tmp_path, "one"), folder(tmp_path, "two")
    watcher.add("one", one, ())
    watcher.add("two", two, ())
    watcher.start()
    for i in range(3):
        write(one / f"a{i}")
        write(two / f"b{i}")
    rec.wait_for(lambda: len(rec.names()) == 6, "six names")
    assert sorted(rec.names("one")) == ["a0", "a1", "a2"]
    assert sorted(rec.names("two")) == ["b0", "b1", "b2"]
    assert any(len(names) > 1 for _, f, names in rec.calls if f == "one"), "no batching"
    assert any(len(names) > 1 for _, f, names in rec.calls if f == "two"), "no batching"
    assert watcher.folders() == {"one", "two"}


def test_remove_stops_reports_and_add_after_start_works(make: Make, tmp_path: Path) -> None:
    watcher, rec = make()
    one = folder(tmp_path, "one")
    watcher.add("one", one, ())
    watcher.start()
    two = folder(tmp_path, "two")
    watcher.add("two", two, ())  # after start()
    write(two / "late.txt")
    barrier(rec, two, "two")
    watcher.remove("one")
    assert watcher.folders() == {"two"}
    write(one / "unwatched.txt")
    barrier(rec, two, "two")
    assert rec.names() == ["late.txt"]


def test_a_pending_name_is_dropped_when_its_folder_is_removed(make: Make, tmp_path: Path) -> None:
    watcher, rec = make(settle=30.0)
    path = folder(tmp_path, "f")
    watcher.add("f", path, ())
    watcher.start()
    write(path / "half.txt")
    poll(lambda: watcher.pending() == 1, "the event")
    watcher.remove("f")
    assert watcher.pending() == 0


@pytest.mark.parametrize("how", ["deleted", "moved away"])
def test_losing_the_watched_folder_is_trouble_not_deletions(make: Make, tmp_path: Path, how: str) -> None:
    watcher, rec = make()
    path, other = folder(tmp_path, "f"), folder(tmp_path, "other")
    watcher.add("f", path, ())
    watcher.add("other", other, ())
    watcher.start()
    write(path / "precious.txt")
    barrier(rec, path)
    rec.clear()
    if how == "deleted":
        shutil.rmtree(path)
    else:
        path.rename(tmp_path / "elsewhere")
    rec.wait_for(lambda: bool(rec.troubles), "trouble")
    (folder_name, reason), *_ = rec.troubles
    assert folder_name == "f"
    assert "deleted or moved away" in reason
    barrier(rec, other, "other")  # the deletions seen before the trouble must not come out as settled
    assert rec.names() == []
    watcher.remove("f")


def test_a_missing_folder_is_trouble_not_an_exception(make: Make, tmp_path: Path) -> None:
    watcher, rec = make()
    watcher.add("early", tmp_path / "missing-early", ())
    watcher.start()
    watcher.add("late", tmp_path / "missing-late", ())
    assert sorted(f for f, _ in rec.troubles) == ["early", "late"]
    assert all("cannot watch" in reason for _, reason in rec.troubles)


def test_an_inotify_limit_is_trouble_that_names_the_setting(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reaching the real limit would need root; make watchdog fail the way it does then.
    watcher, rec = make()
    watcher.start()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher._observer, "schedule", full)
    watcher.add("f", folder(tmp_path, "f"), ())
    ((name, reason),) = rec.troubles
    assert name == "f"
    assert "fs.inotify.max_user_watches" in reason and "inotify watch limit reached" in reason


def test_an_event_queue_overflow_is_trouble_for_every_folder(make: Make, tmp_path: Path) -> None:
    watcher, rec = make()
    one, two = folder(tmp_path, "one"), folder(tmp_path, "two")
    watcher.add("one", one, ())
    watcher.add("two", two, ())
    watcher.start()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    # Hold the reader (the one thing not real here) while the kernel queue fills past its limit.
    reader = watcher._observer._reader  # type: ignore[union-attr]
    with reader._lock:
        fds = [os.open(one / name, os.O_WRONLY | os.O_CREAT) for name in ("x", "y")]
        for i in range(2 * limit):  # twice: the reader may have taken one buffer-full before it blocked
            os.write(fds[i % 2], b".")  # alternating files: the kernel cannot merge the events
        for fd in fds:
            os.close(fd)
    rec.wait_for(lambda: {f for f, _ in rec.troubles} == {"one", "two"}, "overflow trouble")
    assert all("overflowed" in reason for _, reason in rec.troubles)


def test_a_dead_watch_thread_is_trouble(make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A crash inside watchdog cannot be caused from outside; make its emitter raise once.
    def crash(self: object, timeout: float) -> None:
        raise RuntimeError("emitter bug")

    monkeypatch.setattr(observer_module._Emitter, "queue_events", crash)
    _, rec, _ = started(make, tmp_path)
    rec.wait_for(lambda: bool(rec.troubles), "trouble")
    ((name, reason),) = rec.troubles
    assert name == "f" and "emitter bug" in reason


def test_five_hundred_files_are_each_reported_once(make: Make, tmp_path: Path) -> None:
    _, rec, path = started(make, tmp_path)
    expected = {f"file-{i:03}.dat" for i in range(500)}
    for name in sorted(expected):
        write(path / name, name.encode())
    rec.wait_for(lambda: len(rec.names()) >= 500, "500 names")
    barrier(rec, path)
    reported = rec.names()
    assert len(reported) == 500
    assert set(reported) == expected


def test_a_failing_callback_does_not_stop_the_watcher(make: Make, tmp_path: Path) -> None:
    rec = Recorder()
    seen: list[set[str]] = []

    def explode(folder_name: str, names: set[str]) -> None:
        seen.append(names)
        if len(seen) == 1:
            raise RuntimeError("callback bug")
        rec.settled(folder_name, names)

    watcher = Watcher(SETTLE, explode, rec.trouble)
    path = folder(tmp_path, "f")
    watcher.add("f", path, ())
    with no_new_threads():
        watcher.start()
        write(path / "first")
        poll(lambda: len(seen) == 1, "the failing call")
        write(path / "second")
        rec.wait_for(lambda: rec.names() == ["second"], "the next call")
        watcher.stop()


def test_stop_joins_every_thread_and_can_be_repeated(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    rec = Recorder()
    watcher = Watcher(SETTLE, rec.settled, rec.trouble)
    watcher.add("f", folder(tmp_path, "f"), ())
    watcher.start()
    assert len(set(threading.enumerate()) - before) >= 3  # settle thread, observer, reader, emitter
    watcher.stop()
    watcher.stop()
    assert set(threading.enumerate()) == before


def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    Watcher(SETTLE, Recorder().settled, Recorder().trouble).stop()
    assert set(threading.enumerate()) == before
