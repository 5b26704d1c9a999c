"""A download never writes more than the file it lists: a body longer than the listed size (an
endless or wrong answer) is cut off just past it, as a transient error, and nothing of it is left
in the folder."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from syncd.errors import TransientError
from syncd.remote.bdd.client import BddClient
from syncd.sync.steps import DOWNLOAD_SLACK
from tests.support.hostile_server import HostileServer
from tests.support.syncd_cli import reconcile, write_config

BIG = 8 * 1024 * 1024


def test_the_client_stops_at_the_limit(tmp_path: Path) -> None:
    with HostileServer([("small.txt", b"0123456789")]) as server:
        server.contents[1] = b"x" * BIG  # listed as 10 bytes, answered with 8 MiB
        with BddClient(server.url, "u", retry_attempts=1) as remote:
            out = io.BytesIO()
            with pytest.raises(TransientError, match="longer than the 100 bytes expected"):
                remote.download(1, out, limit=100)
            assert len(out.getvalue()) <= 100


@pytest.mark.slow  # the item is transient: its retries take most of a minute before reconcile reports it
def test_reconcile_fails_the_item_and_keeps_nothing_of_it(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    with HostileServer([("small.txt", b"0123456789"), ("fine.txt", b"fine")]) as server:
        server.contents[1] = b"x" * BIG
        config = write_config(
            tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=server.url,
            folders=[{"name": "f", "path": folder, "chat_id": "c"}],
        )
        result = reconcile(config)

    assert result.code == 1, result.stderr
    actions = result.folder("f").actions
    assert actions["fine.txt"]["status"] == "done"
    assert actions["small.txt"]["status"] == "failed"
    assert f"longer than the {10 + DOWNLOAD_SLACK} bytes expected" in actions["small.txt"]["error"]
    assert not (folder / "small.txt").exists()
    assert [p for p in (folder / ".syncd" / "tmp").iterdir()] == []
