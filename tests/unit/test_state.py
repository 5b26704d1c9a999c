"""syncd.state.db against real SQLite files, with real subprocesses for locking."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import syncd.state.schema as schema_mod
from syncd.errors import StateDamaged, StateLocked
from syncd.state.db import (
    FolderStatus,
    State,
    StateVersionError,
    lock_holder,
    open_state,
)
from syncd.state.journal import JournalRow
from syncd.state.schema import SCHEMA_VERSION

Spawn = Callable[[str, Path], "subprocess.Popen[str]"]

# Child processes: open the state, report, then obey one line per step on stdin.
HOLD_WRITER = """
import sys
from pathlib import Path
from syncd.state.db import open_state
state = open_state(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
"""

WRITE_WHILE_READ = """
import sys
from pathlib import Path
from syncd.state.db import JournalRow, open_state
state = open_state(Path(sys.argv[1]))
state.put_journal_many("f", [JournalRow(f"a{i}", local_size=i) for i in range(100)])
with state.transaction() as conn:
    for i in range(100):
        conn.execute(
            "INSERT INTO journal (folder, name, local_size, updated_at) VALUES ('f', ?, ?, 'now')",
            (f"b{i}", i),
        )
    print("in-transaction", flush=True)
    sys.stdin.readline()
print("committed", flush=True)
sys.stdin.readline()
for i in range(300):
    state.put_journal("f", JournalRow(f"c{i}", local_size=i))
print("finished", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `python -c CODE STATE_DIR`; every child is killed and reaped at teardown."""
    children: list[subprocess.Popen[str]] = []

    def start(code: str, state_dir: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def expect_line(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdout is not None
    assert child.stdout.readline().strip() == line


def tell(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files and schema ------------------------------------------------------------


def test_files_are_private_whatever_the_umask(state_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        with open_state(state_dir):
            assert mode(state_dir) == 0o700
            for name in ("syncd.db", "syncd.db-wal", "syncd.db-shm", "lock"):
                assert mode(state_dir / name) == 0o600, name
    finally:
        os.umask(old)


def test_loose_modes_of_an_existing_database_are_tightened(state_dir: Path) -> None:
    open_state(state_dir).close()
    (state_dir / "syncd.db").chmod(0o644)
    with open_state(state_dir):
        assert mode(state_dir / "syncd.db") == 0o600


def table_names(state: State) -> set[str]:
    return {row[0] for row in state.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_wal_and_schema_version(state: State) -> None:
    assert state.user_version() == SCHEMA_VERSION
    assert state.fetchall("PRAGMA journal_mode") == [("wal",)]
    assert {"journal", "folders", "remotes", "jobs"} <= table_names(state)


def test_reopening_is_idempotent_and_keeps_data(state_dir: Path) -> None:
    with open_state(state_dir) as state:
        state.put_journal("f", JournalRow("a.txt", local_size=1))
    for _ in range(2):
        with open_state(state_dir) as state:
            assert state.user_version() == SCHEMA_VERSION
            assert state.journal("f") == {"a.txt": JournalRow("a.txt", local_size=1)}


def test_a_fresh_empty_file_is_migrated(state_dir: Path) -> None:
    state_dir.mkdir()
    sqlite3.connect(state_dir / "syncd.db").close()  # exists, user_version 0
    with open_state(state_dir) as state:
        assert state.user_version() == SCHEMA_VERSION
        assert state.journal_count("f") == 0


def test_appended_migration_upgrades_an_existing_file(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_state(state_dir) as state:
        state.put_journal("f", JournalRow("a.txt"))
    step = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (42)")
    monkeypatch.setattr(schema_mod, "_MIGRATIONS", (*schema_mod._MIGRATIONS, step))
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open must not apply the step again
        with open_state(state_dir) as state:
            assert state.user_version() == SCHEMA_VERSION + 1
            assert state.fetchall("SELECT x FROM extra") == [(42,)]
            assert state.journal_count("f") == 1


def test_a_failing_migration_changes_nothing(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_state(state_dir).close()
    step = ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(schema_mod, "_MIGRATIONS", (*schema_mod._MIGRATIONS, step))
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        open_state(state_dir)
    monkeypatch.undo()
    with open_state(state_dir) as state:  # the failed open released the lock too
        assert state.user_version() == SCHEMA_VERSION
        assert "extra" not in table_names(state)


def test_a_newer_schema_is_refused(state_dir: Path) -> None:
    open_state(state_dir).close()
    conn = sqlite3.connect(state_dir / "syncd.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateVersionError, match=r"newer than this syncd"):
        open_state(state_dir)
    assert lock_holder(state_dir) is None  # the refused open let the lock go


def filled(state_dir: Path, rows: int = 2000) -> Path:
    with open_state(state_dir) as state:
        state.put_journal_many("f", [JournalRow(f"n{i:05d}", i, i, "s" * 64, str(i), i, "h" * 64) for i in range(rows)])
    return state_dir / "syncd.db"


@pytest.mark.parametrize("where", ["header", "middle"])
def test_a_damaged_database_is_refused_naming_the_way_out(state_dir: Path, where: str) -> None:
    db = filled(state_dir)
    with open(db, "r+b") as f:
        f.seek(0 if where == "header" else 8192)
        f.write(b"\xa5" * 8192)
    with pytest.raises(StateDamaged, match=r"daemon\.state_dir: the state database .*syncd\.db is damaged") as caught:
        open_state(state_dir)
    assert "--rebuild-journal" in str(caught.value)
    assert lock_holder(state_dir) is None


def test_set_aside_keeps_the_old_database_and_starts_empty(state_dir: Path) -> None:
    db = filled(state_dir, rows=3)
    old = db.read_bytes()
    with open_state(state_dir, set_aside=True) as state:
        assert state.journal("f") == {}
        assert state.set_aside_as is not None and state.set_aside_as.read_bytes() == old
        assert state.set_aside_as.name.startswith("syncd.db.set-aside-")
    with open_state(state_dir, set_aside=True) as state:  # twice in one second: both kept
        second = state.set_aside_as
    assert second is not None and second.exists()
    kept = sorted(p.name for p in state_dir.glob("syncd.db.set-aside-*") if not p.name.endswith(("-wal", "-shm")))
    assert len(kept) == 2
    with open_state(state_dir / "fresh", set_aside=True) as state:
        assert state.set_aside_as is None


# -- the writer lock ---------------------------------------------------------------


def test_second_writer_in_another_process_is_refused_until_it_dies(state_dir: Path, spawn: Spawn) -> None:
    holder = spawn(HOLD_WRITER, state_dir)
    expect_line(holder, "ready")

    with pytest.raises(StateLocked, match=rf"is held by syncd pid {holder.pid} \(-c "):
        open_state(state_dir)
    assert lock_holder(state_dir) == holder.pid
    with open_state(state_dir, writer=False) as reader:  # readers need no lock
        assert reader.journal_count("f") == 0

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert lock_holder(state_dir) is None
    with open_state(state_dir) as state:
        assert state.writer
        assert lock_holder(state_dir) == os.getpid()
    assert lock_holder(state_dir) is None


def test_second_writer_in_the_same_process_is_refused(state_dir: Path) -> None:
    with open_state(state_dir), pytest.raises(StateLocked, match=rf"pid {os.getpid()}\b"):
        open_state(state_dir)
    open_state(state_dir).close()  # closing released it


def test_lock_holder_without_a_state_dir(tmp_path: Path) -> None:
    assert lock_holder(tmp_path / "nothing-here") is None


def test_probing_the_lock_does_not_stop_a_writer_from_starting(state_dir: Path) -> None:
    open_state(state_dir).close()
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            lock_holder(state_dir)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(20):
            open_state(state_dir).close()
    finally:
        stop.set()
        prober.join()


def test_reader_reads_while_another_process_writes(state_dir: Path, spawn: Spawn) -> None:
    writer = spawn(WRITE_WHILE_READ, state_dir)
    expect_line(writer, "in-transaction")

    # The writer holds an open write transaction: WAL lets us read the last
    # committed state at once instead of waiting out the busy timeout.
    started = time.monotonic()
    with open_state(state_dir, writer=False) as reader:
        assert reader.journal_count("f") == 100
        assert time.monotonic() - started < 5

        tell(writer)
        expect_line(writer, "committed")
        assert reader.journal_count("f") == 200

        tell(writer)  # now the writer commits 300 rows one by one while we read
        seen = [reader.journal_count("f")]
        deadline = time.monotonic() + 60
        while seen[-1] < 500:
            assert time.monotonic() < deadline
            seen.append(reader.journal_count("f"))
        assert seen == sorted(seen)
        expect_line(writer, "finished")
        assert len(reader.journal("f")) == 500


# -- journal ---------------------------------------------------------------------


def test_journal_round_trip(state: State) -> None:
    full = JournalRow(
        "report (1).pdf",
        local_size=10,
        local_mtime_ns=1_700_000_000_123_456_789,
        local_sha256="ab" * 32,
        remote_version=str(2**40),
        remote_size=10,
        remote_sha256="cd" * 32,
        remote_written_at="2024-05-01T12:00:00+00:00",
        dropped=True,
        local_name="report (1).pdf",
        remote_name="Report (1).pdf",
        remote_floor_at="2024-05-01T11:00:00+00:00",
        remote_floor_seq=2**40 - 1,
    )
    local_only = JournalRow("é.txt", local_size=0, local_mtime_ns=1, local_sha256="00" * 32)
    state.put_journal("f", full)
    state.put_journal("f", local_only)
    state.put_journal("other", JournalRow("x"))

    assert state.journal("f") == {full.name: full, local_only.name: local_only}
    assert state.journal_row("f", full.name) == full
    assert state.journal_row("f", "missing") is None
    assert state.journal_count("f") == 2

    replaced = JournalRow(full.name, remote_version="7")
    state.put_journal("f", replaced)
    assert state.journal("f")[full.name] == replaced

    state.delete_journal("f", full.name)
    state.delete_journal("f", "never-there")
    assert state.journal("f") == {local_only.name: local_only}
    assert state.journal("other") == {"x": JournalRow("x")}
    assert state.journal("empty") == {}


def test_confirming_a_floor_clears_it_and_takes_the_listed_time_for_that_version_only(state: State) -> None:
    floored = JournalRow(
        "a.txt", local_size=1, remote_version="12", remote_size=1, remote_written_at="2024-05-01T12:00:00+00:00",
        remote_floor_at="2024-05-01T11:00:00+00:00", remote_floor_seq=11,
    )
    other = JournalRow(
        "b.txt", local_size=1, remote_version="13", remote_size=1, remote_written_at="2024-05-01T12:00:00+00:00",
        remote_floor_at="2024-05-01T11:00:00+00:00", remote_floor_seq=11,
    )
    state.put_journal_many("f", [floored, other])
    listed = "2024-05-01T12:00:03+00:00"
    state.confirm_floors("f", [("a.txt", "12", listed), ("b.txt", "99", listed)])  # b.txt moved on since
    assert state.journal("f") == {
        "a.txt": JournalRow(
            "a.txt", local_size=1, remote_version="12", remote_size=1, remote_written_at=listed,
        ),
        "b.txt": other,
    }


def test_a_schema_2_journal_is_read_in_syncds_words(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema 3: BDD ids become version text, a hashcode its sha256 only when it is one, the
    floor's id its seq; every folder's place is unknown until its next pass."""
    monkeypatch.setattr(schema_mod, "_MIGRATIONS", schema_mod._MIGRATIONS[:2])
    monkeypatch.setattr(schema_mod, "SCHEMA_VERSION", 2)
    with open_state(state_dir) as state, state.transaction() as conn:
        conn.executemany(
            "INSERT INTO journal (folder, name, local_size, local_mtime_ns, local_sha256, remote_id, remote_size,"
            " remote_hashcode, remote_upload_at, dropped, updated_at, local_name, remote_name, remote_floor_at,"
            " remote_floor_id) VALUES ('f', ?, 1, 2, ?, ?, 1, ?, '2024-05-01T12:00:00+00:00', ?, 'now', ?, ?, ?, ?)",
            [
                ("a.txt", "ab" * 32, 2**40, "CD" * 32, 1, "a.txt", None, "2024-05-01T11:00:00+00:00", 41),
                ("b.txt", "ab" * 32, 7, "md5:0123", 0, None, "B.txt", None, None),
                ("c.txt", "ab" * 32, None, None, 0, None, None, None, None),
            ],
        )
        conn.execute("INSERT INTO folders (name, last_pass) VALUES ('f', '2024-05-01T12:00:00+00:00')")
    monkeypatch.undo()
    with open_state(state_dir) as state:
        assert state.user_version() == SCHEMA_VERSION
        common: dict[str, Any] = {"local_size": 1, "local_mtime_ns": 2, "local_sha256": "ab" * 32}
        remote: dict[str, Any] = {"remote_size": 1, "remote_written_at": "2024-05-01T12:00:00+00:00"}
        assert state.journal("f") == {
            "a.txt": JournalRow(
                "a.txt", **common, remote_version=str(2**40), remote_sha256="cd" * 32, **remote, dropped=True,
                local_name="a.txt", remote_floor_at="2024-05-01T11:00:00+00:00", remote_floor_seq=41,
            ),
            "b.txt": JournalRow("b.txt", **common, remote_version="7", remote_sha256=None, **remote,
                                remote_name="B.txt"),
            "c.txt": JournalRow("c.txt", **common, remote_size=1, remote_written_at="2024-05-01T12:00:00+00:00"),
        }
        assert state.folder_status("f").last_pass == "2024-05-01T12:00:00+00:00"
        assert state.folder_place("f") is None


def test_journal_of_10000_rows(state: State) -> None:
    rows = {
        f"file-{i:05}.bin": JournalRow(
            f"file-{i:05}.bin",
            local_size=i,
            local_mtime_ns=i * 1_000_000_007,
            local_sha256=f"{i:064x}",
            remote_version=str(i + 1),
            remote_size=i,
            remote_sha256=f"{i:064x}",
            remote_written_at="2024-05-01T12:00:00+00:00",
            dropped=i % 7 == 0,
        )
        for i in range(10_000)
    }
    state.put_journal_many("f", rows.values())
    started = time.perf_counter()
    read = state.journal("f")
    elapsed = time.perf_counter() - started
    assert read == rows
    assert state.journal_count("f") == 10_000
    assert elapsed < 2.0  # one query; typically a few tens of milliseconds


def test_transaction_rolls_back_and_nests(state: State) -> None:
    with pytest.raises(RuntimeError), state.transaction():
        state.put_journal("f", JournalRow("lost"))
        raise RuntimeError
    assert state.journal("f") == {}

    with state.transaction():
        state.put_journal("f", JournalRow("kept"))
        with pytest.raises(RuntimeError), state.transaction():
            state.put_journal("f", JournalRow("inner"))
            raise RuntimeError
    assert set(state.journal("f")) == {"kept"}


def test_threads_share_one_state(state: State) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(100):
                state.put_journal("f", JournalRow(f"{n}-{i}", local_size=i))
                state.journal_count("f")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert state.journal_count("f") == 800


# -- folder and remote status ----------------------------------------------------------


def test_folder_status(state: State) -> None:
    assert state.folder_status("f") == FolderStatus("f")
    state.set_last_pass("f", "2024-05-01T12:00:00+00:00", "2 files failed")
    state.set_folder_paused("f", "folder marker .syncd/ is missing")
    assert state.folder_status("f") == FolderStatus(
        "f", "2024-05-01T12:00:00+00:00", "2 files failed", "folder marker .syncd/ is missing"
    )
    state.set_last_pass("f", "2024-05-01T13:00:00+00:00", None)
    state.set_folder_paused("f", None)
    assert state.folder_status("f") == FolderStatus("f", "2024-05-01T13:00:00+00:00")
    assert state.folder_status("g") == FolderStatus("g")


def test_remote_paused(state: State) -> None:
    assert state.remote_paused("work") is None
    state.set_remote_paused("work", "authentication failed (401)")
    assert state.remote_paused("work") == "authentication failed (401)"
    assert state.remote_paused("demo") is None
    state.set_remote_paused("work", None)
    assert state.remote_paused("work") is None


def test_status_survives_reopen_as_reader(state_dir: Path) -> None:
    with open_state(state_dir) as state:
        state.set_last_pass("f", "2024-05-01T12:00:00+00:00", None)
        state.set_remote_paused("work", "auth")
        with open_state(state_dir, writer=False) as reader:
            assert not reader.writer
            assert reader.folder_status("f").last_pass == "2024-05-01T12:00:00+00:00"
            assert reader.remote_paused("work") == "auth"
