"""The engine's workers against a real state database, queue and file service.

A worker never dies of a job: a row whose payload cannot be read fails with the reason, a row
whose folder left the config between claim and run waits for the folder, and a worker thread
killed by a fault in its own loop is replaced, the row it held put back at once. The other
rows are drained all along.

A file that is not settled yet is waited for once by the worker that claimed it, instead of
being put back and polled for; only a file that changed again meanwhile goes back to the queue.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.app import open_app
from syncd.config import Config, load_config
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote
from syncd.state.queue import Job, JobState, Queue
from syncd.sync.engine import Engine
from tests.support.daemon import wait_for
from tests.support.syncd_cli import write_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def remote(server_url: str) -> Iterator[BddRemote]:
    with BddClient(server_url, "u") as client:
        yield BddRemote(client)


def folders_config(
    tmp_path: Path, url: str, names: Collection[str], *, settle: float = 0, file: str = "c.toml"
) -> Config:
    folders = [{"name": name, "path": tmp_path / name, "chat_id": f"chat-{name}"} for name in names]
    return load_config(
        write_config(tmp_path / file, state_dir=tmp_path / "state", url=url, settle=settle, folders=folders)
    )


def fill(folder: Path, count: int, prefix: str = "file") -> dict[str, bytes]:
    folder.mkdir(exist_ok=True)
    files = {f"{prefix}-{i}.txt": f"{prefix} {i}\n".encode() for i in range(count)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def remote_files(remote: BddRemote, chat: str) -> set[str]:
    return {f.filename for f in remote.client.list_chat(chat)}


def test_a_row_that_cannot_be_read_fails_with_the_reason_and_the_rest_is_drained(
    tmp_path: Path, server_url: str, remote: BddRemote
) -> None:
    config = folders_config(tmp_path, server_url, ["f"])
    files = fill(tmp_path / "f", 5)
    with open_app(config, remotes={"r": remote}) as app:
        app.engine.pass_folder(config.folders[0])
        # The row of one file now holds work this release cannot read (a damaged or foreign row).
        app.queue.put("f", "file-0.txt", "upload", '{"kind": "upload", "name": ')
        with capture_logs() as logs:
            app.engine.drain(["f"], 1)

        row = app.queue.get("f", "file-0.txt")
        assert row is not None and row.state is JobState.FAILED
        assert row.last_error is not None and "queued work cannot be read" in row.last_error
        assert [job.name for job in app.queue.jobs("f")] == ["file-0.txt"]
        result = app.engine.reports["f"].results["file-0.txt"]
        assert (result.action, result.status) == ("upload", "failed")
        assert "cannot be read" in (result.error or "")
        assert remote_files(remote, "chat-f") == set(files) - {"file-0.txt"}
        assert any(e["event"] == "unreadable job" for e in logs)

        # The next pass plans the file again, and it goes through.
        app.engine.pass_folder(config.folders[0])
        app.engine.drain(["f"], 1)
        assert app.queue.jobs("f") == []
    assert remote_files(remote, "chat-f") == set(files)


class ReloadOnClaim(Queue):
    """A queue whose first claim of a row of `folder` is followed at once by a config reload
    without that folder: the reload lands between the claim and the run."""

    def __init__(self, *args: Any, folder: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder
        self.reload: Any = None

    def claim(self, owner: str, **kwargs: Any) -> list[Job]:
        jobs = super().claim(owner, **kwargs)
        if self.reload is not None and any(job.folder == self.folder for job in jobs):
            reload, self.reload = self.reload, None
            reload()
        return jobs


def test_a_row_whose_folder_left_the_config_waits_for_it_and_the_rest_is_drained(
    tmp_path: Path, server_url: str, remote: BddRemote
) -> None:
    both = folders_config(tmp_path, server_url, ["f", "g"])
    only_f = folders_config(tmp_path, server_url, ["f"], file="only-f.toml")
    f_files, g_files = fill(tmp_path / "f", 4, "f"), fill(tmp_path / "g", 3, "g")
    remotes = {"r": remote}
    with open_app(both, remotes=remotes) as app:
        queue = ReloadOnClaim(app.state, folder="g")
        engine = Engine(both, app.state, queue, remotes)
        engine.pass_folder(both.folders[1])  # g's rows first: one is claimed before f's
        engine.pass_folder(both.folders[0])
        queue.reload = lambda: engine.reconfigure(only_f, remotes)
        engine.drain(["f", "g"], 1)

        assert remote_files(remote, "chat-f") == set(f_files)
        assert remote_files(remote, "chat-g") == set()
        rows = queue.jobs("g")
        assert {job.name for job in rows} == set(g_files)
        assert all(job.state is JobState.PENDING and job.attempts == 0 for job in rows), rows
        assert any("not in the config now" in (job.last_error or "") for job in rows)

        engine.reconfigure(both, remotes)  # the folder is back: its work is still there
        engine.drain(["g"], 1)
        assert queue.jobs() == []
    assert remote_files(remote, "chat-g") == set(g_files)


class DiesOnce(Queue):
    """A queue whose second claim takes a row and then raises, as a fault in the worker's own
    loop would (outside any job): the thread dies holding a leased row."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims = 0
        self.killed: list[str] = []

    def claim(self, owner: str, **kwargs: Any) -> list[Job]:
        jobs = super().claim(owner, **kwargs)
        self.claims += 1
        if self.claims == 2 and jobs:
            self.killed.append(jobs[0].name)
            raise RuntimeError("injected fault in the worker loop")
        return jobs


