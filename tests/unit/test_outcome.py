"""The executor's outcome as a value: journal writes recorded in order, applied in one place,
together with the queue row's done (one transaction) or on their own."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.config import FolderConfig
from syncd.core.model import FLOOR_NONE, Action, ActionKind, LocalFile
from syncd.errors import FolderUnavailable
from syncd.remote.base import FileStatus, RemoteFile
from syncd.state.db import JournalRow, State, open_state
from syncd.state.queue import JobState, Queue
from syncd.sync.execute import Executor
from syncd.sync.outcome import JournalWrite, Outcome, Recorder, Resume, to_base, to_row

SHA = "a" * 64


@pytest.fixture
def state(tmp_path: Path) -> State:
    opened = open_state(tmp_path / "state")
    yield opened  # type: ignore[misc]
    opened.close()


def local(name: str, size: int = 3) -> LocalFile:
    return LocalFile(name=name, size=size, mtime_ns=1_000, sha256=SHA)


def remote(name: str, file_id: int = 7) -> RemoteFile:
    return RemoteFile(
        id=file_id, filename=name, size=3, hashcode=SHA, upload_at=datetime(2026, 1, 2, tzinfo=UTC),
        status=FileStatus.OK,
    )


def test_a_recorder_keeps_the_writes_in_the_order_the_steps_happened() -> None:
    rec = Recorder("f")
    rec.record("copy.txt", local("copy.txt"), remote("copy.txt", 8), floor=FLOOR_NONE)
    rec.record("a.txt", local("a.txt"), remote("a.txt"))
    rec.record("gone.txt", None, None)
    outcome = rec.outcome(bytes=6)
    assert [w.name for w in outcome.writes] == ["copy.txt", "a.txt", "gone.txt"]
    assert outcome.writes[2] == JournalWrite("gone.txt", None)
    assert outcome.ok and outcome.bytes == 6 and outcome.folder == "f"
    row = outcome.writes[1].row
    assert row is not None and (row.local_sha256, row.remote_id, row.dropped) == (SHA, 7, False)
    floored = outcome.writes[0].row
    assert floored is not None and to_base(floored).remote_floor == FLOOR_NONE


def test_a_recorded_row_round_trips_through_the_journal_conversions() -> None:
    rec = Recorder("f")
    rec.record("a.txt", local("a.txt"), remote("a.txt"), dropped=True)
    row = rec.writes[0].row
    assert row is not None and row.dropped
    assert to_row(to_base(row)) == row


def test_then_joins_two_tries_writes_in_order_and_ends_as_the_second() -> None:
    first = Outcome("f", (JournalWrite("a", None),), error=RuntimeError("first"))
    second = Outcome("f", (JournalWrite("b", None),), bytes=5, unchanged=True)
    joined = first.then(second)
    assert [w.name for w in joined.writes] == ["a", "b"]
    assert (joined.bytes, joined.unchanged, joined.error) == (5, True, None)


def test_applying_an_outcome_replays_its_writes_so_the_last_write_of_a_name_wins(state: State) -> None:
    state.put_journal("f", JournalRow(name="old.txt", local_size=1))
    state.put_journal("g", JournalRow(name="old.txt", local_size=1))
    outcome = Outcome("f", (
        JournalWrite("a.txt", JournalRow(name="a.txt", local_size=1)),
        JournalWrite("a.txt", JournalRow(name="a.txt", local_size=2)),
        JournalWrite("old.txt", None),
    ))
    outcome.commit(state)
    assert {n: r.local_size for n, r in state.journal("f").items()} == {"a.txt": 2}
    assert set(state.journal("g")) == {"old.txt"}  # another folder's journal is untouched


def test_the_writes_commit_in_the_same_transaction_as_the_rows_done(state: State) -> None:
    queue = Queue(state)
    queue.put("f", "a.txt", "upload", "{}")
    [job] = queue.claim("w", folders=["f"])
    outcome = Outcome("f", (JournalWrite("a.txt", JournalRow(name="a.txt", local_size=3)),))
    assert queue.done(job, also=outcome.apply)
    assert queue.jobs("f") == [] and set(state.journal("f")) == {"a.txt"}


def test_a_done_that_fails_leaves_neither_the_journal_writes_nor_the_rows_end(state: State) -> None:
    queue = Queue(state)
    queue.put("f", "a.txt", "upload", "{}")
    [job] = queue.claim("w", folders=["f"])
    outcome = Outcome("f", (JournalWrite("a.txt", JournalRow(name="a.txt", local_size=3)),))

    def then_fail(conn: sqlite3.Connection) -> None:
        outcome.apply(conn)
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        queue.done(job, also=then_fail)
    assert state.journal("f") == {}
    [still] = queue.jobs("f")
    assert still.state is JobState.RUNNING


def test_an_empty_outcome_commits_nothing(state: State) -> None:
    Outcome("f").commit(state)  # no transaction, no error
    assert state.journal("f") == {}


class NoRemote:
    """A remote the executor must not call."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the remote was called: {name}")


def test_the_executor_hands_its_error_back_instead_of_raising(tmp_path: Path, state: State) -> None:
    folder = FolderConfig(name="f", path=tmp_path / "gone", remote="r", place="c")  # no marker
    executor = Executor(folder, NoRemote(), state, settle=0)  # type: ignore[arg-type]
    action = Action(ActionKind.FORGET, "a.txt")
    outcome = executor.execute(action, resume=Resume("token", None))
    assert isinstance(outcome.error, FolderUnavailable) and outcome.writes == ()
    with pytest.raises(FolderUnavailable):
        executor.run(action)  # the direct form raises it
