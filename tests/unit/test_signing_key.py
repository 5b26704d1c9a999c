"""The file service's signing key: written atomically, never used when damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from syncd.server.signing import KEY_BYTES, load_or_create_key, sign


def test_a_new_key_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert sorted(os.listdir(tmp_path)) == ["signing.key"]  # no temp file left behind


@pytest.mark.parametrize(
    "damage", [b"", b"\n", b"abcd", b"zz" * 32, b"\xff\xfe" * 40, ("00" * (KEY_BYTES - 1)).encode()],
    ids=["empty", "newline", "short", "not-hex", "not-text", "31-bytes"],
)
def test_a_damaged_key_is_replaced_never_used(tmp_path: Path, damage: bytes) -> None:
    path = tmp_path / "signing.key"
    path.write_bytes(damage)
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES and key != b"\x00" * KEY_BYTES
    assert load_or_create_key(path) == key  # the replacement is what is on disk now
    assert sign(key, 1, "u", 10) != sign(b"", 1, "u", 10)
