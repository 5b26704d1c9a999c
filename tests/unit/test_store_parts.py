"""The store's part bookkeeping: which parts are missing, told without a list of every part."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.server.store import Store


@pytest.mark.parametrize(
    ("received", "count", "missing", "shown"),
    [
        ([], 5, 5, [1, 2, 3, 4, 5]),
        ([1, 2, 3], 3, 0, []),
        ([2, 4], 5, 3, [1, 3, 5]),
        ([1, 5], 5, 3, [2, 3, 4]),
        (list(range(1, 10_001, 2)), 10_000, 5000, list(range(2, 41, 2))),
        ([], 10_000, 10_000, list(range(1, 21))),
    ],
)
def test_missing_parts(tmp_path: Path, received: list[int], count: int, missing: int, shown: list[int]) -> None:
    store = Store(tmp_path)
    file_id = store.new_file(
        "u", filename="f", size=count, hashcode="", biz="chat", biz_params={"chat_id": "c"},
        status="uploading", part_size=1,
    )
    for number in received:
        assert store.record_part(file_id, number, 1)
    assert store.missing_parts(file_id, count) == (missing, shown)
    store.close()


def test_a_part_is_recorded_only_while_its_upload_is_in_progress(tmp_path: Path) -> None:
    store = Store(tmp_path)
    file_id = store.new_file(
        "u", filename="f", size=2, hashcode="", biz="chat", biz_params=None, status="uploading", part_size=1
    )
    assert store.record_part(file_id, 1, 1)
    assert store.start_part(file_id, 1)  # a re-send: part 1 counts as missing until it is whole
    assert store.missing_parts(file_id, 2) == (2, [1, 2])
    assert store.begin_merge(file_id)
    assert not store.record_part(file_id, 2, 1)
    assert not store.start_part(file_id, 2)
    store.end_merge(file_id)
    store.delete("u", file_id)
    assert not store.record_part(file_id, 2, 1)
    assert store.received_parts(file_id) == []
    store.close()
