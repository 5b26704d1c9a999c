"""Opt-in (`-m slow`): a 1 GiB file through `syncd serve` stays byte-identical with flat memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from big_file import run  # noqa: E402

MB = 1_000_000


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_one_gib_round_trip_with_flat_memory(tmp_path: Path) -> None:
    figures = run(1 << 30, tmp_path)
    assert figures["identical"] is True
    assert figures["client_peak_rss"] < 150 * MB  # type: ignore[operator]
    assert figures["server_peak_rss"] < 150 * MB  # type: ignore[operator]
