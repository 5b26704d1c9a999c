"""Local renames (SPEC, "Renames"): a file gone from one path while the same content appears at
another, in one pass, is one RENAME on the new name, never a deletion."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from syncd.core.model import Action, ActionKind, BaseEntry, FolderPolicy, LocalFile, Mode, Plan
from syncd.core.paths import RelPath
from syncd.core.plan import plan
from syncd.remote.base import RemoteFile
from syncd.state import jobcodec

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def L(name: str, content: str, mtime_ns: int = 1_000) -> LocalFile:
    return LocalFile(name, len(content.encode()), mtime_ns, sha(content))


def R(file_id: int, name: str, content: str, hours: float = 0) -> RemoteFile:
    return RemoteFile(
        name, str(file_id), len(content.encode()), sha(content), written_at=T0 + timedelta(hours=hours), seq=file_id
    )


def synced(name: str, content: str, file_id: int, *, dropped: bool = False) -> tuple[BaseEntry, RemoteFile]:
    remote = R(file_id, name, content)
    return BaseEntry.synced(RelPath(name), L(name, content), remote, dropped=dropped), remote


#: How the remote shows its files: listed with a sha256, listed without one, or not listed at
#: all (no LIST: the journal is the listing, given as None).
LISTINGS = ["sha256", "no sha256", "no listing"]


def shown(listing: str, remote: list[RemoteFile]) -> list[RemoteFile] | None:
    if listing == "no listing":
        return None
    if listing == "no sha256":
        return [dataclasses.replace(f, sha256=None) for f in remote]
    return remote


def run(
    local: list[LocalFile],
    remote: list[RemoteFile] | None,
    base: list[BaseEntry],
    *,
    mode: Mode = Mode.TWO_WAY,
    delete: bool = False,
    max_delete: int = 100,
) -> Plan:
    policy = FolderPolicy(mode, delete, max_delete)
    return plan({f.name: f for f in local}, remote, {e.name: e for e in base}, policy)


def renames(result: Plan) -> list[tuple[str, str]]:
    return [(a.renamed_from.name, a.name) for a in result.actions if a.renamed_from is not None]


@pytest.mark.parametrize("listing", LISTINGS)
@pytest.mark.parametrize("delete", [False, True])
@pytest.mark.parametrize("mode", [Mode.TWO_WAY, Mode.UPLOAD])
def test_a_local_rename_is_one_rename_action(mode: Mode, delete: bool, listing: str) -> None:
    entry, remote = synced("old.txt", "hello", 7)
    keep, keep_remote = synced("keep.txt", "other", 8)
    if listing == "no sha256":  # what the journal recorded from such a listing
        entry, keep = (dataclasses.replace(e, remote_sha256=None) for e in (entry, keep))
    result = run([L("new.txt", "hello", 5_000), L("keep.txt", "other")], shown(listing, [remote, keep_remote]),
                 [entry, keep], mode=mode, delete=delete)
    [action] = result.actions
    assert action.kind is ActionKind.RENAME and action.name == "new.txt"
    assert action.local == L("new.txt", "hello", 5_000)
    assert action.renamed_from == entry and action.base is None and action.remote is None
    assert action.report_action == "upload" and not action.is_deletion
    assert result.warning is None and result.skipped_deletions == 0
    assert result.unchanged == 1  # keep.txt; the rename is reported, its old name is not counted


def test_identical_contents_pair_by_name_order() -> None:
    a, ra = synced("a.txt", "same", 1)
    b, rb = synced("b.txt", "same", 2)
    result = run([L("z.txt", "same"), L("y.txt", "same")], [ra, rb], [a, b], delete=True)
    assert renames(result) == [("a.txt", "y.txt"), ("b.txt", "z.txt")]
    # The same answer whatever order the inputs come in.
    again = run([L("y.txt", "same"), L("z.txt", "same")], [rb, ra], [b, a], delete=True)
    assert renames(again) == renames(result)


def test_more_new_names_than_old_ones_leaves_the_rest_as_uploads() -> None:
    a, ra = synced("a.txt", "same", 1)
    result = run([L("x.txt", "same"), L("y.txt", "same")], [ra], [a], delete=True)
    assert [(str(x.kind), x.name) for x in result.actions] == [("rename", "x.txt"), ("upload", "y.txt")]


def test_a_changed_remote_side_is_not_a_rename() -> None:
    entry, _ = synced("old.txt", "hello", 7)
    edited = R(9, "old.txt", "edited there", hours=1)
    result = run([L("new.txt", "hello")], [edited], [entry], delete=True)
    assert renames(result) == []
    assert {(str(x.kind), x.name) for x in result.actions} == {("upload", "new.txt"), ("download", "old.txt")}


def test_a_remote_file_under_the_new_name_is_not_a_rename() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    there = R(9, "new.txt", "something else", hours=1)
    result = run([L("new.txt", "hello")], [remote, there], [entry], delete=True)
    assert renames(result) == []


def test_different_content_is_not_a_rename() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    result = run([L("new.txt", "hellO")], [remote], [entry], delete=True)
    assert renames(result) == []
    assert {(str(x.kind), x.name) for x in result.actions} == {("upload", "new.txt"), ("delete_remote", "old.txt")}


@pytest.mark.parametrize("listing", LISTINGS)
def test_a_rename_with_delete_false_still_deletes_the_old_remote(listing: str) -> None:
    entry, remote = synced("old.txt", "hello", 7)
    result = run([L("new.txt", "hello")], shown(listing, [remote]), [entry], delete=False)
    [action] = result.actions
    assert action.kind is ActionKind.RENAME and action.renamed_from is not None
    assert action.renamed_from.remote_version == "7"  # the executor deletes it once new.txt is up


def test_older_versions_of_the_old_name_go_with_it() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    history = R(3, "old.txt", "ancient", hours=-5)
    result = run([L("new.txt", "hello")], [history, remote], [entry], delete=True)
    [action] = result.actions
    assert action.kind is ActionKind.RENAME and action.older == ("3",)


@pytest.mark.parametrize("listing", LISTINGS)
def test_renaming_a_whole_folder_does_not_trip_max_delete(listing: str) -> None:
    pairs = [synced(f"dir/f{i}.txt", f"content {i}", i + 1) for i in range(10)]
    local = [L(f"renamed/f{i}.txt", f"content {i}") for i in range(10)]
    result = run(local, shown(listing, [r for _, r in pairs]), [e for e, _ in pairs], delete=True, max_delete=0)
    assert result.warning is None and result.skipped_deletions == 0
    assert renames(result) == [(f"dir/f{i}.txt", f"renamed/f{i}.txt") for i in range(10)]


def test_renames_and_deletions_together_count_only_the_deletions() -> None:
    pairs = [synced(f"f{i}.txt", f"content {i}", i + 1) for i in range(4)]
    local = [L("g0.txt", "content 0"), L("g1.txt", "content 1"), L("f3.txt", "content 3")]
    # f0, f1 renamed; f2 deleted: 1 of 4 tracked = 25% <= 25%.
    result = run(local, [r for _, r in pairs], [e for e, _ in pairs], delete=True, max_delete=25)
    assert result.warning is None
    assert sorted((str(a.kind), a.name) for a in result.actions) == [
        ("delete_remote", "f2.txt"), ("rename", "g0.txt"), ("rename", "g1.txt"),
    ]


def test_download_mode_does_not_pair() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    result = run([L("new.txt", "hello")], [remote], [entry], mode=Mode.DOWNLOAD, delete=True)
    assert renames(result) == []
    assert all(a.kind is not ActionKind.RENAME for a in result.actions)


def test_a_dropped_file_is_never_paired() -> None:
    # after_upload removed it: its disappearance is a delivery done, not half of a rename.
    entry, remote = synced("old.txt", "hello", 7, dropped=True)
    result = run([L("new.txt", "hello")], [remote], [entry], mode=Mode.UPLOAD, delete=True)
    assert renames(result) == []
    assert [(str(a.kind), a.name) for a in result.actions] == [("upload", "new.txt"), ("record", "old.txt")]


def test_only_pairs_names_it_was_asked_about() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    local = {"new.txt": L("new.txt", "hello")}
    both = plan(local, [remote], {"old.txt": entry}, FolderPolicy(delete=True), only={"old.txt", "new.txt"})
    assert renames(both) == [("old.txt", "new.txt")]
    one = plan(local, [remote], {"old.txt": entry}, FolderPolicy(delete=True), only={"new.txt"})
    assert [(str(a.kind), a.name) for a in one.actions] == [("upload", "new.txt")]


def test_a_rename_round_trips_through_the_queue_payload() -> None:
    entry, remote = synced("old.txt", "hello", 7)
    history = R(3, "old.txt", "ancient", hours=-5)
    [action] = run([L("new.txt", "hello")], [history, remote], [entry]).actions
    assert action.kind is ActionKind.RENAME
    assert jobcodec.loads(jobcodec.dumps(action)) == action


def test_a_version_2_payload_still_reads() -> None:
    # As a release writing version 2 (before RENAME: no "renamed_from") queued it.
    text = (
        '{"v": 2, "kind": "upload", "name": "a.txt", "local": {"name": "a.txt", "size": 1, "mtime_ns": 1000,'
        ' "sha256": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", "spelling": null},'
        ' "remote": null, "base": null, "supersedes": null, "older_ids": [], "winner": null, "reason": null,'
        ' "racing": [], "duplicates": []}'
    )
    assert '"v": 2' in text and "renamed_from" not in text
    assert jobcodec.loads(text) == Action(ActionKind.UPLOAD, "a.txt", L("a.txt", "x"))


def test_a_version_3_rename_payload_still_reads() -> None:
    # As version 3 queued the rename of test_a_rename_round_trips_through_the_queue_payload.
    text = (
        '{"v": 3, "kind": "rename", "name": "new.txt", "local": {"name": "new.txt", "size": 5, "mtime_ns": 1000,'
        ' "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "spelling": null},'
        ' "remote": null, "base": null, "supersedes": null, "older_ids": [3], "winner": null, "reason": null,'
        ' "racing": [], "duplicates": [], "renamed_from": {"name": "old.txt", "local_size": 5,'
        ' "local_mtime_ns": 1000, "local_sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",'
        ' "remote_id": 7, "remote_size": 5,'
        ' "remote_hashcode": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",'
        ' "remote_upload_at": "2025-01-01T00:00:00+00:00", "dropped": false, "local_name": null,'
        ' "remote_name": null, "remote_floor": null}}'
    )
    entry, remote = synced("old.txt", "hello", 7)
    history = R(3, "old.txt", "ancient", hours=-5)
    [action] = run([L("new.txt", "hello")], [history, remote], [entry]).actions
    assert jobcodec.loads(text) == action
