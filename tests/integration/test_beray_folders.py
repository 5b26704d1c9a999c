"""Folders kept in step with a BeRay task's work folder, through the real `syncd` commands.

The service is the stand-in (`tests/support/beray_server.py`, held to the published client by
`tests/contract/test_beray_standin.py`), over real HTTP; syncd logs in with the password from
the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.beray_server import BeRayServer
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.faultproxy import FaultProxy, Reset, error_after_forward, unavailable
from tests.support.syncd_cli import Result, run_syncd

pytestmark = pytest.mark.timeout(120)

EMAIL, PASSWORD = "me@example.com", "pw-beray-Xq9"
ENV = {"SYNCD_TEST_BERAY_PW": PASSWORD}
TASK = 42
ROOT = "output"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BeRayServer]:
    with BeRayServer(root=tmp_path / "beray", users={EMAIL: PASSWORD}) as running:
        running.create_task(TASK)
        yield running


def write_config(tmp_path: Path, server: BeRayServer, *, url: str | None = None,
                 daemon: Mapping[str, object] | None = None, **folder: object) -> Path:
    options = {"task_id": TASK, "remote_path": ROOT, "recursive": True, **folder}
    lines = [
        "[daemon]", f"state_dir = {json.dumps(str(tmp_path / 'state'))}", "settle = 0.0", 'log_format = "json"',
        *(f"{k} = {json.dumps(v)}" for k, v in (daemon or {}).items()),
        "", "[remotes.agent]", 'kind = "beray"', f"url = {json.dumps(url or server.url)}",
        f"email = {json.dumps(EMAIL)}", 'password_env = "SYNCD_TEST_BERAY_PW"', "timeout = 10",
        "", "[[folders]]", 'name = "out"', f"path = {json.dumps(str(tmp_path / 'out'))}", 'remote = "agent"',
        *(f"{k} = {json.dumps(v)}" for k, v in options.items()),
    ]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reconcile(config: Path, env: Mapping[str, str] = ENV) -> Result:
    return run_syncd("reconcile", "-c", config, "--json", env={**os.environ, **env})


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".syncd" not in p.relative_to(root).parts}


def remote_tree(server: BeRayServer) -> dict[str, bytes]:
    base = server.work_folder(TASK) / ROOT
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()} \
        if base.exists() else {}


def test_trees_go_both_ways_with_unicode_and_deep_paths(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    deep = out / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "résumé notes.txt").write_bytes(b"deep and accented")
    (out / "e\u0301te\u0301.md").write_bytes(b"spelled NFD")
    server.write_file(TASK, f"{ROOT}/report/日本 summary.md", b"from the agent", mtime=1_700_000_000)
    config = write_config(tmp_path, server)
    result = reconcile(config)
    assert result.code == 0, result.stderr
    want = {"a/b/c/d/résumé notes.txt": b"deep and accented", "e\u0301te\u0301.md": b"spelled NFD",
            "report/日本 summary.md": b"from the agent"}
    assert local_tree(out) == want and remote_tree(server) == want
    assert (out / "report" / "日本 summary.md").stat().st_mtime == 1_700_000_000
    assert PASSWORD not in result.stdout + result.stderr


def test_an_expired_token_is_renewed_by_logging_in_again(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.txt").write_bytes(b"1")
    config = write_config(tmp_path, server)
    assert reconcile(config).code == 0
    logins = len(server.seen("login"))
    server.expire_tokens()
    (out / "two.txt").write_bytes(b"2")
    result = reconcile(config)
    assert result.code == 0, result.stderr  # nothing failed: one more login, then on
    assert remote_tree(server) == {"one.txt": b"1", "two.txt": b"2"}
    assert len(server.seen("login")) >= logins + 1


def test_a_wrong_password_is_an_authentication_error_never_printed(tmp_path: Path, server: BeRayServer) -> None:
    (tmp_path / "out").mkdir()
    config = write_config(tmp_path, server)
    result = reconcile(config, env={"SYNCD_TEST_BERAY_PW": "not-it-Zz7"})
    assert result.code == 1
    text = result.stdout + result.stderr
    assert "authentication failed" in text and "not-it-Zz7" not in text and PASSWORD not in text


def test_local_deletions_stay_local_reported_and_never_retried(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_bytes(b"keep")
    (out / "drop.txt").write_bytes(b"drop")
    config = write_config(tmp_path, server)
    assert reconcile(config).code == 0
    (out / "drop.txt").unlink()
    first = run_syncd("reconcile", "-c", config, env={**os.environ, **ENV})  # (--json logs errors only)
    assert first.code == 0, first.stdout
    assert remote_tree(server) == {"keep.txt": b"keep", "drop.txt": b"drop"}  # the remote cannot delete
    assert "local deletion not sent" in first.stderr and "drop.txt" in first.stderr  # said once ...
    said_again = run_syncd("reconcile", "-c", config, env={**os.environ, **ENV})
    assert said_again.code == 0 and "local deletion not sent" not in said_again.stderr  # the journal remembers
    again = reconcile(config)
    assert again.code == 0, again.stdout  # ... not a job that fails again and again
    assert not (out / "drop.txt").exists()  # and never brought back while unchanged remotely
    assert not again.folder("out").actions


def test_faults_from_the_fault_proxy_converge(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = {f"f{i}.txt": f"file {i}".encode() * 30 for i in range(4)}
    for name, data in files.items():
        (out / name).write_bytes(data)
    server.write_file(TASK, f"{ROOT}/theirs.txt", b"t" * 3000)
    with FaultProxy(server.url) as proxy:
        base = f"/api/v1/tasks/{TASK}/files"
        proxy.plan(f"{base}/tree", unavailable(retry_after=0))
        proxy.plan(f"{base}/content", Reset(), error_after_forward(500), unavailable(retry_after=0))
        config = write_config(tmp_path, server, url=proxy.url, daemon={"workers": 1, "small_transfers": 1})
        result = reconcile(config)
        assert result.code == 0, result.stderr
    want = {**files, "theirs.txt": b"t" * 3000}
    assert local_tree(out) == want and remote_tree(server) == want


def test_an_agents_output_arrives_within_seconds_of_its_event(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(tmp_path, server, daemon={"poll_interval": 60, "rescan_interval": 3600})
    daemon = DaemonProcess(config, env=ENV)
    try:
        daemon.wait_ready()
        wait_for(lambda: server.seen("stream"), what="the daemon following the task's events")
        server.write_file(TASK, f"{ROOT}/agent/result.txt", b"the agent's result")
        # Long before the next poll (60 s): only the event can have brought it.
        wait_for(lambda: (out / "agent" / "result.txt").exists(), timeout=10, what="the output downloaded")
        assert (out / "agent" / "result.txt").read_bytes() == b"the agent's result"
    finally:
        assert daemon.stop() == 0


def test_a_dropped_event_stream_is_restored(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    server.fail_next("stream", reset=True)  # the first connection is cut at once
    config = write_config(tmp_path, server, daemon={"poll_interval": 60, "rescan_interval": 3600})
    daemon = DaemonProcess(config, env=ENV)
    try:
        daemon.wait_ready()
        wait_for(lambda: len(server.seen("stream")) >= 2, what="the stream opened again after the cut")
        server.write_file(TASK, f"{ROOT}/after-the-cut.txt", b"still arrives")
        wait_for(lambda: (out / "after-the-cut.txt").exists(), timeout=10, what="the output after the reconnect")
    finally:
        assert daemon.stop() == 0


def test_a_task_that_is_gone_pauses_the_folder_and_deletes_nothing(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_bytes(b"mine")
    server.write_file(TASK, f"{ROOT}/theirs.txt", b"theirs")
    config = write_config(tmp_path, server, mode="download", delete=True)
    assert reconcile(config).code == 0
    server.remove_task(TASK)
    gone = reconcile(config)
    assert gone.code == 1 and "is gone" in gone.folder("out")["blocked"]
    assert local_tree(out) == {"mine.txt": b"mine", "theirs.txt": b"theirs"}


def test_a_rename_uploads_the_new_path_and_the_old_one_stays(tmp_path: Path, server: BeRayServer) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "draft.md").write_bytes(b"the text " * 40)
    config = write_config(tmp_path, server)
    assert reconcile(config).code == 0
    (out / "draft.md").rename(out / "final.md")
    result = run_syncd("reconcile", "-c", config, env={**os.environ, **ENV})
    assert result.code == 0, result.stdout + result.stderr
    assert remote_tree(server) == {"draft.md": b"the text " * 40, "final.md": b"the text " * 40}
    assert "draft.md" in result.stderr  # the old path staying remotely is said
    again = reconcile(config)
    assert again.code == 0 and not again.folder("out").actions
    assert local_tree(out) == {"final.md": b"the text " * 40}  # the old name is not brought back
