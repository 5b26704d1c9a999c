"""`syncd status`, `retry` and `check`, and what an authentication failure looks like in them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from tests.support.syncd_cli import run_syncd, write_config

SECRET = "the-real-key-0123456789"


@pytest.fixture
def keyed_server(server_data: Path) -> Iterator[ServerThread]:
    """A file service that requires an API key and refuses files over 1000 bytes."""
    with ServerThread(build_app(server_data, api_key=SECRET, max_upload_size=1000)) as server:
        yield server


def config_with_key(tmp_path: Path, url: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    cfg = write_config(
        tmp_path / "config.toml", state_dir=tmp_path / "state", url=url,
        folders=[{"name": "docs", "path": folder, "chat_id": "c"}],
    )
    # the key lives in the environment, named by the config
    text = cfg.read_text().replace("timeout = 10", 'timeout = 10\napi_key_env = "SYNCD_TEST_KEY"')
    cfg.write_text(text)
    return cfg


def test_status_json_shape_and_counts(tmp_path: Path, keyed_server: ServerThread) -> None:
    cfg = config_with_key(tmp_path, keyed_server.url)
    (tmp_path / "docs" / "small.txt").write_bytes(b"fits")
    (tmp_path / "docs" / "big.bin").write_bytes(b"x" * 5000)  # over the server's limit: refused
    result = run_syncd("reconcile", "--json", "-c", cfg, env={"SYNCD_TEST_KEY": SECRET})
    assert result.code == 1
    assert result.folder("docs").actions["big.bin"]["status"] == "failed"
    assert "limit" in result.folder("docs").actions["big.bin"]["error"]

    status = run_syncd("status", "--json", "-c", cfg)
    assert status.code == 0
    assert status.doc is not None
    assert status.doc["daemon"] == {"running": False, "pid": None}
    [folder] = status.doc["folders"]
    assert set(folder) == {"name", "path", "remote", "place", "mode", "files", "pending", "running", "failed",
                           "last_pass", "last_error", "trash_bytes", "held"}
    assert (folder["name"], folder["path"], folder["remote"], folder["place"], folder["mode"]) == (
        "docs", str(tmp_path / "docs"), "r", "chat c", "two-way")
    assert folder["trash_bytes"] == 0
    assert (folder["files"], folder["pending"], folder["running"], folder["failed"]) == (1, 0, 0, 1)
    assert folder["last_pass"] and "limit" in folder["last_error"]

    retried = run_syncd("retry", "-c", cfg)
    assert (retried.code, retried.stdout.strip()) == (0, "requeued 1 failed job")
    after = run_syncd("status", "--json", "-c", cfg)
    assert after.doc is not None
    assert (after.doc["folders"][0]["pending"], after.doc["folders"][0]["failed"]) == (1, 0)
    human = run_syncd("status", "-c", cfg)
    assert "docs (two-way): " in human.stdout and "\u21c4 chat c on r" in human.stdout
    assert "  1 file, 1 pending, 0 running, 0 failed" in human.stdout


def test_a_wrong_key_pauses_the_remote_and_says_so_without_the_key(
    tmp_path: Path, keyed_server: ServerThread
) -> None:
    cfg = config_with_key(tmp_path, keyed_server.url)
    (tmp_path / "docs" / "a.txt").write_bytes(b"a")
    wrong = "wrong-key-abcdef"
    result = run_syncd("reconcile", "--json", "-c", cfg, env={"SYNCD_TEST_KEY": wrong})
    assert result.code == 1
    report = result.folder("docs")
    assert report["failed"] >= 1
    text = result.stdout + result.stderr
    assert "authentication" in text.lower() or "401" in text
    assert wrong not in text and SECRET not in text
    status = run_syncd("status", "--json", "-c", cfg)
    assert status.doc is not None
    last_error = status.doc["folders"][0]["last_error"]
    assert last_error and ("authentication" in last_error.lower() or "401" in last_error)
    assert wrong not in status.stdout

    # With the right key the same files sync, and the pause is lifted.
    ok = run_syncd("reconcile", "--json", "-c", cfg, env={"SYNCD_TEST_KEY": SECRET})
    assert ok.code == 0, ok.stdout + ok.stderr
    assert ok.folder("docs")["uploaded"] == 1


def test_check(tmp_path: Path, keyed_server: ServerThread) -> None:
    cfg = config_with_key(tmp_path, keyed_server.url)
    good = run_syncd("check", "-c", cfg, env={"SYNCD_TEST_KEY": SECRET})
    assert good.code == 0, good.stdout + good.stderr
    assert "docs: remote r ok" in good.stdout
    refused = run_syncd("check", "-c", cfg, env={"SYNCD_TEST_KEY": "nope-nope"})
    assert refused.code == 1
    assert "refused" in refused.stdout and "nope-nope" not in refused.stdout + refused.stderr
    missing = run_syncd("check", "-c", cfg, env={"SYNCD_TEST_KEY": ""})
    assert missing.code == 1  # a failed check, listed with the others (not a config error)
    assert "secret remotes.r.api_key_env FAILED" in missing.stdout and "SYNCD_TEST_KEY" in missing.stdout


def test_unreachable_remote_is_reported_by_check_and_reconcile(tmp_path: Path) -> None:
    cfg = config_with_key(tmp_path, "http://127.0.0.1:9")  # discard port: nothing listens
    check = run_syncd("check", "-c", cfg, env={"SYNCD_TEST_KEY": SECRET})
    assert check.code == 1
    assert "unreachable" in check.stdout
    result = run_syncd("reconcile", "--json", "-c", cfg, env={"SYNCD_TEST_KEY": SECRET})
    assert result.code == 1
    assert result.doc is not None and result.doc["ok"] is False
    assert "could not connect" in (result.folder("docs")["blocked"] or "")


def test_a_reader_that_stops_reading_ends_a_command_quietly(tmp_path: Path, keyed_server: ServerThread) -> None:
    """`syncd status | head`: the pipe closes before syncd writes. It exits 0, no traceback."""
    cfg = config_with_key(tmp_path, keyed_server.url)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before syncd writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "syncd", "status", "--json", "-c", str(cfg)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
