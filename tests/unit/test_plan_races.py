"""The planner's reading of a name's remote versions: races, duplicates, drop-ins, the floor.

Each scenario is what two machines sharing one chat see from their own journals, step by step,
as the listing would show it (SPEC, "Concurrent writers", "Remote duplicates", "Drop-in").
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from syncd.core.model import FLOOR_NONE, ActionKind, BaseEntry, Floor, FolderPolicy, LocalFile, Mode
from syncd.core.paths import RelPath
from syncd.core.plan import plan
from syncd.core.versions import remote_changes
from syncd.remote.base import RemoteFile

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
TWO_WAY = FolderPolicy()


def sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def remote(file_id: int, data: str, seconds: int, name: str = "plan.txt") -> RemoteFile:
    return RemoteFile(name, str(file_id), len(data), sha(data), written_at=T0 + timedelta(seconds=seconds), seq=file_id)


def local(data: str, name: str = "plan.txt", spelling: str | None = None) -> LocalFile:
    return LocalFile(RelPath(name), len(data), 1, sha(data), spelling)


def uploaded(data: str, new: RemoteFile, replaced: RemoteFile | None) -> BaseEntry:
    """The journal row an upload of `data` as `new` leaves (replacing `replaced`)."""
    floor = Floor.of(replaced) if replaced else FLOOR_NONE
    return BaseEntry.synced(RelPath("plan.txt"), local(data), new, floor=floor)


BASE = remote(1, "A1", 0)


def test_the_machine_that_uploaded_first_sees_the_race() -> None:
    a2, b2 = remote(2, "A2", 10), remote(3, "B2", 11)
    journal = {"plan.txt": uploaded("A2", a2, BASE)}
    # m2 deleted the base version it replaced; m1's own upload is still listed beside m2's.
    result = plan({"plan.txt": local("A2")}, [a2, b2], journal, TWO_WAY)
    (action,) = result.actions
    assert action.kind is ActionKind.RACE
    assert action.remote == b2 and action.racing == (a2,)
    assert action.report_action == "conflict"


def test_the_machine_that_uploaded_second_sees_the_race() -> None:
    a2, b2 = remote(2, "A2", 10), remote(3, "B2", 11)
    journal = {"plan.txt": uploaded("B2", b2, BASE)}
    (action,) = plan({"plan.txt": local("B2")}, [a2, b2], journal, TWO_WAY).actions
    assert action.kind is ActionKind.RACE
    assert action.remote == b2 and action.racing == (a2,)


def test_a_new_name_created_on_two_machines_is_a_race() -> None:
    a, b = remote(2, "A", 10), remote(3, "B", 11)
    for mine, data in ((a, "A"), (b, "B")):
        journal = {"plan.txt": uploaded(data, mine, None)}
        (action,) = plan({"plan.txt": local(data)}, [a, b], journal, TWO_WAY).actions
        assert action.kind is ActionKind.RACE and action.racing == (a,)


def test_identical_edits_are_one_file_not_a_race() -> None:
    a2, b2 = remote(2, "same", 10), remote(3, "same", 11)
    # m1 recorded its own upload (2): it moves to the newest identical copy and deletes its own.
    (m1,) = plan({"plan.txt": local("same")}, [a2, b2], {"plan.txt": uploaded("same", a2, BASE)}, TWO_WAY).actions
    assert m1.kind is ActionKind.RECORD and m1.remote == b2 and m1.duplicates == ("2",)
    (m2,) = plan({"plan.txt": local("same")}, [a2, b2], {"plan.txt": uploaded("same", b2, BASE)}, TWO_WAY).actions
    assert m2.kind is ActionKind.RECORD and m2.duplicates == ("2",)


def test_versions_older_than_the_floor_are_history() -> None:
    old = remote(1, "old", -100)
    current = remote(2, "A1", 0)
    journal = {"plan.txt": BaseEntry.synced(RelPath("plan.txt"), local("A1"), current)}
    result = plan({"plan.txt": local("A1")}, [old, current], journal, TWO_WAY)
    assert result.actions == ()


def test_a_first_sync_reads_older_versions_as_history() -> None:
    old, current = remote(1, "old", -100), remote(2, "A1", 0)
    (action,) = plan({}, [old, current], {}, TWO_WAY).actions
    assert action.kind is ActionKind.DOWNLOAD and action.remote == current and not action.racing


def test_a_later_edit_from_the_other_machine_is_not_a_race_once_confirmed() -> None:
    a2 = remote(2, "A2", 10)
    journal = {"plan.txt": uploaded("A2", a2, BASE)}
    # The next listing shows our upload alone above its floor: confirmed, no work queued.
    result = plan({"plan.txt": local("A2")}, [a2], journal, TWO_WAY)
    assert result.actions == () and result.confirmed == (("plan.txt", a2),)
    confirmed = {"plan.txt": BaseEntry.synced(RelPath("plan.txt"), local("A2"), a2)}
    # m2 downloaded A2, edited, uploaded B3; listed before m2 deleted A2: an ordinary download.
    b3 = remote(3, "B3", 20)
    (action,) = plan({"plan.txt": local("A2")}, [a2, b3], confirmed, TWO_WAY).actions
    assert action.kind is ActionKind.DOWNLOAD and action.remote == b3


def test_late_landing_duplicate_is_removed_and_the_journal_follows() -> None:
    mine, late = remote(2, "A2", 10), remote(3, "A2", 12)
    journal = {"plan.txt": uploaded("A2", mine, BASE)}
    (action,) = plan({"plan.txt": local("A2")}, [mine, late], journal, TWO_WAY).actions
    assert action.kind is ActionKind.RECORD and action.remote == late and action.duplicates == ("2",)


def test_an_upload_removes_an_older_version_with_the_same_bytes() -> None:
    old, current = remote(1, "A0", -100), remote(2, "A1", 0)
    journal = {"plan.txt": BaseEntry.synced(RelPath("plan.txt"), local("A1"), current)}
    (action,) = plan({"plan.txt": local("A0")}, [old, current], journal, TWO_WAY).actions
    assert action.kind is ActionKind.UPLOAD and action.supersedes == "2" and action.duplicates == ("1",)


def test_drop_ins_never_supersede_an_earlier_delivery() -> None:
    first = remote(1, "first", 0, name="report.pdf")
    delivered = BaseEntry(RelPath("report.pdf"), None, None, None, "1", len("first"), sha("first"), first.written_at)
    journal = {"report.pdf": delivered}
    drop = {"report.pdf": local("second", name="report.pdf")}
    additive = FolderPolicy(mode=Mode.UPLOAD, additive=True)
    (action,) = plan(drop, [first], journal, additive).actions
    assert action.kind is ActionKind.UPLOAD and action.supersedes is None
    (edit,) = plan(drop, [first], journal, FolderPolicy(mode=Mode.UPLOAD)).actions
    assert edit.supersedes == "1"  # after_upload = keep: an edit replaces


def test_download_mode_never_removes_duplicates_or_races() -> None:
    a2, b2, dup = remote(2, "A2", 10), remote(3, "B2", 11), remote(4, "B2", 12)
    journal = {"plan.txt": uploaded("A2", a2, BASE)}
    (action,) = plan({"plan.txt": local("A2")}, [a2, b2, dup], journal, FolderPolicy(mode=Mode.DOWNLOAD)).actions
    assert action.kind is ActionKind.DOWNLOAD and not action.duplicates and not action.racing


def test_remote_spellings_are_one_name() -> None:
    nfd = remote(5, "x", 0, name="cafe\u0301.txt")
    (action,) = plan({}, [nfd], {}, TWO_WAY).actions
    assert action.name == "caf\u00e9.txt" and action.remote == nfd


def test_the_poller_sees_races_duplicates_and_unconfirmed_uploads() -> None:
    a2, b2 = remote(2, "A2", 10), remote(3, "B2", 11)
    journal = {"plan.txt": uploaded("B2", b2, BASE)}
    assert remote_changes([a2, b2], journal, TWO_WAY) == {"plan.txt"}  # a race, current version unchanged
    assert remote_changes([b2], journal, TWO_WAY) == {"plan.txt"}  # alone: to be confirmed
    settled = {"plan.txt": BaseEntry.synced(RelPath("plan.txt"), local("B2"), b2)}
    assert remote_changes([b2], settled, TWO_WAY) == set()
    assert remote_changes([b2, remote(4, "B2", 12)], settled, TWO_WAY) == {"plan.txt"}


def test_the_version_an_upload_replaced_is_deleted_by_a_later_plan_if_still_there() -> None:
    """The upload's own deletion of the version it replaced failed: that version sits exactly at
    the floor the upload left. Both sides agree, but the floor is not confirmed over it: the
    plan records the name again and deletes that version (`supersedes`)."""
    a2 = remote(2, "A2", 10)
    journal = {"plan.txt": uploaded("A2", a2, BASE)}
    result = plan({"plan.txt": local("A2")}, [BASE, a2], journal, TWO_WAY)
    (action,) = result.actions
    assert action.kind is ActionKind.RECORD and action.supersedes == BASE.version
    assert action.report_action is None and result.confirmed == ()
    # Once it is gone, the floor is confirmed as before.
    done = plan({"plan.txt": local("A2")}, [a2], journal, TWO_WAY)
    assert done.actions == () and [name for name, _ in done.confirmed] == ["plan.txt"]


def test_an_older_version_below_the_floor_stays_history() -> None:
    """Only the version at the floor is the one replaced; an older one is history, left alone."""
    older, a2 = remote(1, "A0", -10), remote(3, "A2", 10)
    base = remote(2, "A1", 0)
    journal = {"plan.txt": uploaded("A2", a2, base)}
    result = plan({"plan.txt": local("A2")}, [older, a2], journal, TWO_WAY)
    assert result.actions == () and [name for name, _ in result.confirmed] == ["plan.txt"]


def test_a_drop_in_never_deletes_the_previous_delivery_at_its_floor() -> None:
    """Upload mode with after_upload delete/move is additive: every delivery stays."""
    a2 = remote(2, "A2", 10)
    journal = {"plan.txt": uploaded("A2", a2, BASE)}
    dropin = FolderPolicy(mode=Mode.UPLOAD, additive=True)
    result = plan({"plan.txt": local("A2")}, [BASE, a2], journal, dropin)
    assert all(action.supersedes is None for action in result.actions)
