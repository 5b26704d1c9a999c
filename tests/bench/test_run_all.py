"""Opt-in (`-m bench`): the one-command benchmark still runs end to end at its --quick size.

Only that every figure was measured and is sane, never that a target is met.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from benchkit import write_results  # noqa: E402
from run_all import QUICK, parse_args, print_table, run, wan_settings  # noqa: E402


@pytest.mark.bench
def test_quick_flags_and_overrides() -> None:
    settings, args = parse_args(["--quick", "--files", "7", "--big-size", "2M"])
    assert settings.files == 7
    assert settings.big_size == 2 << 20
    assert settings.noop_files == QUICK.noop_files
    assert args.out == "bench-results.json"


@pytest.mark.bench
def test_wan_rows_include_the_big_file_at_every_rtt() -> None:
    """--wan runs every WAN job, the big file each way (syncd, SDK, bare loop, curl) included, at
    0, 20 and 80 ms, at this run's sizes."""
    settings, args = parse_args(["--quick", "--wan", "--big-size", "4M"])
    wan = wan_settings(settings, args)
    assert wan.rtts == (0.0, 20.0, 80.0)
    assert {"big_up", "big_down"} <= set(wan.jobs)
    assert (wan.files, wan.repeat, wan.big_size) == (settings.files, settings.repeat, 4 << 20)


@pytest.mark.bench
@pytest.mark.timeout(600)
def test_run_all_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bdd_file")
    figures = run(QUICK, tmp_path / "work")

    reconcile = figures["reconcile"]
    assert all(reconcile["arrived"].values()), reconcile["arrived"]
    assert reconcile["noop_synced"] == QUICK.noop_files
    assert all(value > 0 for value in reconcile["medians"].values())

    big = figures["big_file"]
    assert big["size"] == QUICK.big_size
    contenders = ("syncd", "curl") if shutil.which("curl") else ("syncd",)
    for direction in ("upload", "download"):
        for name in contenders:
            assert big["medians"][f"{direction}_{name}_s"] > 0
            assert big["MBps"][f"{direction}_{name}"] > 0
            assert big["identical"][f"{direction}_{name}"] is True
    assert 0 < big["syncd_peak_rss"] < 1 << 30

    latency, idle = figures["daemon"]["latency"], figures["daemon"]["idle"]
    assert latency["arrived"] == QUICK.samples
    assert all(x is not None and x > 0 for x in latency["latencies_s"])
    assert idle["synced"] == QUICK.idle_files
    assert idle["cpu_percent"] >= 0
    assert figures["daemon"]["exit_codes"] == {"run-drop": 0, "run-idle": 0}
    assert figures["server"]["peak_rss"] > 0

    assert {row["verdict"] for row in figures["targets"]} <= {"MET", "MISSED", "n/a"}
    assert len(figures["targets"]) == 15

    out = tmp_path / "results.json"
    write_results(figures, str(out))
    assert json.loads(out.read_text())["settings"]["files"] == QUICK.files
    print_table(figures)
    printed = capsys.readouterr().out
    assert f"upload {QUICK.files} x 4 KiB" in printed
    assert "32 MiB upload: syncd MB/s / curl MB/s" in printed
    assert "idle CPU" in printed
