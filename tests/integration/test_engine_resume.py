"""A multipart upload that failed goes on at its next try from where the service has it.

The engine runs in-process against the real server through a recording proxy; the remote is the
real client with small parts (its constructor's options) so that the test stays small.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from syncd.app import open_app
from syncd.config import load_config
from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.client import BddClient, MultipartToken
from syncd.remote.bdd.remote import BddRemote
from syncd.state.queue import Queue
from syncd.sync.engine import Engine
from tests.support.faultproxy import Fault, FaultProxy, Reset, Seen
from tests.support.syncd_cli import write_config

KiB = 1024
PART = 256 * KiB


def part_number(seen: Seen) -> int | None:
    match = re.search(rb'"part_number": (\d+)', seen.body)
    return int(match.group(1)) if match else None


def test_a_failed_multipart_upload_resumes_at_its_next_try(tmp_path: Path, server_url: str) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    data = os.urandom(5 * PART - 1000)
    (folder / "big.bin").write_bytes(data)
    config = load_config(
        write_config(
            tmp_path / "c.toml", state_dir=tmp_path / "state", url=server_url, workers=2,
            folders=[{"name": "f", "path": str(folder), "chat_id": "resume"}],
        )
    )
    with FaultProxy(server_url) as proxy, BddClient(
        proxy.url, "u", multipart_threshold=2 * PART, part_size=PART, retry_attempts=2, retry_backoff=0.01,
        max_wait=0.05, parts_in_flight=1,
    ) as client, open_app(config, remotes={"r": BddRemote(client)}) as app:
        remote = app.remotes["r"]
        queue = Queue(app.state, base_backoff=0.05)  # the next try comes quickly
        row_at_first_part: list[str | None] = []

        def rule(seen: Seen) -> Fault | None:
            number = part_number(seen)
            if number == 1 and not row_at_first_part:
                job = queue.get("f", "big.bin")
                row_at_first_part.append(job.resume if job is not None else None)
            if number == 3 and sum(part_number(s) == 3 for s in proxy.seen("/uploadFilePart")) <= 2:
                return Reset()  # both of the client's attempts at part 3: the job fails, to be tried again
            return None

        proxy.rule = rule
        engine = Engine(config, app.state, queue, {"r": remote})
        engine.pass_folder(config.folders[0])
        engine.drain(["f"], 2)
        assert queue.jobs("f") == []
        assert app.state.journal_row("f", "big.bin") is not None

    [token] = row_at_first_part  # on the queue row before any part was sent
    assert token is not None and MultipartToken.loads(token) is not None
    assert [part_number(s) for s in proxy.seen("/uploadFilePart")] == [1, 2, 3, 3, 3, 4, 5]
    assert proxy.count("/initMultipartUploadFile") == 1  # the second try went on with the same upload
    with BddClient(server_url, "u") as direct:
        [info] = direct.list_chat("resume")
    assert (info.status, info.size, info.hashcode) == (FileStatus.OK, len(data), hashlib.sha256(data).hexdigest())
