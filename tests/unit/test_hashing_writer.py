"""HashingWriter: the sha256 of what a download left in its temp file, without reading it back."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, cast

from syncd.sync.hashing import HashingWriter


def test_front_to_back_writes_hash_the_file(tmp_path: Path) -> None:
    with open(tmp_path / "t", "w+b") as f:
        out = HashingWriter(f)
        for chunk in (b"abc", b"", b"defgh"):
            out.write(chunk)
        assert out.sha256() == hashlib.sha256(b"abcdefgh").hexdigest()


def test_a_retry_that_starts_over_hashes_only_the_final_bytes(tmp_path: Path) -> None:
    with open(tmp_path / "t", "w+b") as f:
        out = HashingWriter(f)
        out.write(b"cut sho")
        out.seek(0)
        out.truncate()
        out.write(b"whole answer")
        f.flush()
        assert out.sha256() == hashlib.sha256((tmp_path / "t").read_bytes()).hexdigest()


def test_any_other_seek_or_truncate_leaves_the_hash_unknown(tmp_path: Path) -> None:
    with open(tmp_path / "t", "w+b") as f:
        moved = HashingWriter(f)
        moved.write(b"abc")
        moved.seek(1)
        assert moved.sha256() is None
    with open(tmp_path / "u", "w+b") as f:
        cut = HashingWriter(f)
        cut.write(b"abc")
        cut.truncate(1)
        assert cut.sha256() is None


def test_the_client_can_use_it_as_its_output(tmp_path: Path) -> None:
    with open(tmp_path / "t", "w+b") as f:
        out = cast(BinaryIO, HashingWriter(f))
        assert out.seekable() and out.tell() == 0
