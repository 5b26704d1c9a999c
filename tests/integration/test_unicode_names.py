"""Names spelled in Unicode NFD (SPEC, "Names"): a file's identity is its name in NFC, and each
side keeps its own spelling. macOS hands out names like `cafe\\u0301.txt` all the time: such a
file must sync like any other, and syncd reads, replaces, trashes and renames it under the
spelling it has on disk, never renaming it. Two local names equal in NFC are both kept; one
syncs, the other is reported, never merged or overwritten.

The real `syncd reconcile` in a subprocess, the reference service on loopback, the published
SDK as the other client (which may spell a name either way).
"""

from __future__ import annotations

import json
import os
import unicodedata

import pytest
from bdd_file.models import FileInfo

from tests.support.box import FOLDER, Sync
from tests.support.syncd_cli import FolderResult

pytestmark = pytest.mark.timeout(120)

NFC = unicodedata.normalize("NFC", "caf\u00e9.txt")
NFD = unicodedata.normalize("NFD", NFC)  # "cafe\u0301.txt", what `printf 'cafe\xcc\x81'` makes
assert NFC != NFD and NFC.encode() != NFD.encode()


def on_disk(box: Sync) -> list[str]:
    """The folder's entries as spelled on disk (the marker left out), escaped so that a failing
    comparison shows the spelling: NFD is 'cafe\\u0301.txt', NFC 'caf\\xe9.txt'."""
    return sorted(ascii(n) for n in os.listdir(box.folder) if n != ".syncd")


def spelled(*names: str) -> list[str]:
    """What `on_disk` shows for these names."""
    return sorted(ascii(n) for n in names)


def actions(report: FolderResult) -> set[tuple[str, str]]:
    """(name as spelled in the report, escaped; action)."""
    return {(ascii(name), action) for name, action in report.pairs}


def remote_versions(box: Sync, name: str) -> list[FileInfo]:
    """The chat's ok files whose name equals `name` in NFC, however spelled."""
    key = unicodedata.normalize("NFC", name)
    return [f for f in box.remote_files() if unicodedata.normalize("NFC", f.filename) == key and f.status == "ok"]


def the_remote(box: Sync, name: str) -> tuple[FileInfo, bytes]:
    """The one remote file equal to `name` in NFC, and its bytes."""
    found = remote_versions(box, name)
    assert len(found) == 1, f"{len(found)} remote files equal to {name!r} in NFC: {[ascii(f.filename) for f in found]}"
    return found[0], box.fetch(found[0].id)


def replace_remote(box: Sync, spelling: str, data: bytes) -> None:
    """Another client edits the file: uploads a new version under `spelling`, then deletes every
    older one equal to it in NFC (whatever their spelling)."""
    old = remote_versions(box, spelling)
    box.put(spelling, data)
    for info in old:
        box.sdk.delete(file_id=info.id)


def synced_nfd(box: Sync, data: bytes, **options: object) -> None:
    """An NFD-named file created locally and synced by a first pass."""
    box.configure(**options)
    box.write(NFD, data)
    report = box.sync()
    assert [(unicodedata.normalize("NFC", a["name"]), a["action"], a["status"]) for a in report["actions"]] == [
        (NFC, "upload", "done")
    ]
    assert the_remote(box, NFC)[1] == data
    assert on_disk(box) == spelled(NFD)


def logged(stderr: str, name: str) -> bool:
    """Whether a JSON log line names `name`, spelled exactly so (in any of its values)."""
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and any(isinstance(v, str) and name in v for v in event.values()):
            return True
    return False


# -- a file created locally in NFD ----------------------------------------------------------------


def test_a_local_nfd_name_uploads_and_keeps_its_spelling(box: Sync) -> None:
    box.write(NFD, b"first")

    report = box.sync()  # today: "kept changing while being synced", on every pass

    assert the_remote(box, NFC)[1] == b"first"
    assert on_disk(box) == spelled(NFD)  # never renamed
    assert actions(report) == {(ascii(NFD), "upload")}  # reported as spelled on the local disk
    box.assert_converged(unchanged=1)

    box.write(NFD, b"second, edited here")
    report = box.sync()
    assert the_remote(box, NFC)[1] == b"second, edited here"  # the edit replaced the old version
    assert on_disk(box) == spelled(NFD)
    assert actions(report) == {(ascii(NFD), "upload")}
    box.assert_converged(unchanged=1)
    assert on_disk(box) == spelled(NFD)


