"""SPEC, "Trash": `.syncd/trash/` keeps replaced and deleted content for `trash_days`, then a
full pass (the daemon's, and `syncd reconcile`'s) removes it; `status` reports its size.

Old slots are made the way syncd names them (`.syncd/trash/<local time>/...`), dated in the
past, or with an old modification time when their name is not a time.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.box import Sync
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.privileges import modes_bite
from tests.support.syncd_cli import run_syncd

pytestmark = pytest.mark.timeout(120)

DAY = 86400


def slot_name(days_ago: float) -> str:
    """A trash slot's name (`FolderFS`: local time, to the microsecond) `days_ago` days back."""
    return datetime.fromtimestamp(time.time() - days_ago * DAY).strftime("%Y-%m-%dT%H%M%S.%f")


def make_slot(trash: Path, name: str, files: dict[str, bytes]) -> Path:
    slot = trash / name
    for rel, data in files.items():
        (slot / rel).parent.mkdir(parents=True, exist_ok=True)
        (slot / rel).write_bytes(data)
    return slot


def trash_bytes(box: Sync) -> int:
    result = run_syncd("status", "--json", "-c", box.config)
    assert result.code == 0 and result.doc is not None, result.stderr
    [folder] = result.doc["folders"]
    size: int = folder["trash_bytes"]
    return size


@pytest.fixture
def synced(box: Sync) -> Sync:
    box.configure(trash_days=7)
    box.write("a.txt", b"a")
    box.sync()
    return box


def test_reconcile_removes_slots_older_than_trash_days_and_keeps_the_rest(synced: Sync, tmp_path: Path) -> None:
    trash = synced.folder / ".syncd" / "trash"
    old = make_slot(trash, slot_name(30), {"report.txt": b"x" * 100, "sub/deep.txt": b"y" * 20})
    recent = make_slot(trash, slot_name(2), {"notes.txt": b"z" * 10})
    unnamed = make_slot(trash, "copied by hand", {"old.txt": b"w" * 5})
    os.utime(unnamed, (time.time() - 30 * DAY,) * 2)  # not a time: judged by its mtime
    fresh_unnamed = make_slot(trash, "also by hand", {"new.txt": b"v" * 3})
    # Planted links: one standing as a slot, one inside an old slot, both pointing outside.
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "precious.txt").write_bytes(b"keep me")
    (outside / "file.txt").write_bytes(b"keep me too")
    link_slot = trash / slot_name(40)
    link_slot.symlink_to(outside / "file.txt")
    (old / "escape").symlink_to(outside / "dir", target_is_directory=True)
    assert trash_bytes(synced) == 100 + 20 + 10 + 5 + 3 + len(str(outside / "file.txt")) + len(str(outside / "dir"))

    result = run_syncd("reconcile", "-v", "-c", synced.config)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in trash.iterdir()) == sorted([recent.name, fresh_unnamed.name])
    assert (outside / "dir" / "precious.txt").read_bytes() == b"keep me"  # never followed
    assert (outside / "file.txt").read_bytes() == b"keep me too"
    assert (synced.folder / "a.txt").read_bytes() == b"a"  # the folder itself untouched
    purged = [line for line in result.stderr.splitlines() if "trash purged" in line]
    assert len(purged) == 1
    assert '"entries": 3' in purged[0] and '"days": 7' in purged[0]
    assert trash_bytes(synced) == 13

    again = run_syncd("reconcile", "-v", "-c", synced.config)  # nothing more to remove: nothing said
    assert again.code == 0 and "trash purged" not in again.stderr


def test_a_slot_that_cannot_be_removed_is_said_and_the_others_go(synced: Sync, tmp_path: Path) -> None:
    trash = synced.folder / ".syncd" / "trash"
    stuck = make_slot(trash, slot_name(30), {"inner/x.txt": b"x"}) / "inner"
    gone = make_slot(trash, slot_name(31), {"y.txt": b"yy"})
    stuck.chmod(0o500)  # its file cannot be unlinked
    try:
        result = run_syncd("reconcile", "-v", "-c", synced.config, **modes_bite(tmp_path))
    finally:
        stuck.chmod(0o700)
    assert result.code == 0, result.stderr  # the pass itself went on
    assert not gone.exists() and (stuck / "x.txt").exists()
    [warning] = [line for line in result.stderr.splitlines() if "cannot purge the trash" in line]
    assert slot_name(30)[:10] in warning
    assert any('"entries": 1' in line for line in result.stderr.splitlines() if "trash purged" in line)


def test_the_daemon_purges_at_its_start_and_at_every_full_pass(synced: Sync) -> None:
    trash = synced.folder / ".syncd" / "trash"
    first = make_slot(trash, slot_name(8), {"one.txt": b"1"})
    daemon = DaemonProcess(synced.config)
    try:
        daemon.wait_ready()
        assert not first.exists()
        assert [(e["entries"], e["bytes"], e["days"]) for e in daemon.find("trash purged")] == [(1, 1, 7)]
        second = make_slot(trash, slot_name(9), {"two.txt": b"22"})
        daemon.signal(signal.SIGUSR1)  # what the hourly rescan does
        wait_for(lambda: not second.exists(), what="the rescan to purge the trash")
        wait_for(lambda: len(daemon.find("trash purged")) == 2, what="the second purge to be logged")
        assert daemon.find("trash purged")[1]["bytes"] == 2
    finally:
        assert daemon.stop() == 0, daemon.log_text()


def test_a_dry_run_removes_nothing(synced: Sync) -> None:
    trash = synced.folder / ".syncd" / "trash"
    old = make_slot(trash, slot_name(30), {"report.txt": b"x"})
    assert synced.run("--dry-run").code == 0
    assert old.exists()


def test_trash_days_0_keeps_everything(synced: Sync) -> None:
    synced.configure(trash_days=0)
    trash = synced.folder / ".syncd" / "trash"
    ancient = make_slot(trash, slot_name(3650), {"report.txt": b"x"})
    synced.sync()
    assert ancient.exists() and trash_bytes(synced) == 1


def test_the_default_is_30_days(box: Sync) -> None:
    box.write("a.txt", b"a")
    box.sync()
    trash = box.folder / ".syncd" / "trash"
    month = make_slot(trash, slot_name(31), {"x.txt": b"x"})
    weeks = make_slot(trash, slot_name(29), {"y.txt": b"y"})
    box.sync()
    assert not month.exists() and weeks.exists()


def test_a_trash_that_is_a_link_is_never_purged(synced: Sync, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    kept = make_slot(elsewhere, slot_name(30), {"data.txt": b"not syncd's"})
    trash = synced.folder / ".syncd" / "trash"
    trash.rmdir()
    trash.symlink_to(elsewhere, target_is_directory=True)
    synced.sync()
    assert (kept / "data.txt").read_bytes() == b"not syncd's"
    assert trash_bytes(synced) == 0


@pytest.mark.parametrize(("value", "found"), [("-1", "must be at least 0 (got -1)"),
                                              ('"x"', "must be an integer (got string 'x')"),
                                              ("1.5", "must be an integer")])
def test_a_wrong_trash_days_is_a_config_error_naming_the_key(box: Sync, value: str, found: str) -> None:
    box.configure()
    box.config.write_text(box.config.read_text() + f"trash_days = {value}\n")
    for command in ("status", "reconcile"):
        result = run_syncd(command, "-c", box.config)
        assert result.code == 2
        assert "folders[0].trash_days" in result.stderr and found in result.stderr
