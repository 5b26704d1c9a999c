"""Folders kept in step with an AgentRun sandbox, through the real `syncd` commands.

The sandbox data plane is the stand-in (`tests/support/agentrun_server.py`, held to the published
SDK by `tests/contract/test_agentrun_standin.py`), over real HTTP, verifying every request's
AGENTRUN4-HMAC-SHA256 signature; syncd runs as a subprocess with its key in the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.agentrun_server import AgentRunServer
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.faultproxy import FaultProxy, Reset, Truncate, error_after_forward, html_page, unavailable
from tests.support.syncd_cli import Result, run_syncd

pytestmark = pytest.mark.timeout(120)

KEY_ID, SECRET = "AKIDSYNCDTEST", "s3cr3t-agentrun-Qz7"
ENV = {"SYNCD_TEST_AR_ID": KEY_ID, "SYNCD_TEST_AR_SECRET": SECRET}
ROOT = "/home/user/project"
SANDBOX = "sb-first"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AgentRunServer]:
    with AgentRunServer(root=tmp_path / "sandboxes", keys={KEY_ID: SECRET}) as running:
        running.create_sandbox(SANDBOX)
        yield running


def write_config(tmp_path: Path, server: AgentRunServer, *, sandbox: str = SANDBOX, url: str | None = None,
                 daemon: Mapping[str, object] | None = None, **folder: object) -> Path:
    options = {"sandbox_id": sandbox, "remote_path": ROOT, "recursive": True, **folder}
    lines = [
        "[daemon]", f"state_dir = {json.dumps(str(tmp_path / 'state'))}", "settle = 0.0", 'log_format = "json"',
        *(f"{k} = {json.dumps(v)}" for k, v in (daemon or {}).items()),
        "", "[remotes.sb]", 'kind = "agentrun"', f"url = {json.dumps(url or server.url)}",
        'access_key_id_env = "SYNCD_TEST_AR_ID"', 'access_key_secret_env = "SYNCD_TEST_AR_SECRET"', "timeout = 10",
        "", "[[folders]]", 'name = "proj"', f"path = {json.dumps(str(tmp_path / 'proj'))}", 'remote = "sb"',
        *(f"{k} = {json.dumps(v)}" for k, v in options.items()),
    ]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def syncd(*args: str | Path, env: Mapping[str, str] = ENV) -> Result:
    return run_syncd(*args, env={**os.environ, **env})


def reconcile(config: Path, env: Mapping[str, str] = ENV) -> Result:
    return syncd("reconcile", "-c", config, "--json", env=env)


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".syncd" not in p.relative_to(root).parts}


def sandbox_tree(server: AgentRunServer, sandbox: str = SANDBOX) -> dict[str, bytes]:
    base = server.host_path(sandbox, ROOT)
    if not base.exists():
        return {}
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def test_trees_go_both_ways_with_the_sandboxs_times(tmp_path: Path, server: AgentRunServer) -> None:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.py").write_bytes(b"print('hi')\n")
    (proj / "README.md").write_bytes(b"# project\n")
    server.write_file(SANDBOX, f"{ROOT}/out/result.csv", b"a,b\n1,2\n", mtime=1_700_000_000.5)
    server.write_file(SANDBOX, f"{ROOT}/out/deep/log.txt", b"done\n", mtime=1_700_000_100)
    config = write_config(tmp_path, server)
    result = reconcile(config)
    assert result.code == 0, result.stderr
    want = {"src/main.py": b"print('hi')\n", "README.md": b"# project\n", "out/result.csv": b"a,b\n1,2\n",
            "out/deep/log.txt": b"done\n"}
    assert local_tree(proj) == want and sandbox_tree(server) == want
    assert (proj / "out" / "result.csv").stat().st_mtime == 1_700_000_000.5  # the sandbox's time
    # Every request was signed with the key (and the secret never sent).
    requests = server.seen()
    assert requests and all(r.headers.get("agentrun-authorization", "").startswith("AGENTRUN4-HMAC-SHA256 "
                                                                                  f"Credential={KEY_ID}/")
                            for r in requests)
    assert not any(SECRET in json.dumps(dict(r.headers)) for r in requests)
    # Nothing changed: the next pass lists and transfers nothing.
    before = len(server.seen())
    again = reconcile(config)
    assert again.code == 0 and {r.name for r in server.seen()[before:]} <= {"list", "stat"}


def test_edits_renames_and_deletions(tmp_path: Path, server: AgentRunServer) -> None:
    proj = tmp_path / "proj"
    (proj / "docs").mkdir(parents=True)
    (proj / "docs" / "plan.md").write_bytes(b"plan v1")
    (proj / "old name.txt").write_bytes(b"renamed content " * 100)
    (proj / "gone.txt").write_bytes(b"to delete")
    server.write_file(SANDBOX, f"{ROOT}/agent.txt", b"agent v1", mtime=1_700_000_000)
    config = write_config(tmp_path, server, delete=True)
    assert reconcile(config).code == 0

    (proj / "docs" / "plan.md").write_bytes(b"plan v2, longer")
    server.write_file(SANDBOX, f"{ROOT}/agent.txt", b"agent v2, longer", mtime=1_700_000_500)
    (proj / "old name.txt").rename(proj / "docs" / "new name.txt")
    (proj / "gone.txt").unlink()
    uploads_before = len(server.seen("upload"))
    result = reconcile(config)
    assert result.code == 0, result.stderr
    actions = result.folder("proj").actions
    assert actions["docs/new name.txt"]["renamed_from"] == "old name.txt"
    want = {"docs/plan.md": b"plan v2, longer", "docs/new name.txt": b"renamed content " * 100,
            "agent.txt": b"agent v2, longer"}
    assert local_tree(proj) == want and sandbox_tree(server) == want
    moves = [r for r in server.seen("move")]
    assert len(moves) == 1  # the rename went as a move, not an upload
    assert len(server.seen("upload")) - uploads_before == 1  # plan.md only
    assert len(server.seen("remove")) == 1  # gone.txt


def test_a_sandbox_that_vanishes_pauses_the_folder_and_a_new_one_is_a_first_sync(
    tmp_path: Path, server: AgentRunServer
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "keep.txt").write_bytes(b"local work")
    server.write_file(SANDBOX, f"{ROOT}/made-there.txt", b"agent output")
    config = write_config(tmp_path, server, delete=True)
    assert reconcile(config).code == 0
    server.remove_sandbox(SANDBOX)
    gone = reconcile(config)
    assert gone.code == 1
    assert "is gone" in gone.folder("proj")["blocked"]
    assert local_tree(proj) == {"keep.txt": b"local work", "made-there.txt": b"agent output"}  # nothing deleted
    assert not (proj / ".syncd" / "trash").exists() or not any((proj / ".syncd" / "trash").rglob("*.txt"))
    status = syncd("status", "-c", config, "--json")
    assert status.doc is not None and "is gone" in (status.doc["folders"][0]["last_error"] or "")
    # Pointed at a new sandbox: a first sync, local files go up, nothing is deleted.
    server.create_sandbox("sb-second")
    moved = write_config(tmp_path, server, sandbox="sb-second", delete=True)
    fresh = reconcile(moved)
    assert fresh.code == 0, fresh.stderr
    assert sandbox_tree(server, "sb-second") == {"keep.txt": b"local work", "made-there.txt": b"agent output"}
    assert local_tree(proj) == {"keep.txt": b"local work", "made-there.txt": b"agent output"}


def test_a_wrong_secret_and_a_skewed_clock_are_authentication_errors(tmp_path: Path, server: AgentRunServer) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "a.txt").write_bytes(b"a")
    config = write_config(tmp_path, server)
    wrong = reconcile(config, env={**ENV, "SYNCD_TEST_AR_SECRET": "not-the-secret-XYZ"})
    assert wrong.code == 1
    text = wrong.stdout + wrong.stderr
    assert "authentication failed" in text and "not-the-secret-XYZ" not in text and SECRET not in text
    server.advance(3600)
    skewed = reconcile(config)
    assert skewed.code == 1
    assert "clock" in skewed.stdout + skewed.stderr
    server.advance(-3600)
    assert reconcile(config).code == 0
    assert sandbox_tree(server) == {"a.txt": b"a"}


def test_faults_converge(tmp_path: Path, server: AgentRunServer) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    files = {f"f{i}.bin": os.urandom(2000 + i) for i in range(5)}
    for name, data in files.items():
        (proj / name).write_bytes(data)
    server.write_file(SANDBOX, f"{ROOT}/there.bin", b"x" * 5000)
    config = write_config(tmp_path, server, daemon={"workers": 1, "small_transfers": 1})
    server.fail_next("list", status=503, headers={"Retry-After": "0"})
    server.fail_next("upload", reset=True)
    server.fail_next("upload", status=500, after=True)  # stored, then the answer is lost
    server.fail_next("download", truncate=100)
    server.fail_next("stat", status=502)
    result = reconcile(config)
    assert result.code == 0, result.stderr
    assert local_tree(proj) == {**files, "there.bin": b"x" * 5000}
    assert sandbox_tree(server) == {**files, "there.bin": b"x" * 5000}
    assert hashlib.sha256((proj / "there.bin").read_bytes()).hexdigest() == hashlib.sha256(b"x" * 5000).hexdigest()


def test_the_daemon_brings_an_agents_output_back(tmp_path: Path, server: AgentRunServer) -> None:
    (tmp_path / "proj").mkdir()
    config = write_config(tmp_path, server, daemon={"poll_interval": 1, "rescan_interval": 3600})
    daemon = DaemonProcess(config, env=ENV)
    try:
        daemon.wait_ready()
        server.write_file(SANDBOX, f"{ROOT}/report/summary.md", b"the agent's summary")
        wait_for(lambda: (tmp_path / "proj" / "report" / "summary.md").exists(), what="the output downloaded")
        (tmp_path / "proj" / "input.txt").write_bytes(b"for the agent")
        wait_for(lambda: sandbox_tree(server).get("input.txt") == b"for the agent", what="the input uploaded")
    finally:
        assert daemon.stop() == 0


def test_faults_from_the_fault_proxy_converge(tmp_path: Path, server: AgentRunServer) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    files = {f"p{i}.txt": f"proxied {i}".encode() * 50 for i in range(4)}
    for name, data in files.items():
        (proj / name).write_bytes(data)
    server.write_file(SANDBOX, f"{ROOT}/from-sandbox.txt", b"y" * 4000)
    base = f"/sandboxes/{SANDBOX}/filesystem"
    with FaultProxy(server.url) as proxy:  # signed for the proxy's host: it forwards Host as sent
        proxy.plan(base, unavailable(retry_after=0), html_page(502))
        proxy.plan(f"{base}/upload", Reset(), error_after_forward(500), Reset(forward_first=True))
        proxy.plan(f"{base}/download", Truncate(keep=10))
        config = write_config(tmp_path, server, url=proxy.url, daemon={"workers": 1, "small_transfers": 1})
        result = reconcile(config)
        assert result.code == 0, result.stderr
        assert proxy.pending(f"{base}/upload") == 0 and proxy.pending(f"{base}/download") == 0
    want = {**files, "from-sandbox.txt": b"y" * 4000}
    assert local_tree(proj) == want and sandbox_tree(server) == want


def test_a_sandbox_that_vanishes_mid_run_pauses_the_folder_and_deletes_nothing(
    tmp_path: Path, server: AgentRunServer
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    for i in range(4):
        (proj / f"w{i}.txt").write_bytes(b"work")
    config = write_config(tmp_path, server, delete=True, daemon={"workers": 1, "small_transfers": 1})
    assert reconcile(config).code == 0
    for i in range(4, 8):
        (proj / f"w{i}.txt").write_bytes(b"more work")

    def expire_at_the_first_upload() -> None:  # the sandbox expires while the pass uploads
        wait_for(lambda: len(server.seen("upload")) > 4, what="the second pass uploading")
        server.remove_sandbox(SANDBOX)

    expiry = threading.Thread(target=expire_at_the_first_upload)
    expiry.start()
    result = reconcile(config)
    expiry.join()
    assert result.code == 1
    failed = [a for a in result.folder("proj").raw["actions"] if a["status"] == "failed"]
    assert failed and any("is gone" in (a["error"] or "") for a in failed)
    want = {**{f"w{i}.txt": b"work" for i in range(4)}, **{f"w{i}.txt": b"more work" for i in range(4, 8)}}
    assert local_tree(proj) == want  # nothing deleted or trashed, whatever `delete` says
    # Made again, empty, under the same id: an emptied place; still nothing deleted.
    server.create_sandbox(SANDBOX)
    emptied = reconcile(config)
    assert emptied.code == 1 and "lists no files" in emptied.folder("proj")["blocked"]
    assert local_tree(proj) == want
    status = syncd("status", "-c", config, "--json")
    assert status.doc is not None and status.doc["folders"][0]["last_error"]
