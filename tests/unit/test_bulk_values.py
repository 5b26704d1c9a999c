"""What a large folder's passes and polls take in short cuts give what the long way gives:

* `suspects` (the poller's look at the recorded versions alone) keeps every name
  `remote_changes` finds changed, and `remote_changes` over just those names finds the same;
* `bases` (a folder's journal values straight to the planner's base) is `to_base` of each row;
* `maker` builds the very value the class's own `__init__` builds;
* `collection_paused` pauses the collector, nested, and leaves it as it found it.
"""

from __future__ import annotations

import gc
import pickle
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.frozen import maker
from syncd.core.model import BaseEntry, ConflictPolicy, Floor, FolderPolicy, LocalFile, Mode
from syncd.core.names import normalize
from syncd.core.paths import RelPath
from syncd.core.versions import remote_changes, suspects
from syncd.remote.base import RemoteFile
from syncd.state.journal import JournalRow
from syncd.sync.gcpause import collection_paused
from syncd.sync.outcome import bases, to_base

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["a", "b", "c", "d", "e\u0301", "\u00e9"]  # the last two: one name in two spellings
POLICY = FolderPolicy(mode=Mode.TWO_WAY, delete=True, max_delete=100, conflict=ConflictPolicy.KEEP_BOTH)

listed = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(1, 6), st.integers(0, 2)), max_size=8
)
journal = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "\u00e9"]),
    st.tuples(st.one_of(st.none(), st.integers(1, 6)), st.booleans()),
    max_size=5,
)


def remote_files(spec: list[tuple[str, int, int]]) -> list[RemoteFile]:
    return [
        RemoteFile(name, str(version), 3, f"{content:064x}", written_at=T0 + timedelta(seconds=version), seq=version)
        for name, version, content in spec
    ]


def base_of(spec: dict[str, tuple[int | None, bool]]) -> dict[str, BaseEntry]:
    found = {}
    for name, (version, floor) in spec.items():
        found[name] = BaseEntry(
            RelPath(name), 3, 1, "0" * 64, None if version is None else str(version), 3, f"{0:064x}",
            None if version is None else T0 + timedelta(seconds=version),
            remote_floor=Floor(T0 + timedelta(seconds=2), 2) if floor and version is not None else None,
        )
    return found


@settings(max_examples=300, deadline=None)
@given(listed, journal)
def test_suspects_hold_every_change_and_judge_them_alike(spec: list[tuple[str, int, int]],
                                                         recorded: dict[str, tuple[int | None, bool]]) -> None:
    remote, base = remote_files(spec), base_of(recorded)
    versions = {n: (b.remote_version, b.remote_floor is not None) for n, b in base.items()}
    full = remote_changes(remote, base, POLICY)
    maybe = suspects(remote, versions)
    assert full <= maybe
    narrow_remote = [f for f in remote if normalize(f.path) in maybe]
    narrow_base = {n: b for n, b in base.items() if n in maybe}
    assert remote_changes(narrow_remote, narrow_base, POLICY) & maybe == full


def test_bases_is_to_base_of_every_row() -> None:
    rows = [
        JournalRow("a", 1, 2, "s" * 64, "7", 1, "s" * 64, T0.isoformat(), False, None, None, None, None),
        JournalRow("b/c", None, None, None, "8", 4, None, None, True, "b/c", "B/c", T0.isoformat(), 8),
        JournalRow("d", 5, 6, "t" * 64, None, None, None, None, False, "d", None, None, None),
    ]
    values = [
        (r.name, r.local_size, r.local_mtime_ns, r.local_sha256, r.remote_version, r.remote_size, r.remote_sha256,
         r.remote_written_at, int(r.dropped), r.local_name, r.remote_name, r.remote_floor_at, r.remote_floor_seq)
        for r in rows
    ]
    got = bases(values)
    assert got == {r.name: to_base(r) for r in rows}
    assert all(type(entry.name) is RelPath for entry in got.values())


def test_maker_builds_the_same_value() -> None:
    make = maker(LocalFile)
    fast, slow = make(RelPath("x"), 3, 4, "h", None), LocalFile(RelPath("x"), 3, 4, "h")
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow


def test_collection_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
