"""Another writer on the same chat at the same moment, seen through `syncd reconcile`.

The published SDK plays the other machine: it writes a version of a name that was planned
from the same base as ours, so neither upload knew of the other (SPEC, "Concurrent writers"),
or it lands a second identical copy of a file (SPEC, "Remote duplicates").
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.integration.test_reconcile import Sync, conflicted_copy, synced

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def box(tmp_path: Path, server_url: str, sdk: BddFileClient) -> Sync:
    return Sync(tmp_path, server_url, sdk)


def test_a_write_that_raced_ours_becomes_a_conflicted_copy_named_by_its_upload_time(box: Sync) -> None:
    synced(box, {"plan.txt": b"A1"})
    box.write("plan.txt", b"A2")
    assert box.sync()["uploaded"] == 1
    [(ours, ours_at)] = [(f.id, f.upload_at) for f in box.remote_files()]
    # The other machine planned from A1 too: it uploads B2 and deletes A1 (already gone), not ours.
    box.put("plan.txt", b"B2")

    report = box.sync()

    assert report.pairs == {("plan.txt", "conflict")}
    stamp = ours_at.astimezone(UTC).strftime("%Y-%m-%d %H%M%S")
    copy = f"plan (conflicted copy {stamp}).txt"
    assert conflicted_copy("plan", ".txt").fullmatch(copy)
    assert box.local() == {"plan.txt": b"B2", copy: b"A2"}
    assert box.remote() == {"plan.txt": b"B2", copy: b"A2"}  # one remote copy of each
    assert ours not in {f.id for f in box.remote_files()}
    assert box.trash() == []  # nothing needed the trash: both versions are in plain sight
    box.assert_converged(unchanged=2)


def test_a_race_with_the_same_bytes_is_no_conflict(box: Sync) -> None:
    synced(box, {"plan.txt": b"A1"})
    box.write("plan.txt", b"same")
    box.sync()
    box.put("plan.txt", b"same")  # the other machine made the same edit

    report = box.sync()

    assert report["conflicts"] == 0 and report["failed"] == 0
    assert box.local() == {"plan.txt": b"same"}
    assert box.remote() == {"plan.txt": b"same"}
    box.assert_converged(unchanged=1)


def test_a_late_identical_copy_is_removed_and_the_journal_follows_it(box: Sync) -> None:
    synced(box, {"a.txt": b"one", "b.txt": b"two"})
    [first] = box.remote_ids()["a.txt"]
    late = box.put("a.txt", b"one")  # e.g. a retried request a proxy delivered late

    report = box.sync()

    assert report["actions"] == []  # not a transfer, not a conflict
    assert box.remote_ids()["a.txt"] == [late]  # the newest identical copy is the one kept
    assert first != late
    assert box.local() == {"a.txt": b"one", "b.txt": b"two"}
    box.assert_converged(unchanged=2)


def test_older_versions_from_before_the_last_sync_stay_history(box: Sync) -> None:
    box.put("old.txt", b"v1")
    box.put("old.txt", b"v2")  # a client that never deletes what it replaces
    report = box.sync()
    assert report.pairs == {("old.txt", "download")}
    assert box.local() == {"old.txt": b"v2"}
    assert len(box.remote_ids()["old.txt"]) == 2  # left alone: not ours, not a race
    box.assert_converged(unchanged=1)
