"""The scanner keys files by NFC name and keeps each file's own spelling (SPEC, "Names")."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from syncd.core.model import BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.local.scan import scan_folder
from syncd.remote.base import RemoteFile
from syncd.sync.outcome import to_base, to_row

NFC = RelPath("caf\u00e9.txt")
NFD = "cafe\u0301.txt"


def test_an_nfd_file_is_keyed_nfc_and_keeps_its_spelling(tmp_path: Path) -> None:
    (tmp_path / NFD).write_bytes(b"x")
    listing = scan_folder(tmp_path, (), {})
    (found,) = listing.files.values()
    assert (found.name, found.spelling, found.on_disk) == (NFC, NFD, NFD)
    assert not listing.shadowed


def test_two_spellings_of_one_name_both_stay_and_the_second_is_reported(tmp_path: Path) -> None:
    (tmp_path / NFD).write_bytes(b"decomposed")
    (tmp_path / NFC).write_bytes(b"composed")
    listing = scan_folder(tmp_path, (), {})
    assert listing.files[NFC].on_disk == NFC  # without a journal row the NFC spelling syncs
    assert list(listing.shadowed) == [NFD] and "another Unicode spelling" in listing.shadowed[NFD]
    # Once the journal knows the NFD one, that one keeps syncing whatever order the disk lists.
    known = {NFC: BaseEntry.synced(NFC, LocalFile(NFC, 10, 1, "0" * 64, spelling=NFD), None)}
    listing = scan_folder(tmp_path, (), known)
    assert listing.files[NFC].on_disk == NFD and list(listing.shadowed) == [NFC]
    assert sorted(os.listdir(tmp_path)) == sorted([NFC, NFD])  # nothing merged or renamed


def test_the_journal_round_trips_spellings_and_floor() -> None:
    remote = RemoteFile(NFD, "7", 1, "a" * 64, written_at=datetime(2026, 1, 1, tzinfo=UTC), seq=7)
    entry = BaseEntry.synced(NFC, LocalFile(NFC, 1, 2, "a" * 64, spelling=NFD), remote,
                             floor=Floor(datetime(2025, 1, 1, tzinfo=UTC), 3))
    assert entry.local_name == NFD and entry.remote_name == NFD
    assert entry.remote_path == NFD and entry.recorded_remote() == remote
    assert to_base(to_row(entry)) == entry
