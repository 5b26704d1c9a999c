"""Local renames through the real `syncd reconcile` against the reference file service (SPEC,
"Renames"): BDD cannot rename, so a rename is upload-then-delete, never a deletion."""

from __future__ import annotations

import pytest

from tests.support.box import Sync, synced
from tests.support.syncd_cli import run_syncd

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("delete", [False, True])
def test_a_local_rename_moves_the_remote_file(box: Sync, delete: bool) -> None:
    synced(box, {"draft.txt": b"the report", "other.txt": b"stays"}, delete=delete)
    old_ids = box.remote_ids()
    (box.folder / "draft.txt").rename(box.folder / "final.txt")

    report = box.sync()

    assert report["actions"] == [
        {"name": "final.txt", "action": "upload", "status": "done", "error": None, "renamed_from": "draft.txt"}
    ]
    assert (report["uploaded"], report["deleted_remote"], report["failed"]) == (1, 0, 0)
    # Whatever `delete` says, the old name is gone: a rename is not a deletion.
    assert box.remote() == {"final.txt": b"the report", "other.txt": b"stays"}
    assert box.local() == box.remote()
    assert box.remote_ids()["other.txt"] == old_ids["other.txt"]
    box.assert_converged(unchanged=2)


def test_renaming_most_of_a_folder_is_not_a_mass_deletion(box: Sync) -> None:
    files = {f"f{i:02d}.txt": b"content %d" % i for i in range(40)}
    synced(box, files, delete=True, max_delete=50)
    for i in range(30):
        (box.folder / f"f{i:02d}.txt").rename(box.folder / f"renamed-{i:02d}.txt")

    result = box.run()

    assert result.code == 0, result.stderr
    assert result.doc is not None and result.doc["ok"] is True
    report = result.folder("f")
    assert report["warning"] is None
    assert (report["uploaded"], report["deleted_remote"], report["failed"]) == (30, 0, 0)
    assert {(a["renamed_from"], a["name"]) for a in report["actions"]} == {
        (f"f{i:02d}.txt", f"renamed-{i:02d}.txt") for i in range(30)
    }
    expected = {f"renamed-{i:02d}.txt": b"content %d" % i for i in range(30)}
    expected |= {f"f{i:02d}.txt": b"content %d" % i for i in range(30, 40)}
    assert box.local() == expected
    assert box.remote() == expected
    box.assert_converged(unchanged=40)


def test_text_output_names_both_paths(box: Sync) -> None:
    synced(box, {"a.txt": b"bytes"})
    (box.folder / "a.txt").rename(box.folder / "b.txt")
    result = run_syncd("reconcile", "-c", str(box.config))
    assert result.code == 0, result.stderr
    assert "f: rename a.txt \u2192 b.txt done" in result.stdout
    assert box.remote() == {"b.txt": b"bytes"}
