"""File modes (SPEC, "File modes and times"): a downloaded new file gets the usual mode, 0666
minus the umask of the syncd process; a file a download replaces keeps the mode its owner
gave it.

The real `syncd reconcile` in a subprocess started with a known umask, the reference service
on loopback, the published SDK as the other client.
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.support.box import Sync, synced

pytestmark = pytest.mark.timeout(120)


def with_umask(mask: int) -> dict[str, object]:
    """Subprocess arguments that start syncd with umask `mask`."""
    return {"preexec_fn": lambda: os.umask(mask)}


def mode_of(box: Sync, name: str) -> str:
    return oct(stat.S_IMODE((box.folder / name).stat().st_mode))


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o002, 0o664)], ids=["umask-022", "umask-002"])
def test_a_downloaded_new_file_gets_0666_minus_the_umask(box: Sync, umask: int, expected: int) -> None:
    box.put("new.txt", b"made elsewhere")

    report = box.sync(**with_umask(umask))

    assert report.pairs == {("new.txt", "download")}
    assert (box.folder / "new.txt").read_bytes() == b"made elsewhere"
    assert mode_of(box, "new.txt") == oct(expected)


@pytest.mark.parametrize("mode", [0o755, 0o640], ids=["0755", "0640"])
def test_a_file_replaced_by_a_remote_edit_keeps_its_mode(box: Sync, mode: int) -> None:
    synced(box, {"tool.sh": b"#!/bin/sh\necho v1\n"})
    (box.folder / "tool.sh").chmod(mode)  # the owner's choice; neither 0600 nor 0666 & ~umask
    box.edit_remote("tool.sh", b"#!/bin/sh\necho v2\n")

    report = box.sync(**with_umask(0o022))

    assert report.pairs == {("tool.sh", "download")}
    assert (box.folder / "tool.sh").read_bytes() == b"#!/bin/sh\necho v2\n"
    assert mode_of(box, "tool.sh") == oct(mode)
    box.assert_converged(unchanged=1)
    assert mode_of(box, "tool.sh") == oct(mode)
