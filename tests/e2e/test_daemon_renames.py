"""The daemon pairs a rename whose two names settle at different moments: the old name is gone at
once, the new one is still being written (a copy, then a delete). Both halves must reach one
pass, or the old name would go as a deletion on its own (here: held back by `max_delete = 0`)
and the new one as an unrelated upload."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.e2e.test_daemon import SETTLE, Setup, remote
from tests.support.daemon import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup(tmp_path: Path, server_url: str) -> Iterator[Setup]:
    s = Setup(tmp_path, server_url)
    yield s
    s.cleanup()


def test_a_rename_whose_new_name_settles_later_is_one_rename(setup: Setup, sdk: BddFileClient) -> None:
    setup.write([{"name": "a", "delete": True, "max_delete": 0}])
    folder = setup.folder("a")
    d = setup.start()
    chunks = [os.urandom(4096) for _ in range(9)]
    data = b"".join(chunks)
    (folder / "old.bin").write_bytes(data)
    wait_for(lambda: remote(sdk).get("old.bin") == data, what="the file to go up")

    (folder / "old.bin").unlink()  # gone at once ...
    with open(folder / "new.bin", "wb") as f:  # ... while its new name is written for ~0.9 s
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(SETTLE / 3)  # a slow writer: never quiet for a whole settle period

    wait_for(lambda: remote(sdk) == {"new.bin": data}, what="the rename to reach the remote")
    assert d.find("max_delete") == [] and "max_delete" not in d.log_text()  # no deletion was counted
    assert len(d.transfers("new.bin", "rename")) == 1 and d.transfers("new.bin", "upload") == []
    assert d.stop() == 0
