"""`syncd status [--folder NAME]... [--files] [--json]`: every file that is not in sync, with its
state, reason and next try, through the real commands against a real file service on loopback.

What `status --files` lists comes from two places: the queue (pending, running, failed,
conflicted work) and what the last pass left out of sync with no work queued (skipped entries,
deletions held back by max_delete, local deletions the remote keeps).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from syncd.state.db import open_state
from tests.support.box import Sync
from tests.support.chat import chat_files
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import Result, run_syncd, write_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_server(server_data: Path) -> Iterator[ServerThread]:
    """A file service that refuses files over 1000 bytes."""
    with ServerThread(build_app(server_data, max_upload_size=1000)) as server:
        yield server


def status(config: Path, *args: str) -> dict[str, Any]:
    """`syncd status --json --files ARGS`: the document (the command must succeed)."""
    result = run_syncd("status", "--json", "--files", "-c", config, *args)
    assert result.code == 0 and result.doc is not None, result.stderr
    return result.doc


def folder_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    [folder] = [f for f in doc["folders"] if f["name"] == name]
    return folder


def out_of_sync(config: Path, folder: str) -> dict[str, dict[str, Any]]:
    """name -> entry of the folder's `files_out_of_sync` (each name once)."""
    entries = folder_of(status(config), folder)["files_out_of_sync"]
    assert [e["name"] for e in entries] == sorted(e["name"] for e in entries)
    assert len({e["name"] for e in entries}) == len(entries)
    return {e["name"]: e for e in entries}


def reconcile(config: Path, *args: str) -> Result:
    return run_syncd("reconcile", "--json", "-c", config, *args)


def test_a_refused_upload_is_failed_with_its_reason_then_pending_with_its_next_try(
    tmp_path: Path, small_server: ServerThread
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_bytes(b"fits")
    (folder / "big.bin").write_bytes(b"x" * 5000)  # over the service's limit: refused for good
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=small_server.url,
                       folders=[{"name": "docs", "path": folder, "chat_id": "c"}])
    assert reconcile(cfg).code == 1

    entries = out_of_sync(cfg, "docs")
    assert set(entries) == {"big.bin"}  # small.txt is in sync
    big = entries["big.bin"]
    assert big["state"] == "failed" and "limit" in big["reason"] and big["next_try"] is None
    docs = folder_of(status(cfg), "docs")
    assert (docs["files"], docs["failed"]) == (1, 1)

    # `syncd retry` makes it pending again: due now, and its last error is part of its reason.
    assert run_syncd("retry", "-c", cfg).code == 0
    big = out_of_sync(cfg, "docs")["big.bin"]
    assert big["state"] == "pending"
    assert big["reason"].startswith("upload (new locally); last try failed: ") and "limit" in big["reason"]
    due = datetime.fromisoformat(big["next_try"])
    assert due.tzinfo is not None  # an ISO 8601 time with its UTC offset

    human = run_syncd("status", "--files", "-c", cfg)
    assert human.code == 0
    assert "    pending  big.bin: upload (new locally); last try failed: " in human.stdout
    assert "(next try " in human.stdout


def test_last_error_is_never_null_while_jobs_have_failed(tmp_path: Path, small_server: ServerThread) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.bin").write_bytes(b"x" * 5000)
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=small_server.url,
                       folders=[{"name": "docs", "path": folder, "chat_id": "c"}])
    assert reconcile(cfg).code == 1
    # A later pass that went well clears the folder's last error (the daemon's rescans do);
    # the failed job is still there, and its error is what status says.
    state = open_state(tmp_path / "state")
    try:
        state.set_last_pass("docs", "2026-01-01T00:00:00+00:00", None)
    finally:
        state.close()
    docs = folder_of(status(cfg), "docs")
    assert docs["failed"] == 1
    assert docs["last_error"] is not None and "limit" in docs["last_error"]


