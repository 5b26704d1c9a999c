"""SPEC, "BeRay local deletions": a local deletion a BeRay task cannot receive is listed by
`syncd status --files` as "not supported by this remote" for as long as the remote copy stays,
through the real commands against the BeRay stand-in over real HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.beray_server import BeRayServer
from tests.support.syncd_cli import Result, run_syncd

pytestmark = pytest.mark.timeout(120)

EMAIL, PASSWORD = "me@example.com", "pw-beray-St4"
ENV = {**os.environ, "SYNCD_TEST_BERAY_PW": PASSWORD}
TASK = 42


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BeRayServer]:
    with BeRayServer(root=tmp_path / "beray", users={EMAIL: PASSWORD}) as running:
        running.create_task(TASK)
        yield running


def config_for(tmp_path: Path, server: BeRayServer) -> Path:
    lines = [
        "[daemon]", f"state_dir = {json.dumps(str(tmp_path / 'state'))}", "settle = 0.0", 'log_format = "json"',
        "", "[remotes.agent]", 'kind = "beray"', f"url = {json.dumps(server.url)}",
        f"email = {json.dumps(EMAIL)}", 'password_env = "SYNCD_TEST_BERAY_PW"', "timeout = 10",
        "", "[[folders]]", 'name = "out"', f"path = {json.dumps(str(tmp_path / 'out'))}", 'remote = "agent"',
        f"task_id = {TASK}", 'remote_path = "output"', "recursive = true",
    ]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def syncd(*args: str | Path) -> Result:
    return run_syncd(*args, env=ENV)


def folder_status(config: Path) -> dict[str, Any]:
    result = syncd("status", "--json", "--files", "-c", config)
    assert result.code == 0 and result.doc is not None, result.stderr
    [out] = result.doc["folders"]
    folder: dict[str, Any] = out
    return folder


def test_a_local_deletion_beray_cannot_receive_is_listed_as_not_supported(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    (out / "reports").mkdir(parents=True)
    (out / "keep.txt").write_bytes(b"keep")
    (out / "reports" / "drop.txt").write_bytes(b"drop")
    config = config_for(tmp_path, server)
    assert syncd("reconcile", "-c", config).code == 0
    doc = folder_status(config)
    assert doc["place"] == "task 42 output" and doc["files_out_of_sync"] == []

    (out / "reports" / "drop.txt").unlink()
    for _ in range(2):  # the pass that sees it, and every later one (the journal remembers it)
        assert syncd("reconcile", "-c", config).code == 0
        doc = folder_status(config)
        assert doc["files_out_of_sync"] == [{
            "name": "reports/drop.txt", "state": "not supported by this remote",
            "reason": "deleted locally; this remote cannot delete files, so its copy stays", "next_try": None,
        }]
        assert doc["files"] == 1 and doc["failed"] == 0  # never a job that fails again and again
    assert (server.work_folder(TASK) / "output" / "reports" / "drop.txt").read_bytes() == b"drop"
    human = syncd("status", "--files", "-c", config)
    assert "    not supported by this remote  reports/drop.txt: deleted locally; " in human.stdout
    assert "out (two-way): " in human.stdout and " \u21c4 task 42 output on agent" in human.stdout

    # The agent writes the file again: it comes back, and nothing is out of sync any more.
    server.write_file(TASK, "output/reports/drop.txt", b"rewritten by the agent", mtime=1_700_000_000)
    assert syncd("reconcile", "-c", config).code == 0
    assert (out / "reports" / "drop.txt").read_bytes() == b"rewritten by the agent"
    assert folder_status(config)["files_out_of_sync"] == []
