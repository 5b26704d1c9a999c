"""DirSync: threads that need one directory fsynced at once share the fsyncs, and none returns early."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import syncd.local.durable as durable
from syncd.local.durable import DirSync


class Disk:
    """Counts fsyncs and records, for each, which changes (renames) had been made when it started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes = 0
        self.fsyncs: list[int] = []  # changes made before each fsync started
        self.gate = threading.Event()

    def change(self) -> int:
        with self.lock:
            self.changes += 1
            return self.changes

    def fsync(self, path: Path) -> None:
        with self.lock:
            self.fsyncs.append(self.changes)
        self.gate.wait(10)


def test_concurrent_callers_share_fsyncs_and_each_change_is_covered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    disk = Disk()
    monkeypatch.setattr(durable, "fsync_dir", disk.fsync)
    dir_sync = DirSync(tmp_path)
    covered: dict[int, int] = {}

    def worker() -> None:
        mine = disk.change()
        dir_sync.sync()
        covered[mine] = max(disk.fsyncs)  # the latest fsync started after `mine` was made

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    # The first fsync holds at the gate while the other seven ask; then one more covers them all.
    while len(disk.fsyncs) < 1 or dir_sync._asked < 8:
        threading.Event().wait(0.005)
    disk.gate.set()
    for t in threads:
        t.join(10)
    assert len(covered) == 8
    assert all(covered_by >= mine for mine, covered_by in covered.items())
    assert len(disk.fsyncs) <= 2


def test_a_failed_fsync_raises_to_its_caller_and_the_next_caller_tries_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[Path] = []

    def failing_once(path: Path) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(durable, "fsync_dir", failing_once)
    dir_sync = DirSync(tmp_path)
    with pytest.raises(OSError):
        dir_sync.sync()
    dir_sync.sync()
    assert calls == [tmp_path, tmp_path]


def test_a_real_directory(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    DirSync(tmp_path).sync()
