"""Opt-in (`-m bench`): the WAN benchmark still runs end to end at a tiny size, and its flags parse.

Only that every figure was measured and every pass checked, never that a target is met.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import wan_contenders  # noqa: E402
from wan_bench import (  # noqa: E402
    BIG_CONTENDERS,
    BIG_JOBS,
    CONTENDERS,
    JOBS,
    QUICK,
    big_target_rows,
    print_table,
    run,
    settings_from,
)

pytestmark = pytest.mark.bench

MB = 1_000_000


def test_flags() -> None:
    args = argparse.Namespace(files=7, repeat=None, big_size=None, handshake_rtts=3, bandwidth=None, changed=None,
                              rtt="0,5", jobs="upload,big")
    s = settings_from(args, quick=True)
    assert (s.files, s.rtts, s.handshake_rtts, s.repeat) == (7, (0.0, 5.0), 3, QUICK.repeat)
    assert s.jobs == ("upload", "big_up", "big_down")


def test_big_targets_read_unavailable_without_curl() -> None:
    """No curl figure: the ratio rows are n/a, the RSS row is still judged."""
    big = {"syncd_MBps": 50.0, "curl_MBps": None, "syncd_over_curl": None, "syncd_peak_rss": 40 * MB,
           "curl_peak_rss": None}
    figures: dict[str, Any] = {"settings": {"files": 5, "big_size": 1 << 20},
                               "big": {"0": {"big_up": big, "big_down": {**big, "syncd_peak_rss": 120 * MB}}}}
    rows = {row.figure: row for row in big_target_rows(figures)}
    assert rows["0 ms upload 1 x 1 MiB: syncd MB/s / curl MB/s"].value == "curl unavailable"
    assert rows["0 ms upload 1 x 1 MiB: syncd MB/s / curl MB/s"].met is None
    assert rows["20 ms download 1 x 1 MiB: syncd MB/s / curl MB/s"].value == "not measured"
    rss = rows["1 MiB each way: syncd reconcile peak RSS"]
    assert (rss.value, rss.met) == ("120.0 MB", False)  # the largest of the passes


@pytest.mark.timeout(600)
def test_wan_bench_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bdd_file")
    settings = settings_from(argparse.Namespace(files=12, rtt="0,10", big_size=1 << 20, jobs=None), quick=True)
    figures = run(settings, tmp_path / "work")
    assert set(figures["rtt"]) == {"0", "10"}
    for jobs in figures["rtt"].values():
        assert set(jobs) == set(JOBS)
        for name, job in jobs.items():
            mine = BIG_CONTENDERS if name in BIG_JOBS else ("syncd", "bare") if name == "mixed" else CONTENDERS
            assert set(job) == set(mine)
            for figure in job.values():
                assert figure["median_s"] > 0 and figure["median_cpu_s"] >= 0
    upload = figures["rtt"]["10"]["upload"]
    assert upload["SDK"]["median_connections"] >= 12  # a connection per call
    assert {row["verdict"] for row in figures["targets"]} <= {"MET", "MISSED", "n/a"}  # no 20 ms run: n/a
    print_table(figures)
    printed = capsys.readouterr().out
    assert "RTT 10 ms" in printed
    assert "throughput" in printed and "peak RSS" in printed and "syncd/curl" in printed


@pytest.mark.timeout(600)
def test_big_file_rows_with_curl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """curl's copies are checked by sha256 like everyone's, and the big rows carry MB/s, peak RSS
    and syncd/curl, with their targets judged at 0 ms."""
    pytest.importorskip("bdd_file")
    if wan_contenders.CURL_PATH is None:
        pytest.skip("curl is not installed")
    settings = settings_from(argparse.Namespace(files=3, rtt="0,10", big_size=2 << 20, jobs="big", repeat=2),
                             quick=True)
    figures = run(settings, tmp_path / "work")
    sha = figures["big_sha256"]
    assert sha and figures["curl"].startswith("curl ")
    for rtt, jobs in figures["rtt"].items():
        assert set(jobs) == set(BIG_JOBS)
        for job, fig in jobs.items():
            for name in BIG_CONTENDERS:
                assert [s["sha256"] for s in fig[name]["samples"]] == [sha, sha]  # every copy checked
                assert fig[name]["MBps"] == pytest.approx((2 << 20) / fig[name]["median_s"] / MB)
            for name in ("syncd", "curl"):
                assert all(s["peak_rss"] > 0 for s in fig[name]["samples"])
                assert fig[name]["peak_rss"] == max(s["peak_rss"] for s in fig[name]["samples"])
            assert fig["SDK"]["peak_rss"] is None  # in this process: none of its own
            assert fig["curl"]["median_connections"] == 1
            assert fig["curl"]["median_cpu_s"] > 0
            big = figures["big"][rtt][job]
            assert big["syncd_over_curl"] == pytest.approx(fig["syncd"]["MBps"] / fig["curl"]["MBps"])
            assert big["curl_peak_rss"] == fig["curl"]["peak_rss"] > 0
    rows = {row["figure"]: row for row in figures["targets"]}
    for job in ("upload", "download"):
        assert rows[f"0 ms {job} 1 x 2 MiB: syncd MB/s / curl MB/s"]["verdict"] in {"MET", "MISSED"}
        assert rows[f"20 ms {job} 1 x 2 MiB: syncd MB/s / curl MB/s"]["verdict"] == "n/a"  # no 20 ms run
    assert rows["2 MiB each way: syncd reconcile peak RSS"]["verdict"] in {"MET", "MISSED"}
    print_table(figures)
    printed = capsys.readouterr().out
    assert "upload 1 x 2 MiB" in printed and " MB/s" in printed and "x\n" in printed
