"""Opt-in (`-m bench`): the scale benchmark still runs end to end at a tiny size.

Only that it measured something sane, not that the targets are met.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from scale_bench import Settings, print_table, run  # noqa: E402


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_scale_bench_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(Settings(sizes=(300,), repeat=1, idle_seconds=5), tmp_path)

    row = figures["sizes"]["300"]
    bdd = row["bdd"]
    assert bdd["synced"] == 300
    assert bdd["noop_unchanged"] == 300
    assert bdd["first_sync_s"] > 0 and bdd["noop_median_s"] > 0 and bdd["baseline_median_s"] > 0
    assert bdd["noop_over_baseline"] > 0
    assert 0 < bdd["noop_rss_mib"] < 1024

    daemon = row["daemon"]
    assert daemon["change_found_s"] is not None and daemon["change_found_s"] > 0
    assert daemon["idle_wall_s"] >= 5
    assert daemon["idle_cpu_s"] >= 0 and daemon["idle_cpu_percent"] >= 0
    assert daemon["rss_mib"] > 0
    assert daemon["exit_code"] == 0

    tree = row["tree"]
    assert tree["listed"] == 300
    assert tree["noop_unchanged"] == 300
    assert tree["noop_median_s"] > 0 and tree["peak_rss_mib"] > 0
    assert min(tree["journal_read_s"], tree["scan_s"], tree["plan_s"]) >= 0

    print_table(figures)
    out = capsys.readouterr().out
    assert "BDD no-op / baseline, 300 files" in out
    assert "daemon idle CPU" in out
    assert "tree (memory) no-op pass, 300 files" in out