@pytest.mark.parametrize("linger", [False, True], ids=["drain", "daemon workers"])
def test_a_worker_thread_that_dies_is_replaced_and_its_row_is_done(
    tmp_path: Path, server_url: str, remote: BddRemote, linger: bool
) -> None:
    config = folders_config(tmp_path, server_url, ["f"])
    files = fill(tmp_path / "f", 6)
    remotes = {"r": remote}
    with open_app(config, remotes=remotes) as app:
        queue = DiesOnce(app.state)
        engine = Engine(config, app.state, queue, remotes)
        engine.pass_folder(config.folders[0])
        with capture_logs() as logs:
            if linger:
                stop = threading.Event()
                workers = threading.Thread(target=engine.work, args=(None, 1, stop), kwargs={"linger": True})
                workers.start()
                try:
                    wait_for(lambda: queue.outstanding("f") == 0, what="the queue to drain")
                finally:
                    engine.stop_workers(stop)
                    workers.join(30)
                assert not workers.is_alive()
            else:
                engine.drain(["f"], 1)
        assert len(queue.killed) == 1
        assert queue.jobs() == []
        died = [e for e in logs if e["event"] == "worker died; starting another"]
        assert len(died) == 1 and died[0]["rows_released"] == 1
    assert remote_files(remote, "chat-f") == set(files)


class Recording(Queue):
    """A queue that remembers every failed attempt it is told of."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[tuple[str, str]] = []

    def fail(self, job: Job, error: str, **kwargs: Any) -> bool:
        self.failures.append((job.name, error))
        return super().fail(job, error, **kwargs)


def test_fresh_files_are_waited_for_once_not_put_back_and_polled(
    tmp_path: Path, server_url: str, remote: BddRemote
) -> None:
    config = folders_config(tmp_path, server_url, ["f"], settle=1.0)
    files = fill(tmp_path / "f", 20)  # all younger than `settle` when the workers claim them
    remotes = {"r": remote}
    with open_app(config, remotes=remotes) as app:
        queue = Recording(app.state)
        engine = Engine(config, app.state, queue, remotes)
        engine.pass_folder(config.folders[0])
        engine.drain(["f"], 2)
        assert queue.failures == []  # no "not settled" round trip through the queue
        assert queue.jobs() == []
        assert engine.reports["f"].count("upload") == len(files)
    assert remote_files(remote, "chat-f") == set(files)


class WriterDuringWait(threading.Event):
    """A stop flag whose first wait (the worker waiting for a file to settle) is used by a slow
    writer to change the file once more."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.writes = 0

    def wait(self, timeout: float | None = None) -> bool:
        if self.writes == 0:
            self.writes += 1
            self.path.write_text("the final version\n")
        return super().wait(timeout)


def test_a_file_that_changes_again_while_waited_for_goes_back_to_the_queue_and_its_last_version_is_sent(
    tmp_path: Path, server_url: str, remote: BddRemote
) -> None:
    config = folders_config(tmp_path, server_url, ["f"], settle=1.0)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "slow.txt").write_text("a first version\n")
    remotes = {"r": remote}
    with open_app(config, remotes=remotes) as app:
        queue = Recording(app.state)
        engine = Engine(config, app.state, queue, remotes)
        engine.pass_folder(config.folders[0])
        stop = WriterDuringWait(folder / "slow.txt")
        engine.drain(["f"], 1, stop)
        assert stop.writes == 1
        assert [(name, "waiting for it to settle" in error) for name, error in queue.failures] == [("slow.txt", True)]
        assert queue.jobs() == []
    [uploaded] = remote.client.list_chat("chat-f")
    out = io.BytesIO()
    remote.client.download(uploaded.id, out)
    assert out.getvalue() == b"the final version\n"


def test_a_file_far_from_its_settle_deadline_is_put_back_due_at_that_deadline(
    tmp_path: Path, server_url: str, remote: BddRemote
) -> None:
    config = folders_config(tmp_path, server_url, ["f"], settle=60.0)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "new.txt").write_text("just written\n")
    deadline = (folder / "new.txt").stat().st_ctime + 60.0
    remotes = {"r": remote}
    with open_app(config, remotes=remotes) as app:
        engine = Engine(config, app.state, app.queue, remotes)
        engine.pass_folder(config.folders[0])
        stop = WriterDuringWait(folder / "unused")
        engine.drain(["f"], 1, stop)
        assert stop.writes == 0  # no worker sat out a minute in place
        [row] = app.queue.jobs("f")
        assert row.state is JobState.PENDING
        assert row.next_try == pytest.approx(deadline, abs=1.0)
        assert "waiting for it to settle" in (row.last_error or "")
        assert "will retry" in (engine.reports["f"].results["new.txt"].error or "")
    assert remote.client.list_chat("chat-f") == []
