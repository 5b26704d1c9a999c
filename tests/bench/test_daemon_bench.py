"""Opt-in (`-m bench`): the daemon benchmark still runs end to end at a small size.

Only that it measured something sane, not that the targets are met.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from daemon_bench import print_table, run  # noqa: E402


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_daemon_bench_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(samples=5, idle_files=500, idle_seconds=10, settle=1.0, workdir=tmp_path)

    latency = figures["latency"]
    assert latency["arrived"] == 5
    assert len(latency["latencies_s"]) == 5
    assert all(x is not None and x > 0 for x in latency["latencies_s"])
    assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["max_s"]

    idle = figures["idle"]
    assert idle["synced"] == 500
    assert idle["wall_s"] >= 10
    assert idle["cpu_s"] >= 0
    assert idle["cpu_percent"] >= 0
    assert idle["rss_mib"] > 0

    assert figures["exit_codes"] == {"serve": 0, "run-drop": 0, "run-idle": 0}
    print_table(figures)
    out = capsys.readouterr().out
    assert "drop-in latency p50" in out
    assert "idle CPU (500 files" in out
