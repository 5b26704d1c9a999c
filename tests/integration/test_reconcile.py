"""`syncd reconcile` end to end: the real command in a subprocess, the reference
file service on loopback, real files, and the published SDK as "another
client" that changes the remote between passes.

Every test checks the JSON report *and* both sides as they really are: the
folder's files and bytes, and the chat's file list as the SDK sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.box import CHAT, FOLDER, Sync, conflicted_copy, synced
from tests.support.faultproxy import FaultProxy, Reset, error_after_forward, unavailable
from tests.support.hostile_server import HostileServer
from tests.support.syncd_cli import reconcile, write_config

pytestmark = pytest.mark.timeout(120)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- 1. first sync, two-way ----------------------------------------------------------------------


def test_first_sync_up_down_same_and_different(box: Sync) -> None:
    box.write("up.txt", b"only here")
    box.write("same.txt", b"identical")
    box.write("doc.txt", b"local version")
    box.put("down.txt", b"only there")
    same_id = box.put("same.txt", b"identical")
    box.put("doc.txt", b"remote version!")

    report = box.sync()

    assert report.pairs == {("up.txt", "upload"), ("down.txt", "download"), ("doc.txt", "conflict")}
    assert {a["status"] for a in report["actions"]} == {"done"}
    assert report.counts() == {
        "uploaded": 1, "downloaded": 1, "deleted_local": 0, "deleted_remote": 0,
        "conflicts": 1, "failed": 0, "unchanged": 1, "blocked": None, "warning": None,
    }
    local = box.local()
    [copy] = [n for n in local if conflicted_copy("doc", ".txt").fullmatch(n)]
    assert local == {
        "up.txt": b"only here", "same.txt": b"identical", "down.txt": b"only there",
        "doc.txt": b"remote version!", copy: b"local version",
    }
    assert box.remote() == local  # keep-both: the local version went up under its new name
    assert box.remote_ids()["same.txt"] == [same_id]  # recorded, not transferred
    box.assert_converged(unchanged=5)


# -- settle --------------------------------------------------------------------------------------


def test_a_just_written_file_is_uploaded_once_it_settled(box: Sync) -> None:
    settle = 2.0
    box.configure(settle=settle)
    box.write("fresh.txt", b"first draft")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(box.config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Still being written while the pass looks at it: only these bytes may go up.
        path = box.write("fresh.txt", b"the final, longer text")
        last_write = path.stat().st_mtime
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    [folder] = json.loads(stdout)["folders"]
    assert folder["actions"] == [{"name": "fresh.txt", "action": "upload", "status": "done", "error": None}]
    [info] = box.remote_files()
    assert box.remote() == {"fresh.txt": b"the final, longer text"}
    assert info.upload_at.timestamp() >= last_write + settle - 0.05  # not before it had settled
    box.assert_converged(unchanged=1)


def test_a_file_with_an_mtime_in_the_future_is_still_uploaded(box: Sync) -> None:
    # Archives and clock-skewed copies hand out mtimes hours ahead; that must not block a file.
    box.configure(settle=1.0)
    box.write("unzipped.txt", b"from an archive", mtime=time.time() + 6 * 3600)
    report = box.sync()
    assert report.pairs == {("unzipped.txt", "upload")}
    assert box.remote() == {"unzipped.txt": b"from an archive"}
    box.assert_converged(unchanged=1)


# -- 2. one-sided edits --------------------------------------------------------------------------


def test_one_sided_edits_are_copied_over(box: Sync) -> None:
    synced(box, {"theirs.txt": b"v1", "mine.txt": b"v1"})
    box.edit_remote("theirs.txt", b"v2 from the other client")
    box.write("mine.txt", b"v2 edited here")

    report = box.sync()

    assert report.pairs == {("theirs.txt", "download"), ("mine.txt", "upload")}
    assert (report["uploaded"], report["downloaded"], report["failed"]) == (1, 1, 0)
    assert box.local() == {"theirs.txt": b"v2 from the other client", "mine.txt": b"v2 edited here"}
    assert box.remote() == box.local()  # the superseded version is gone: one file per name
    # The content a download replaced is kept in the trash.
    assert box.trash() == [("theirs.txt", b"v1")]
    box.assert_converged(unchanged=2)


# -- 3. both sides edited ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "local_newer"),
    [
        ("keep-both", True),
        ("local-wins", False),
        ("remote-wins", True),
        ("newer-wins", True),
        ("newer-wins", False),
    ],
)
def test_both_sides_edited(box: Sync, policy: str, local_newer: bool) -> None:
    synced(box, {"doc.txt": b"base", "other.txt": b"untouched"}, conflict=policy)
    box.edit_remote("doc.txt", b"remote edit")
    [remote_info] = [f for f in box.remote_files() if f.filename == "doc.txt"]
    path = box.write("doc.txt", b"local edit!")
    # Set exactly: a file system's coarse clock may stamp a write a few ms before "now".
    if local_newer:
        now_ns = time.time_ns()  # after the remote upload returned, and not in the future
        os.utime(path, ns=(now_ns, now_ns))
    else:
        an_hour_before = remote_info.upload_at.timestamp() - 3600
        os.utime(path, (an_hour_before, an_hour_before))

    report = box.sync()

    assert report.pairs == {("doc.txt", "conflict")}
    assert report["conflicts"] == 1 and report["failed"] == 0
    local = box.local()
    winner = policy.removesuffix("-wins")
    if winner == "newer":
        winner = "local" if local_newer else "remote"
    if winner == "keep-both":
        [copy] = [n for n in local if conflicted_copy("doc", ".txt").fullmatch(n)]
        assert local == {"doc.txt": b"remote edit", copy: b"local edit!", "other.txt": b"untouched"}
        assert box.remote() == local
        assert box.trash() == []  # nothing was replaced: the local version only moved aside
    elif winner == "local":
        assert local == {"doc.txt": b"local edit!", "other.txt": b"untouched"}
        assert box.remote() == local  # the remote loser was superseded
        assert box.trash() == []  # the loser had no local content
    else:
        assert local == {"doc.txt": b"remote edit", "other.txt": b"untouched"}
        assert box.remote() == local
        assert box.trash() == [("doc.txt", b"local edit!")]  # the local loser is kept in the trash
    box.assert_converged()


# -- 4. deletions --------------------------------------------------------------------------------


def test_deletions_without_delete_are_remembered_not_propagated(box: Sync) -> None:
    synced(box, {"gone-here.txt": b"a", "gone-there.txt": b"b", "keep.txt": b"c"}, delete=False)
    (box.folder / "gone-here.txt").unlink()
    box.delete_remote("gone-there.txt")

    report = box.sync()

    assert report["actions"] == []
    assert box.local() == {"gone-there.txt": b"b", "keep.txt": b"c"}  # not deleted here ...
    assert box.remote() == {"gone-here.txt": b"a", "keep.txt": b"c"}  # ... nor there, nor brought back
    box.assert_converged()

    # A later change on the other side is copied over again.
    box.edit_remote("gone-here.txt", b"a, edited remotely")
    box.write("gone-there.txt", b"b, edited locally")
    report = box.sync()
    assert report.pairs == {("gone-here.txt", "download"), ("gone-there.txt", "upload")}
    expected = {"gone-here.txt": b"a, edited remotely", "gone-there.txt": b"b, edited locally", "keep.txt": b"c"}
    assert box.local() == expected
    assert box.remote() == expected
    box.assert_converged(unchanged=3)


def test_deletions_with_delete_are_propagated(box: Sync) -> None:
    files = {f"f{i}.txt": b"x%d" % i for i in range(5)}
    synced(box, files, delete=True)
    (box.folder / "f0.txt").unlink()
    box.delete_remote("f1.txt")

    report = box.sync()

    assert report.pairs == {("f0.txt", "delete_remote"), ("f1.txt", "delete_local")}
    assert (report["deleted_remote"], report["deleted_local"], report["failed"]) == (1, 1, 0)
    rest = {n: d for n, d in files.items() if n not in ("f0.txt", "f1.txt")}
    assert box.local() == rest
    assert box.remote() == rest
    assert box.trash() == [("f1.txt", b"x1")]  # a remote deletion moves the local file to the trash
    box.assert_converged(unchanged=3)


def test_max_delete_holds_back_every_deletion_and_says_why(box: Sync) -> None:
    files = {f"f{i}.txt": b"x%d" % i for i in range(4)}
    synced(box, files, delete=True, max_delete=50)
    for name in ("f0.txt", "f1.txt", "f2.txt"):
        (box.folder / name).unlink()

    result = box.run()

    # Nothing deleted, and the pass is not "all good": exit 1 with the reason.
    assert result.code == 1, result.stderr
    assert result.doc is not None and result.doc["ok"] is False
    report = result.folder(FOLDER)
    assert report["actions"] == [] and report["deleted_remote"] == 0
    assert "max_delete" in report["warning"] and "3 of 4" in report["warning"]
    assert box.remote() == files
    assert box.local() == {"f3.txt": b"x3"}

    # Once the user allows it, the deletions go through.
    box.configure(delete=True, max_delete=100)
    report = box.sync()
    assert report.pairs == {(n, "delete_remote") for n in ("f0.txt", "f1.txt", "f2.txt")}
    assert box.remote() == {"f3.txt": b"x3"}
    box.assert_converged(unchanged=1)


# -- 5. one-way modes ----------------------------------------------------------------------------


@pytest.mark.parametrize("after_upload", ["keep", "delete", "move:sent"])
def test_upload_mode(box: Sync, after_upload: str) -> None:
    box.configure(mode="upload", delete=True, after_upload=after_upload)
    box.put("theirs.txt", b"remote only")
    box.write("drop.txt", b"dropped in")

    report = box.sync()

    assert report.pairs == {("drop.txt", "upload")}
    assert box.remote() == {"theirs.txt": b"remote only", "drop.txt": b"dropped in"}
    if after_upload == "keep":
        assert box.local() == {"drop.txt": b"dropped in"}
    elif after_upload == "delete":
        assert box.local() == {}
    else:
        assert box.local() == {}
        assert (box.folder / "sent" / "drop.txt").read_bytes() == b"dropped in"
    # A drop-in removal is not a deletion, even with delete = true; remote-only files never come down.
    box.assert_converged()
    assert box.remote() == {"theirs.txt": b"remote only", "drop.txt": b"dropped in"}
    assert "theirs.txt" not in box.local()


def test_download_mode_never_uploads(box: Sync) -> None:
    box.configure(mode="download")
    box.put("theirs.txt", b"remote")
    box.write("mine.txt", b"local only")

    report = box.sync()

    assert report.pairs == {("theirs.txt", "download")}
    assert box.local() == {"theirs.txt": b"remote", "mine.txt": b"local only"}
    assert box.remote() == {"theirs.txt": b"remote"}
    box.write("mine.txt", b"local only, edited")
    box.assert_converged()
    assert box.remote() == {"theirs.txt": b"remote"}


# -- 7. dry run ----------------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_lists_what_the_pass_does(box: Sync) -> None:
    synced(box, {"edit-here.txt": b"1", "edit-there.txt": b"2", "both.txt": b"3", "del-here.txt": b"4",
                 "del-there.txt": b"5", "still.txt": b"6", "still2.txt": b"7", "still3.txt": b"8"}, delete=True)
    box.write("new-here.txt", b"new local")
    box.put("new-there.txt", b"new remote")
    box.write("edit-here.txt", b"1 edited")
    box.edit_remote("edit-there.txt", b"2 edited")
    box.write("both.txt", b"3 local")
    box.edit_remote("both.txt", b"3 remote")
    (box.folder / "del-here.txt").unlink()
    box.delete_remote("del-there.txt")
    local_tree = sorted((str(p.relative_to(box.folder)), p.stat().st_mtime_ns) for p in box.folder.rglob("*"))
    remote_before = box.remote_ids()

    dry = box.run("--dry-run")

    assert dry.code == 0, dry.stderr
    planned = dry.folder(FOLDER)
    expected = {
        ("new-here.txt", "upload"), ("new-there.txt", "download"), ("edit-here.txt", "upload"),
        ("edit-there.txt", "download"), ("both.txt", "conflict"), ("del-here.txt", "delete_remote"),
        ("del-there.txt", "delete_local"),
    }
    assert planned.pairs == expected
    assert {a["status"] for a in planned["actions"]} == {"planned"}
    assert sorted((str(p.relative_to(box.folder)), p.stat().st_mtime_ns) for p in box.folder.rglob("*")) == local_tree
    assert box.remote_ids() == remote_before

    done = box.sync()
    assert done.pairs == expected
    assert {a["status"] for a in done["actions"]} == {"done"}
    box.assert_converged()


# -- 8. folder marker ----------------------------------------------------------------------------


@pytest.mark.parametrize("lost", ["marker", "folder"])
def test_a_vanished_folder_or_marker_pauses_the_folder(box: Sync, lost: str) -> None:
    synced(box, {"a.txt": b"a", "b.txt": b"b"}, delete=True)
    box.put("new-there.txt", b"would be downloaded")
    remote_before = box.remote_ids()
    shutil.rmtree(box.folder / ".syncd" if lost == "marker" else box.folder)

    result = box.run()

    assert result.code == 1
    assert result.doc is not None and result.doc["ok"] is False
    report = result.folder(FOLDER)
    assert report["failed"] == 1 and report["actions"] == []
    assert "missing" in report["blocked"] and "paused" in report["blocked"]
    assert box.remote_ids() == remote_before  # nothing deleted, nothing uploaded
    if lost == "marker":
        assert box.local() == {"a.txt": b"a", "b.txt": b"b"}  # nothing downloaded either
        assert not (box.folder / ".syncd").exists()
    else:
        assert not box.folder.exists()  # not recreated empty


# -- 9. remote duplicates, skipped entries, ignored names ------------------------------------------


def test_remote_duplicates_the_newest_wins(box: Sync) -> None:
    box.put("dup.txt", b"older")
    newest = box.put("dup.txt", b"newer")

    report = box.sync()

    assert report.pairs == {("dup.txt", "download")}
    assert box.local() == {"dup.txt": b"newer"}
    box.assert_converged(unchanged=1)

    box.write("dup.txt", b"edited here")
    report = box.sync()
    assert report.pairs == {("dup.txt", "upload")}
    versions = [f for f in box.remote_files() if f.filename == "dup.txt"]
    assert newest not in {f.id for f in versions}  # the version the edit superseded is gone
    current = max(versions, key=lambda f: (f.upload_at, f.id))
    assert box.fetch(current.id) == b"edited here"
    box.assert_converged(unchanged=1)


def test_subdirectories_symlinks_and_fifos_are_skipped(box: Sync) -> None:
    outside = box.tmp / "outside.txt"
    outside.write_bytes(b"not in the folder")
    box.write("regular.txt", b"synced")
    box.write("sub/inner.txt", b"in a subdirectory")
    (box.folder / "link.txt").symlink_to(outside)
    os.mkfifo(box.folder / "pipe")

    report = box.sync()

    assert report.pairs == {("regular.txt", "upload")}
    assert report["failed"] == 0
    assert box.remote() == {"regular.txt": b"synced"}
    box.assert_converged(unchanged=1)
    assert (box.folder / "link.txt").is_symlink() and (box.folder / "pipe").exists()


def test_remote_files_with_ignored_names_are_left_alone(box: Sync) -> None:
    box.configure(delete=True, ignore=["*.bak"])
    box.put("notes.bak", b"someone's backup")
    box.put("download.part", b"someone's partial file")
    box.put("real.txt", b"real")

    report = box.sync()

    assert report.pairs == {("real.txt", "download")}
    assert box.local() == {"real.txt": b"real"}
    box.assert_converged()
    # Not downloaded, so never seen as deleted here: the remote copies survive delete = true.
    assert set(box.remote()) == {"notes.bak", "download.part", "real.txt"}


def test_ignoring_a_synced_name_later_deletes_nothing(box: Sync) -> None:
    synced(box, {"old.bak": b"synced before it was ignored", "keep.txt": b"k"}, delete=True)
    box.configure(delete=True, ignore=["*.bak"])

    report = box.sync()

    assert report["actions"] == []
    assert box.local() == {"old.bak": b"synced before it was ignored", "keep.txt": b"k"}
    assert box.remote() == box.local()
    box.assert_converged(unchanged=1)


# -- 10. exit codes ------------------------------------------------------------------------------


def test_config_error_exits_2_naming_the_key(box: Sync) -> None:
    box.configure(delet=True)
    result = box.run()
    assert result.code == 2
    assert "folders[0].delet" in result.stderr and str(box.config) in result.stderr
    assert not box.folder.exists()


def test_a_held_state_dir_exits_3_naming_the_holder(box: Sync) -> None:
    box.write("a.txt", b"a")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from syncd.state.db import open_state;"
         "state = open_state(Path(sys.argv[1])); print('holding', flush=True); sys.stdin.read()",
         str(box.state_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        result = box.run()
        assert result.code == 3
        assert f"pid {holder.pid}" in result.stderr
        assert box.remote_files() == []
    finally:
        holder.communicate(input="", timeout=30)
    assert box.sync().pairs == {("a.txt", "upload")}  # free again once the holder is gone


# -- 11. a hostile remote ------------------------------------------------------------------------

UNSAFE = {
    "../x": "path separator",
    "a/b": "path separator",
    "..": "reserved name",
    ".": "reserved name",
    "nul\x00byte": "NUL",
    "esc\x1b[2Jname": "control character",
    "line\nbreak": "control character",
    "back\\slash": "path separator",
    "x" * 300: "300 bytes",
    "/etc/passwd": "path separator",
    "": "empty name",
}


def test_a_hostile_remote_cannot_write_outside_the_folder(tmp_path: Path) -> None:
    good = {"good.txt": b"good one", "also good.bin": b"\x00\x01 good two"}
    files = [(name, b"evil " + name.encode()) for name in UNSAFE] + list(good.items())
    folder = tmp_path / "f"
    with HostileServer(files) as server:
        config = write_config(
            tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=server.url,
            folders=[{"name": FOLDER, "path": folder, "chat_id": CHAT, "delete": True}],
        )
        result = reconcile(config)
        downloaded = server.downloaded()

    assert result.code == 1, result.stderr
    report = result.folder(FOLDER)
    actions = report.actions
    for name, why in UNSAFE.items():
        assert actions[name]["status"] == "failed", name
        assert actions[name]["action"] == "download"
        assert "unsafe remote name" in actions[name]["error"] and why in actions[name]["error"], name
    assert {n: actions[n]["status"] for n in good} == dict.fromkeys(good, "done")
    assert (report["downloaded"], report["failed"]) == (2, len(UNSAFE))
    assert sorted(downloaded) == [len(UNSAFE) + 1, len(UNSAFE) + 2]  # only the good ids were fetched

    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    outside = [p for p in written if not p.startswith(("f/", "state/")) and p != "syncd.toml"]
    assert outside == []
    in_folder = sorted(p.name for p in folder.iterdir())
    assert in_folder == sorted([".syncd", *good])
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == good
    assert not (folder / ".syncd" / "trash").exists() or not any((folder / ".syncd" / "trash").iterdir())


# -- 12. faults on the way -----------------------------------------------------------------------


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(server_url) as p:
        yield p


def test_upload_faults_converge_without_duplicates(box: Sync, proxy: FaultProxy) -> None:
    box.configure(url=proxy.url)
    files = {f"doc{i}.txt": b"content %d" % i * (i + 1) for i in range(4)}
    for name, data in files.items():
        box.write(name, data)
    proxy.plan(
        "/uploadSimpleFile",
        unavailable(),
        error_after_forward(),  # the ambiguous one: the file exists, syncd hears 500
        Reset(),
        Reset(forward_first=True),  # stored, then the connection dies
        error_after_forward(503),
    )
    proxy.plan("/listChatFiles", unavailable())

    result = box.run()
    if result.code != 0:  # a retry may be left for the next run; it must then finish
        result = box.run()

    assert result.code == 0, result.stderr
    assert proxy.pending("/uploadSimpleFile") == 0  # every fault was met
    assert box.remote() == files  # no duplicates
    assert box.local() == files
    box.assert_converged(unchanged=4)


def test_an_edit_whose_delete_of_the_old_version_outlasts_its_retries_still_deletes_it(
    box: Sync, proxy: FaultProxy
) -> None:
    """The new version is up and recorded; deleting the old one fails past the upload's own
    retries (5). Its job, run again, finds the journal moved on (by itself) and plans the name
    again: that plan must still delete the version the upload replaced (it sits exactly at the
    journal's floor), not take it for history and leave a second copy for ever."""
    synced(box, {"doc.txt": b"v1"}, url=proxy.url)
    proxy.plan("/deleteFile", *[unavailable() for _ in range(5)])  # all of the upload's own tries
    box.write("doc.txt", b"v2, longer")
    first = box.run()  # the deletion may still be failing when the pass ends: then it says so
    assert first.code == 0 or first.folder(FOLDER).actions["doc.txt"]["status"] == "failed", first.stdout
    proxy.clear()
    box.sync()
    assert box.remote() == {"doc.txt": b"v2, longer"}  # one file: the replaced version is gone
    box.assert_converged(unchanged=1)


def test_an_edit_whose_delete_of_the_old_version_fails_ambiguously(box: Sync, proxy: FaultProxy) -> None:
    synced(box, {"doc.txt": b"v1"}, url=proxy.url)
    proxy.plan("/deleteFile", error_after_forward(), unavailable())
    box.write("doc.txt", b"v2, longer")

    report = box.sync()

    assert report.pairs == {("doc.txt", "upload")}
    assert proxy.pending("/deleteFile") == 0
    assert box.remote() == {"doc.txt": b"v2, longer"}
    box.assert_converged(unchanged=1)