def test_what_a_top_level_folder_skips_is_listed_and_logged_once_by_the_daemon(box: Sync) -> None:
    box.write("plain.txt", b"synced")
    (box.folder / "sub").mkdir()
    (box.folder / "sub" / "inner.txt").write_bytes(b"not at the top level")
    (box.folder / "link").symlink_to(box.folder / "plain.txt")
    os.mkfifo(box.folder / "pipe")
    daemon = DaemonProcess(box.config)
    try:
        daemon.wait_ready()  # after the start-up pass
        daemon.signal(signal.SIGUSR1)  # a second full pass ...
        wait_for(lambda: daemon.find("full pass requested"), what="the second pass")
    finally:
        assert daemon.stop() == 0, daemon.log_text()  # ... which ends before the daemon does
    skipped = {e["name"]: e["reason"] for e in daemon.find("skipped")}
    assert sorted(e["name"] for e in daemon.find("skipped")) == ["link", "pipe", "sub"]  # once each
    assert skipped == {
        "link": "symbolic link: links are never followed",
        "pipe": "FIFO (named pipe): only regular files are synced",
        "sub": "directory: this folder syncs its top level only",
    }
    entries = out_of_sync(box.config, "f")
    assert {name: (e["state"], e["reason"], e["next_try"]) for name, e in entries.items()} == {
        name: ("skipped", reason, None) for name, reason in skipped.items()
    }
    assert chat_files(box.sdk, "chat-1") == {"plain.txt": b"synced"}


def test_a_folder_dropped_into_a_running_outbox_is_skipped_and_said_so(box: Sync) -> None:
    box.configure(mode="upload", after_upload="move:sent")
    box.folder.mkdir()
    daemon = DaemonProcess(box.config)
    try:
        daemon.wait_ready()
        (box.folder / "album").mkdir()
        (box.folder / "album" / "photo.jpg").write_bytes(b"jpeg")
        box.write("note.txt", b"delivered")
        wait_for(lambda: daemon.find("skipped", name="album"), what="the dropped folder to be reported")
        wait_for(lambda: (box.folder / "sent" / "note.txt").exists(), what="note.txt to be delivered")
        entries = out_of_sync(box.config, "f")
    finally:
        assert daemon.stop() == 0, daemon.log_text()
    assert {name: e["state"] for name, e in entries.items()} == {"album": "skipped"}  # never `sent`, syncd's own
    assert len(daemon.find("skipped", name="album")) == 1 and not daemon.find("skipped", name="sent")
    assert chat_files(box.sdk, "chat-1") == {"note.txt": b"delivered"}


def test_held_back_deletions_are_listed_until_reconcile_max_delete_lets_them_through(box: Sync) -> None:
    box.configure(delete=True, max_delete=50)
    for n in range(4):
        box.write(f"f{n}.txt", b"%d" % n)
    box.sync()
    for n in range(3):
        (box.folder / f"f{n}.txt").unlink()

    held = box.run()
    assert held.code == 1 and "max_delete" in (held.folder("f")["warning"] or "")
    entries = out_of_sync(box.config, "f")
    assert set(entries) == {"f0.txt", "f1.txt", "f2.txt"}
    for entry in entries.values():
        assert entry["state"] == "deletion held back" and entry["next_try"] is None
        assert "pass would delete 3 of 4 tracked files (75% > max_delete 50%); deleted nothing" in entry["reason"]
        assert "run `syncd reconcile --folder f --max-delete 75` to let them through" in entry["reason"]
    human = run_syncd("status", "-c", box.config)
    assert "  3 deletions held back: pass would delete 3 of 4" in human.stdout
    assert len(chat_files(box.sdk, "chat-1")) == 4  # nothing deleted

    # A dry run with the override plans them and records nothing.
    planned = box.run("--dry-run", "--max-delete", "100").folder("f")
    assert {(a["name"], a["action"], a["status"]) for a in planned["actions"]} == {
        (f"f{n}.txt", "delete_remote", "planned") for n in range(3)}
    assert set(out_of_sync(box.config, "f")) == {"f0.txt", "f1.txt", "f2.txt"}

    through = box.sync("--max-delete", "100")
    assert through["deleted_remote"] == 3
    assert chat_files(box.sdk, "chat-1") == {"f3.txt": b"3"}
    assert out_of_sync(box.config, "f") == {}
    assert "held back" not in run_syncd("status", "-c", box.config).stdout
    # The override was for that pass only: the folder's own max_delete holds again.
    for name in ("f3.txt", "g.txt"):
        box.write(name, b"again")
    box.sync()
    (box.folder / "f3.txt").unlink()
    (box.folder / "g.txt").unlink()
    assert box.run().code == 1
    assert {e["state"] for e in out_of_sync(box.config, "f").values()} == {"deletion held back"}


