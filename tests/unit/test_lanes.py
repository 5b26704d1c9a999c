"""What a job may move over the network decides its lane (`sync/lanes.py`)."""

from __future__ import annotations

import pytest

from syncd.core.model import Action, ActionKind, LocalFile
from syncd.core.paths import RelPath
from syncd.remote.base import RemoteFile
from syncd.sync.lanes import LARGE, transfer_size

HERE = LocalFile(RelPath("a.bin"), 10, 0, "0" * 64)
THERE = RemoteFile("a.bin", "7", 3 * LARGE)


@pytest.mark.parametrize(
    ("action", "size"),
    [
        (Action(ActionKind.UPLOAD, "a.bin", local=HERE, remote=THERE), 10),  # the local file goes
        (Action(ActionKind.DOWNLOAD, "a.bin", local=HERE, remote=THERE), 3 * LARGE),
        (Action(ActionKind.CONFLICT, "a.bin", local=HERE, remote=THERE), 3 * LARGE),  # either may move
        (Action(ActionKind.COMPARE, "a.bin", local=HERE, remote=THERE), 3 * LARGE),
        (Action(ActionKind.RACE, "a.bin", local=HERE, racing=(THERE, RemoteFile("a.bin", "8", 5))), 3 * LARGE),
        (Action(ActionKind.RENAME, "a.bin", local=HERE), 10),  # sent as an upload where no move exists
        (Action(ActionKind.DELETE_REMOTE, "a.bin", remote=THERE), 0),
        (Action(ActionKind.DELETE_LOCAL, "a.bin", local=HERE), 0),
        (Action(ActionKind.RECORD, "a.bin", local=HERE, remote=THERE), 0),
        (Action(ActionKind.FAIL, "a.bin", remote=THERE, reason="no"), 0),
    ],
)
def test_transfer_size(action: Action, size: int) -> None:
    assert transfer_size(action) == size

