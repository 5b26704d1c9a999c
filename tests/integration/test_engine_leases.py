"""A transfer longer than a lease keeps its row: no second worker ever starts the same upload.

The engine runs in-process against the real server; the remote is the real client, wrapped
only so the test can hold one upload open for several lease lengths.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from syncd.app import open_app
from syncd.config import load_config
from syncd.remote.base import RemoteFile
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote
from syncd.state.queue import JobState
from syncd.sync.engine import Engine
from tests.support.syncd_cli import write_config


class HeldUpload:
    """The real remote, whose puts wait until the test lets them go."""

    def __init__(self, remote: BddRemote) -> None:
        self.remote = remote
        self.started = threading.Event()
        self.release = threading.Event()
        self.uploads = 0
        self._lock = threading.Lock()

    def put(self, *args: Any, **kwargs: Any) -> RemoteFile:
        with self._lock:
            self.uploads += 1
        self.started.set()
        assert self.release.wait(30)
        return self.remote.put(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.remote, name)


def test_a_long_transfer_keeps_its_lease_and_is_done_once(tmp_path: Path, server_url: str) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "slow.bin").write_bytes(b"x" * 1000)
    config = load_config(
        write_config(
            tmp_path / "c.toml", state_dir=tmp_path / "state", url=server_url, workers=3,
            folders=[{"name": "f", "path": str(folder), "chat_id": "leases"}],
        )
    )
    real = BddRemote(BddClient(server_url, "u"))
    held = HeldUpload(real)
    try:
        with open_app(config, remotes={"r": held}) as app:
            engine = Engine(config, app.state, app.queue, {"r": held}, lease=0.3, renew_every=0.05)
            engine.pass_folder(config.folders[0])
            worker = threading.Thread(target=engine.drain, args=(["f"], 3))
            worker.start()
            assert held.started.wait(10)
            # Hold the upload for many lease lengths; the row stays ours, its lease moving on.
            seen: list[float] = []
            pace = threading.Event()
            for _ in range(20):
                pace.wait(0.1)
                [job] = app.queue.jobs("f")
                assert job.state is JobState.RUNNING and job.claims == 1 and job.lease_until is not None
                seen.append(job.lease_until)
            assert seen[-1] > seen[0] + 1.0  # renewed again and again
            held.release.set()
            worker.join(30)
            assert not worker.is_alive()
            assert app.queue.jobs("f") == []
        assert held.uploads == 1
        assert [f.filename for f in real.client.list_chat("leases")] == ["slow.bin"]
    finally:
        held.release.set()
        real.close()
