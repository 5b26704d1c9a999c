"""gitignore-style `ignore` patterns end to end: `syncd reconcile` and the daemon's watcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.support.box import Sync
from tests.support.chat import chat_files
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import write_config

pytestmark = pytest.mark.timeout(120)

PATTERNS = ["*.bak", "!important.bak"]


def test_reconcile_syncs_a_negated_name_and_not_the_rest(box: Sync) -> None:
    box.configure(delete=True, ignore=PATTERNS)
    box.write("important.bak", b"keep me")
    box.write("other.bak", b"scratch")
    box.write("notes.txt", b"n")
    box.put("theirs.bak", b"their backup")
    box.put("important-too.bak", b"ignored: only important.bak is re-included")

    report = box.sync()

    assert report.pairs == {("important.bak", "upload"), ("notes.txt", "upload")}
    assert box.remote() == {
        "important.bak": b"keep me",
        "notes.txt": b"n",
        "theirs.bak": b"their backup",
        "important-too.bak": b"ignored: only important.bak is re-included",
    }
    assert box.local() == {"important.bak": b"keep me", "other.bak": b"scratch", "notes.txt": b"n"}
    box.assert_converged()


def test_reconcile_can_re_include_a_built_in_ignore_but_not_the_marker(box: Sync) -> None:
    box.configure(ignore=["!keep.tmp", "!.syncd"])
    box.write("keep.tmp", b"wanted")
    box.write("scratch.tmp", b"not wanted")

    report = box.sync()

    assert report.pairs == {("keep.tmp", "upload")}
    assert box.remote() == {"keep.tmp": b"wanted"}
    box.assert_converged()


def test_the_daemon_watcher_syncs_a_negated_name_and_not_the_rest(
    tmp_path: Path, server_url: str, sdk: BddFileClient
) -> None:
    folder = tmp_path / "f"
    chat = "ignore-chat"
    config = write_config(
        tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=server_url, settle=0.3,
        folders=[{"name": "f", "path": folder, "chat_id": chat, "ignore": PATTERNS}],
        daemon={"poll_interval": 1, "rescan_interval": 3600},
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        # Written after the first pass: only the watcher can bring them to the daemon's notice.
        (folder / "other.bak").write_bytes(b"scratch")
        (folder / "important.bak").write_bytes(b"keep me")
        wait_for(lambda: chat_files(sdk, chat).get("important.bak") == b"keep me", what="important.bak to go up")
        (folder / "later.txt").write_bytes(b"after the .bak files")  # settles after them
        wait_for(lambda: "later.txt" in chat_files(sdk, chat), what="later.txt to go up")
        assert set(chat_files(sdk, chat)) == {"important.bak", "later.txt"}
        assert daemon.transfers("other.bak") == []
        assert daemon.stop() == 0
    finally:
        daemon.kill()
