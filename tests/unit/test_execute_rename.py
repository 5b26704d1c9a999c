"""The executor's side of a local rename: upload the new name, then delete the old remote file;
a retry after the upload only finishes the deletion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import FolderConfig
from syncd.core.model import Action, ActionKind, BaseEntry, FolderPolicy, LocalFile
from syncd.core.plan import plan
from syncd.errors import LocalChanged, TransientError
from syncd.local.scan import sha256_of
from syncd.remote.memory import MemoryRemote
from syncd.state.db import State, open_state
from syncd.sync.execute import Executor
from syncd.sync.outcome import to_base, to_row

CHAT = "c"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    opened = open_state(tmp_path / "state")
    yield opened
    opened.close()


def local_file(folder: Path, name: str) -> LocalFile:
    st = (folder / name).stat()
    return LocalFile(name, st.st_size, st.st_mtime_ns, sha256_of(folder / name))


def renamed_folder(tmp_path: Path, state: State, remote: MemoryRemote) -> tuple[Executor, Path]:
    """old.txt synced (journal and remote), then renamed locally to new.txt."""
    folder = tmp_path / "f"
    (folder / ".syncd").mkdir(parents=True)
    (folder / "old.txt").write_bytes(b"the bytes")
    old = local_file(folder, "old.txt")
    file_id = remote.upload(folder / "old.txt", chat_id=CHAT, filename="old.txt", size=old.size, sha256=old.sha256)
    [listed] = remote.list_chat(CHAT)
    assert listed.id == file_id
    state.put_journal("f", to_row(BaseEntry.synced("old.txt", old, listed)))
    (folder / "old.txt").rename(folder / "new.txt")
    executor = Executor(FolderConfig(name="f", path=folder, remote="r", place=CHAT), remote, state, settle=0)
    return executor, folder


def planned(executor: Executor, state: State, remote: MemoryRemote, folder: Path) -> Action:
    base = {n: to_base(r) for n, r in state.journal("f").items()}
    [action] = plan({"new.txt": local_file(folder, "new.txt")}, remote.list_chat(CHAT), base, FolderPolicy()).actions
    assert action.kind is ActionKind.RENAME
    return action


def test_a_rename_uploads_the_new_name_then_deletes_the_old(tmp_path: Path, state: State) -> None:
    remote = MemoryRemote()
    executor, folder = renamed_folder(tmp_path, state, remote)
    action = planned(executor, state, remote, folder)
    executor.run(action)
    assert [f.filename for f in remote.list_chat(CHAT)] == ["new.txt"]
    assert set(state.journal("f")) == {"new.txt"}
    base = {n: to_base(r) for n, r in state.journal("f").items()}
    assert plan({"new.txt": local_file(folder, "new.txt")}, remote.list_chat(CHAT), base, FolderPolicy()).actions == ()


def test_a_retry_after_the_upload_only_finishes_the_deletion(tmp_path: Path, state: State) -> None:
    remote = MemoryRemote()
    executor, folder = renamed_folder(tmp_path, state, remote)
    action = planned(executor, state, remote, folder)
    remote.fail_next("delete", TransientError("connection reset"))
    first = executor.execute(action)
    assert isinstance(first.error, TransientError)
    first.commit(state)  # what happened stays: new.txt is up and journaled
    assert set(state.journal("f")) == {"old.txt", "new.txt"}
    uploads = remote.calls["upload"]
    again = executor.execute(action, attempts=1)
    assert again.ok, again.error
    again.commit(state)
    assert remote.calls["upload"] == uploads  # not uploaded twice
    assert [f.filename for f in remote.list_chat(CHAT)] == ["new.txt"]
    assert set(state.journal("f")) == {"new.txt"}


def test_the_old_file_back_is_no_longer_a_rename(tmp_path: Path, state: State) -> None:
    remote = MemoryRemote()
    executor, folder = renamed_folder(tmp_path, state, remote)
    action = planned(executor, state, remote, folder)
    (folder / "old.txt").write_bytes(b"the bytes")
    outcome = executor.execute(action)
    assert isinstance(outcome.error, LocalChanged)
    assert outcome.writes == ()
    assert [f.filename for f in remote.list_chat(CHAT)] == ["old.txt"]