@pytest.mark.parametrize("spelling", ["nfc", "nfd"])
def test_a_remote_edit_lands_in_the_nfd_spelled_file(box: Sync, spelling: str) -> None:
    synced_nfd(box, b"v1")
    replace_remote(box, NFC if spelling == "nfc" else NFD, b"v2 from the other client")

    report = box.sync()

    assert on_disk(box) == spelled(NFD)  # written into the NFD-spelled file: no second file
    assert (box.folder / NFD).read_bytes() == b"v2 from the other client"
    assert [data for _, data in box.trash()] == [b"v1"]  # the replaced content is kept
    assert actions(report) == {(ascii(NFD), "download")}
    box.assert_converged(unchanged=1)
    assert on_disk(box) == spelled(NFD)


def test_deleting_the_nfd_file_locally_deletes_it_remotely(box: Sync) -> None:
    synced_nfd(box, b"soon gone", delete=True, max_delete=100)
    (box.folder / NFD).unlink()

    report = box.sync()

    assert remote_versions(box, NFC) == []
    assert on_disk(box) == []
    assert actions(report) == {(ascii(NFD), "delete_remote")}
    box.assert_converged(unchanged=0)


def test_a_remote_deletion_moves_the_nfd_file_to_the_trash(box: Sync) -> None:
    synced_nfd(box, b"deleted elsewhere", delete=True, max_delete=100)
    box.write("stays.txt", b"a file the chat keeps")  # (a chat emptied altogether pauses instead)
    box.sync()
    for info in remote_versions(box, NFC):
        box.sdk.delete(file_id=info.id)

    report = box.sync()

    assert on_disk(box) == spelled("stays.txt")
    trash = [(ascii(name), data) for name, data in box.trash()]
    assert trash == [(ascii(NFD), b"deleted elsewhere")]  # trashed under its own spelling
    assert actions(report) == {(ascii(NFD), "delete_local")}
    box.assert_converged(unchanged=1)


@pytest.mark.parametrize(
    ("old", "new"), [(NFD, "renamed.txt"), ("plain.txt", NFD)], ids=["nfd-to-plain", "plain-to-nfd"]
)
def test_renaming_a_file_to_or_from_an_nfd_name(box: Sync, old: str, new: str) -> None:
    box.configure(delete=True, max_delete=100)
    box.write(old, b"the same content, renamed")
    box.sync()
    assert the_remote(box, old)[1] == b"the same content, renamed"
    os.rename(box.folder / old, box.folder / new)

    box.sync()

    assert on_disk(box) == spelled(new)
    assert remote_versions(box, old) == []  # the old name is gone from the chat ...
    assert the_remote(box, new)[1] == b"the same content, renamed"  # ... the new one is there
    box.assert_converged(unchanged=1)
    assert on_disk(box) == spelled(new)


# -- a file named in NFD on the remote ------------------------------------------------------------


def test_a_remote_nfd_name_downloads_under_its_spelling_and_converges(box: Sync) -> None:
    box.put(NFD, b"from a mac")

    report = box.sync()

    assert on_disk(box) == spelled(NFD)  # written under the remote's spelling
    assert (box.folder / NFD).read_bytes() == b"from a mac"
    assert actions(report) == {(ascii(NFD), "download")}
    box.assert_converged(unchanged=1)

    box.write(NFD, b"edited here")
    report = box.sync()
    assert the_remote(box, NFC)[1] == b"edited here"  # one remote file for the name, edited
    assert on_disk(box) == spelled(NFD)
    assert actions(report) == {(ascii(NFD), "upload")}
    box.assert_converged(unchanged=1)


# -- two local spellings of one name --------------------------------------------------------------


def test_two_local_names_equal_in_nfc_are_both_kept_and_one_is_reported(box: Sync) -> None:
    box.write(NFC, b"composed spelling")
    box.write(NFD, b"decomposed spelling")
    contents = {NFC: b"composed spelling", NFD: b"decomposed spelling"}

    result = box.run()

    assert result.code in (0, 1), result.stderr
    assert result.doc is not None, result.stderr
    info, data = the_remote(box, NFC)  # one of them synced ...
    assert data in contents.values()
    synced_one = next(n for n, d in contents.items() if d == data)
    other = NFD if synced_one == NFC else NFC
    failed = [a for a in result.folder(FOLDER)["actions"] if a["name"] == other and a["status"] == "failed"]
    # ... and the other is reported (a failed action with its reason, or a log line naming it)
    assert (failed and failed[0]["error"]) or logged(result.stderr, other), (
        f"{ascii(other)} is neither reported as failed nor named in the log: {result.stdout}\n{result.stderr}"
    )
    assert on_disk(box) == spelled(*contents)  # both kept, neither merged nor overwritten
    assert {n: (box.folder / n).read_bytes() for n in contents} == contents

    again = box.run()  # a second pass: still nothing merged, overwritten or uploaded again
    assert again.code in (0, 1), again.stderr
    assert not [a for a in again.folder(FOLDER)["actions"] if a["status"] == "done"], again.stdout
    assert remote_versions(box, NFC) == [info]
    assert {n: (box.folder / n).read_bytes() for n in contents} == contents
