"""The worker pool's lanes: many small transfers in flight, never more large ones than `workers`.

The engine runs in-process against the real server and a real state database; the remote is
the real client, wrapped only so the test can hold transfers open and count them in flight.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from syncd.app import open_app
from syncd.config import load_config
from syncd.remote.base import RemoteFile
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote
from syncd.state.db import open_state
from syncd.state.queue import Queue
from syncd.sync.lanes import LARGE
from tests.support.daemon import wait_for
from tests.support.syncd_cli import write_config

pytestmark = pytest.mark.timeout(120)

SMALL_AT_ONCE = 6


class CountedRemote:
    """The real remote; large puts wait until the test lets them go, the first small ones wait
    until SMALL_AT_ONCE of them are in flight together (proof of the concurrency, not a sleep)."""

    def __init__(self, remote: BddRemote) -> None:
        self.remote = remote
        self.release_large = threading.Event()
        self.small_together = threading.Barrier(SMALL_AT_ONCE)
        self.small_met = threading.Event()
        self._lock = threading.Lock()
        self.in_flight = {"large": 0, "small": 0}
        self.most = {"large": 0, "small": 0}
        self.done = {"large": 0, "small": 0}

    def put(self, place: str, path: str, source: Path, *, size: int, **kwargs: Any) -> RemoteFile:
        lane = "large" if size >= LARGE else "small"
        with self._lock:
            self.in_flight[lane] += 1
            self.most[lane] = max(self.most[lane], self.in_flight[lane])
        try:
            if lane == "large":
                assert self.release_large.wait(60)
            elif not self.small_met.is_set():
                try:
                    if self.small_together.wait(30) == 0:
                        self.small_met.set()
                        self.small_together.abort()  # once is proof enough: the rest pass at once
                except threading.BrokenBarrierError:
                    pass
            return self.remote.put(place, path, source, size=size, **kwargs)
        finally:
            with self._lock:
                self.in_flight[lane] -= 1
                self.done[lane] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.remote, name)


def test_small_files_flow_past_held_large_ones_and_large_ones_stay_within_workers(
    tmp_path: Path, server_url: str
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    large = {f"big-{i}.bin": os.urandom(LARGE + i) for i in range(3)}
    small = {f"small-{i:02}.txt": f"small {i}\n".encode() for i in range(40)}
    for name, data in {**large, **small}.items():
        (folder / name).write_bytes(data)
    config = load_config(write_config(
        tmp_path / "c.toml", state_dir=tmp_path / "state", url=server_url, workers=2,
        daemon={"small_transfers": 8}, folders=[{"name": "f", "path": str(folder), "chat_id": "lanes"}],
    ))
    assert (config.daemon.workers, config.daemon.small_transfers) == (2, 8)
    real = BddRemote(BddClient(server_url, "u"))
    counted = CountedRemote(real)
    try:
        with open_app(config, remotes={"r": counted}) as app:
            app.engine.pass_folder(config.folders[0])
            drain = threading.Thread(
                target=app.engine.drain, args=(["f"], 2), kwargs={"small_transfers": 8}, daemon=True
            )
            drain.start()
            # Two large uploads are held; every small file goes through meanwhile.
            wait_for(lambda: counted.done["small"] == len(small), timeout=60, what="the small files sent")
            assert counted.in_flight["large"] == 2 and counted.done["large"] == 0
            counted.release_large.set()
            drain.join(60)
            assert not drain.is_alive()
            assert app.queue.jobs("f") == []
        assert counted.most["large"] == 2  # never a third: `workers` caps the large ones
        assert counted.most["small"] >= SMALL_AT_ONCE
        assert counted.most["large"] + counted.most["small"] <= 8
        assert counted.small_met.is_set()
        listed = {f.filename: f.hashcode for f in real.client.list_chat("lanes")}
        assert listed == {name: hashlib.sha256(data).hexdigest() for name, data in {**large, **small}.items()}
    finally:
        counted.release_large.set()
        real.close()


def test_rows_of_unknown_size_from_an_older_release_go_to_the_large_lane(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state")
    try:
        queue = Queue(state)
        queue.put("f", "old.txt", "upload", "{}")  # as every row an older release queued: no size
        queue.put("f", "tiny.txt", "upload", "{}", 10)
        queue.put("f", "huge.bin", "upload", "{}", LARGE)
        small = queue.claim("small-lane", limit=10, smaller_than=LARGE)
        assert [job.name for job in small] == ["tiny.txt"]
        # The small lane waits only for the lease of the row it holds; the others are due now.
        small_due, any_due = queue.next_due(["f"], LARGE), queue.next_due(["f"])
        assert small_due is not None and any_due is not None and small_due > any_due + 100
        general = queue.claim("general", limit=10)
        assert sorted(job.name for job in general) == ["huge.bin", "old.txt"]
        assert {job.name: job.size for job in general} == {"huge.bin": LARGE, "old.txt": None}
    finally:
        state.close()


def test_a_put_of_new_work_replaces_the_size(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state")
    try:
        queue = Queue(state)
        queue.put("f", "a.bin", "upload", '{"v": 1}', 10)
        assert queue.put("f", "a.bin", "upload", '{"v": 2}', 5 * LARGE).size == 5 * LARGE
        assert queue.claim("small-lane", smaller_than=LARGE) == []
        queue.put_many([("f", "a.bin", "delete_remote", '{"v": 3}', 0)])
        [job] = queue.claim("small-lane", smaller_than=LARGE)
        assert (job.kind, job.size) == ("delete_remote", 0)
    finally:
        state.close()


def test_the_size_column_is_added_to_a_queue_written_before_it(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state")
    Queue(state).put("f", "a.txt", "upload", "{}", 3)
    state.close()
    with sqlite3.connect(tmp_path / "state" / "syncd.db") as conn:  # back to the schema before it
        conn.execute("ALTER TABLE jobs DROP COLUMN size")
        conn.execute("DROP TABLE notices")  # schema 5's, after it
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    state = open_state(tmp_path / "state")
    try:
        [job] = Queue(state).jobs("f")
        assert (job.name, job.size) == ("a.txt", None)
        assert Queue(state).claim("small-lane", smaller_than=LARGE) == []
        assert [j.name for j in Queue(state).claim("general")] == ["a.txt"]
    finally:
        state.close()
