"""Opt-in (`-m bench`): the settle benchmark still runs end to end at a small size.

Only that it measured something sane, not that the targets are met (they are measured at
full size: `tests/bench/settle_bench.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from settle_bench import print_table, run  # noqa: E402


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_settle_bench_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(files=40, settle=0.5, repeat=1, workdir=tmp_path)
    assert len(figures["raw"]["fresh"]) == len(figures["raw"]["settled"]) == 1
    medians = figures["medians"]
    assert all(value > 0 for value in medians.values())
    assert set(figures["targets"]) == {"fresh_time_max_s", "fresh_time_met", "fresh_cpu_max_s", "fresh_cpu_met"}
    print_table(figures)
    assert "fresh reconcile time" in capsys.readouterr().out
