"""The queue's read-only views a progress display samples, against a real SQLite file, read
through a second connection as the display reads them (next to the writer's)."""

from __future__ import annotations

import random
from pathlib import Path

from syncd.state.db import open_state
from syncd.state.queue import Queue

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_sizes_newest_id_running_and_failed_as_another_connection_reads_them(tmp_path: Path) -> None:
    clock = Clock()
    writer = open_state(tmp_path)
    reader = open_state(tmp_path, writer=False)
    try:
        work = Queue(writer, clock=clock, rng=random.Random(1), max_attempts=1)
        view = Queue(reader, clock=clock)
        assert view.newest_id() == 0 and view.outstanding_size(["f"]) == (0, 0)

        work.put_many([("f", "a", "upload", "{}", 100), ("f", "b", "upload", "{}", 200),
                       ("f", "c", "delete_remote", "{}", 0), ("f", "d", "upload", "{}", None),
                       ("g", "x", "upload", "{}", 5000)])
        start = view.newest_id()
        assert view.outstanding_size(["f"]) == (4, 300)  # unknown sizes count no bytes
        assert view.outstanding_size(["f", "g"]) == (5, 5300)

        [a] = work.claim("w1", folders=["f"])
        [b] = work.claim("w2", folders=["f"])
        assert [job.name for job in view.running(["f"])] == ["a", "b"]
        assert view.running(["g"]) == []

        clock.now += 1
        work.done(a)
        work.fail(b, "refused", permanent=True)
        work.put("f", "e", "upload", "{}", 50)  # queued after the start
        assert view.outstanding_size(["f"]) == (3, 50)
        assert view.outstanding_size(["f"], newer_than=start) == (1, 50)
        assert view.failed_size(["f"], since=T0 + 1) == (1, 200)
        assert view.failed_size(["f"], since=T0 + 2) == (0, 0)
        assert view.running(["f"]) == [] and view.newest_id() == start + 1

        # A lease that ran out is no transfer under way.
        [c] = work.claim("w3", folders=["f"], lease=10)
        assert [job.name for job in view.running(["f"])] == [c.name]
        clock.now += 11
        assert view.running(["f"]) == []
    finally:
        reader.close()
        writer.close()