def test_folder_limits_the_folders_and_an_unknown_one_is_a_usage_error(tmp_path: Path, server_url: str) -> None:
    folders = [{"name": name, "path": tmp_path / name, "chat_id": name} for name in ("a", "b", "c")]
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=server_url, folders=folders)
    assert reconcile(cfg).code == 0
    assert [f["name"] for f in status(cfg, "--folder", "b")["folders"]] == ["b"]
    assert [f["name"] for f in status(cfg, "--folder", "c", "--folder", "a")["folders"]] == ["c", "a"]
    human = run_syncd("status", "-c", cfg, "--folder", "b")
    assert "b (two-way): " in human.stdout and "a (two-way)" not in human.stdout
    unknown = run_syncd("status", "-c", cfg, "--folder", "b", "--folder", "nope")
    assert unknown.code == 2 and unknown.stdout == ""
    assert "'nope'" in unknown.stderr and "a, b, c" in unknown.stderr


def test_names_with_control_characters_are_escaped_for_people_and_exact_in_json(box: Sync) -> None:
    box.write("new\nline.txt", b"a name no remote takes")
    box.write("esc\x1b[31m.txt", b"another")
    box.write("ok.txt", b"fine")
    assert box.run().code == 1  # the two names cannot be sent
    entries = out_of_sync(box.config, "f")
    assert set(entries) == {"new\nline.txt", "esc\x1b[31m.txt"}
    assert all(e["state"] == "failed" and "control character" in e["reason"] for e in entries.values())

    human = run_syncd("status", "--files", "-c", box.config)
    assert human.code == 0
    assert "new\\nline.txt: " in human.stdout and "esc\\x1b[31m.txt: " in human.stdout
    assert "\x1b" not in human.stdout and "new\nline" not in human.stdout
    lines = human.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("    failed  ")) == 2  # one line each


def test_trash_bytes_grow_when_a_download_replaces_a_file(box: Sync) -> None:
    box.write("report.txt", b"version one, 22 bytes!")
    box.sync()
    assert folder_of(status(box.config), "f")["trash_bytes"] == 0
    box.edit_remote("report.txt", b"version two")  # the other client writes a new version
    replaced = run_syncd("reconcile", "-v", "-c", box.config)
    assert replaced.code == 0 and "1 downloaded" in replaced.stdout
    # The log says where the replaced content went, and for how long.
    assert "replaced" in replaced.stderr and "previous content is in" in replaced.stderr
    assert "for 30 days" in replaced.stderr
    assert (box.folder / "report.txt").read_bytes() == b"version two"
    assert folder_of(status(box.config), "f")["trash_bytes"] == 22  # the replaced content, kept
    assert "trash: 22 B" in run_syncd("status", "-c", box.config).stdout


def test_files_counts_what_is_on_disk_and_delete_false_lists_the_remote_copy_kept(box: Sync) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        box.write(name, name.encode())
    box.sync()
    assert folder_of(status(box.config), "f")["files"] == 3
    (box.folder / "b.txt").unlink()
    assert folder_of(status(box.config), "f")["files"] == 2  # gone before any pass saw it

    first = run_syncd("reconcile", "-v", "-c", box.config)
    assert first.code == 0, first.stderr
    assert "local deletion not sent" in first.stderr and "delete = false keeps the remote copy" in first.stderr
    assert chat_files(box.sdk, "chat-1") == {"a.txt": b"a.txt", "b.txt": b"b.txt", "c.txt": b"c.txt"}
    kept = {"b.txt": ("skipped", "deleted locally; delete = false keeps the remote copy", None)}
    assert {n: (e["state"], e["reason"], e["next_try"]) for n, e in out_of_sync(box.config, "f").items()} == kept
    docs = folder_of(status(box.config), "f")
    assert docs["files"] == 2

    again = run_syncd("reconcile", "-v", "-c", box.config)  # the journal remembers: said once, still listed
    assert again.code == 0 and "local deletion not sent" not in again.stderr
    assert {n: (e["state"], e["reason"], e["next_try"]) for n, e in out_of_sync(box.config, "f").items()} == kept
    assert not (box.folder / "b.txt").exists()  # and not brought back

    box.edit_remote("b.txt", b"changed there")  # the remote copy changes: it comes back
    assert box.sync()["downloaded"] == 1
    assert out_of_sync(box.config, "f") == {}
    assert folder_of(status(box.config), "f")["files"] == 3


def test_a_state_dir_with_nothing_synced_yet_reads_as_empty(tmp_path: Path, server_url: str) -> None:
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=server_url,
                       folders=[{"name": "docs", "path": tmp_path / "docs", "chat_id": "c"}])
    [docs] = status(cfg)["folders"]
    assert (docs["files"], docs["pending"], docs["failed"], docs["trash_bytes"]) == (0, 0, 0, 0)
    assert docs["last_error"] is None
    assert docs["files_out_of_sync"] == [] and docs["place"] == "chat c"
    assert not (tmp_path / "state" / "syncd.db").exists()  # status never makes the database
