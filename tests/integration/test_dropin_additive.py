"""Drop-in folders deliver, they do not edit (SPEC, "Drop-in removals are not deletions, and
drop-ins are additive"): with `after_upload` = `delete` or `move:DIR`, dropping a name again is
a new delivery and never replaces or deletes an earlier one on the remote. With `keep`, the
file stays in the folder and changing it is an edit like in any folder: the new version
replaces the old one.

The real `syncd reconcile` in a subprocess, the reference service on loopback, the chat as
the published SDK lists it.
"""

from __future__ import annotations

import pytest

from tests.support.box import COUNTS, Sync

pytestmark = pytest.mark.timeout(120)

FIRST = b"%PDF-1.7 the first delivery"
SECOND = b"%PDF-1.7 the second delivery, a different report"


def deliveries(box: Sync, name: str) -> list[bytes]:
    """The bytes of every ok remote file called `name`, sorted."""
    return sorted(box.fetch(f.id) for f in box.remote_files() if f.filename == name and f.status == "ok")


def set_aside(box: Sync, after_upload: str) -> list[bytes]:
    """What `after_upload` left in the folder or its move-aside folder, sorted."""
    if after_upload == "delete":
        return sorted(data for data in box.local().values())
    aside = box.folder / after_upload.removeprefix("move:")
    return sorted(p.read_bytes() for p in aside.rglob("*") if p.is_file())


@pytest.mark.parametrize("after_upload", ["delete", "move:sent"])
def test_dropping_a_name_again_is_a_second_delivery(box: Sync, after_upload: str) -> None:
    box.configure(mode="upload", after_upload=after_upload, delete=True)

    box.write("report.pdf", FIRST)
    report = box.sync()
    assert report.pairs == {("report.pdf", "upload")}
    assert "report.pdf" not in box.local()  # deleted or moved aside once uploaded
    assert deliveries(box, "report.pdf") == [FIRST]

    box.write("report.pdf", SECOND)  # the same name dropped again, other content
    report = box.sync()
    assert report.pairs == {("report.pdf", "upload")}
    assert report["deleted_remote"] == 0
    assert "report.pdf" not in box.local()
    # Both deliveries are on the remote: the second did not supersede the first.
    assert deliveries(box, "report.pdf") == sorted([FIRST, SECOND])

    ids = box.remote_ids()
    third = box.sync()  # a further pass plans nothing and deletes nothing
    assert third["actions"] == []
    assert {k: third[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert box.remote_ids() == ids
    if after_upload == "delete":
        assert box.local() == {}
    else:
        assert set_aside(box, after_upload) == sorted([FIRST, SECOND])  # both kept aside locally


def test_with_keep_changing_the_file_is_an_edit_that_replaces_it(box: Sync) -> None:
    # Passes before the change too: it guards that additive drop-ins stay limited to delete/move.
    box.configure(mode="upload", after_upload="keep", delete=True)
    box.write("report.pdf", FIRST)
    assert box.sync().pairs == {("report.pdf", "upload")}

    box.write("report.pdf", SECOND)
    report = box.sync()

    assert report.pairs == {("report.pdf", "upload")}
    assert box.local() == {"report.pdf": SECOND}
    assert box.remote() == {"report.pdf": SECOND}  # one copy: the edit replaced the old version
    box.assert_converged(unchanged=1)


@pytest.mark.parametrize("after_upload", ["delete", "move:sent"])
def test_dropping_the_same_bytes_again_is_done_without_a_second_copy(box: Sync, after_upload: str) -> None:
    """The remote already holds that delivery (identical bytes are one file): nothing is sent
    again, and the drop is still taken out of the outbox as any delivery is."""
    box.configure(mode="upload", after_upload=after_upload, delete=True)
    box.write("report.pdf", FIRST)
    box.sync()
    ids = box.remote_ids()

    box.write("report.pdf", FIRST)
    report = box.sync()

    assert report["failed"] == 0 and report["deleted_remote"] == 0
    assert "report.pdf" not in box.local()  # not left lying in the outbox
    assert box.remote_ids() == ids  # one copy, the first
    if after_upload != "delete":
        assert set_aside(box, after_upload) == [FIRST, FIRST]
    third = box.sync()
    assert third["actions"] == [] and box.remote_ids() == ids
