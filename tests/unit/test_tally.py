"""What the progress display counts and says, from the queue's rows (no terminal here)."""

from __future__ import annotations

from syncd.cli.tally import Current, Start, Tally, counts_text, current_text, eta_text, rate_text, size_text, tally
from syncd.state.queue_rows import Job, JobState


def running(name: str, kind: str = "upload", size: int | None = 2_100_000) -> Job:
    return Job(id=1, folder="f", name=name, kind=kind, payload="{}", state=JobState.RUNNING, attempts=0,
               next_try=0.0, lease_owner="w", lease_until=1.0, claims=1, dirty=False, last_error=None,
               created=0.0, updated=0.0, size=size)


def test_done_is_what_left_the_queue_and_work_queued_meanwhile_adds_to_the_total() -> None:
    start = Start(files=10, bytes=5000, newest_id=40)
    # 4 rows of the start still outstanding (1200 bytes), plus 2 queued since (300 bytes).
    t = tally(start, outstanding=(6, 1500), queued_since=(2, 300), running=[running("a.txt")])
    assert (t.files_done, t.files_total, t.bytes_done, t.bytes_total) == (6, 12, 3800, 5300)
    assert t.by_bytes and (t.completed, t.total) == (3800, 5300)
    assert t.current == (Current("upload", "a.txt", 2_100_000),)


def test_at_the_end_done_equals_the_total() -> None:
    t = tally(Start(files=303, bytes=89_850, newest_id=0), outstanding=(0, 0), queued_since=(0, 0), running=[])
    assert (t.files_done, t.files_total, t.bytes_done, t.bytes_total) == (303, 303, 89_850, 89_850)


def test_failed_files_are_done_but_their_bytes_never_moved() -> None:
    t = tally(Start(files=303, bytes=104_850, newest_id=0), outstanding=(0, 0), queued_since=(0, 0), running=[],
              failed=(3, 15_000))
    assert (t.files_done, t.files_failed, t.bytes_done, t.bytes_total) == (303, 3, 89_850, 104_850)
    assert counts_text(t) == "303/303 files · 3 failed · 89.8/104.8 kB"


def test_a_drain_without_bytes_is_measured_in_files() -> None:
    t = Tally(files_done=3, files_total=7, bytes_done=0, bytes_total=0)
    assert not t.by_bytes and (t.completed, t.total) == (3, 7)
    assert counts_text(t) == "3/7 files"
    assert rate_text(2.4, by_bytes=False) == "2 files/s"


def test_texts() -> None:
    assert [size_text(n) for n in (0, 999, 1000, 1_234_567, 999_960, 5 * 10**12)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "1.0 MB", "5.0 TB"]
    assert counts_text(Tally(152, 303, 600_000, 2_400_000)) == "152/303 files · 0.6/2.4 MB"
    assert counts_text(Tally(1, 2, 100, 382)) == "1/2 files · 100/382 B"
    assert rate_text(3_100_000, by_bytes=True) == "3.1 MB/s" and rate_text(None, by_bytes=True) == "--/s"
    assert eta_text(65.4) == "eta 0:01:05" and eta_text(3600 * 26 + 1) == "eta 26:00:01" and eta_text(None) == "eta --"


def test_a_transfer_under_way_shows_its_name_escaped() -> None:
    assert current_text(Current("download", "photos/IMG_0042.jpg", 2_100_000)) == "download photos/IMG_0042.jpg  2.1 MB"
    assert current_text(Current("delete_remote", "two\nlines", 0)) == "delete   two\\nlines"
    assert current_text(Current("rename", "esc\x1b]0;x", None)) == "move     esc\\x1b]0;x"
