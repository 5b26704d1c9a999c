"""Opt-in (`-m bench`): the WAN benchmark still runs end to end at a tiny size, and its flags parse.

Only that every figure was measured and every pass checked, never that a target is met.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from wan_bench import JOBS, QUICK, print_table, run, settings_from  # noqa: E402

pytestmark = pytest.mark.bench


def test_flags() -> None:
    args = argparse.Namespace(files=7, repeat=None, big_size=None, handshake_rtts=3, bandwidth=None, changed=None,
                              rtt="0,5", jobs="upload,big")
    s = settings_from(args, quick=True)
    assert (s.files, s.rtts, s.handshake_rtts, s.repeat) == (7, (0.0, 5.0), 3, QUICK.repeat)
    assert s.jobs == ("upload", "big_up", "big_down")


@pytest.mark.timeout(600)
def test_wan_bench_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bdd_file")
    settings = settings_from(argparse.Namespace(files=12, rtt="0,10", big_size=1 << 20, jobs=None), quick=True)
    figures = run(settings, tmp_path / "work")
    assert set(figures["rtt"]) == {"0", "10"}
    for jobs in figures["rtt"].values():
        assert set(jobs) == set(JOBS)
        for job in jobs.values():
            for figure in job.values():
                assert figure["median_s"] > 0 and figure["median_cpu_s"] >= 0
    upload = figures["rtt"]["10"]["upload"]
    assert upload["SDK"]["median_connections"] >= 12  # a connection per call
    assert {row["verdict"] for row in figures["targets"]} <= {"MET", "MISSED", "n/a"}  # no 20 ms run: n/a
    print_table(figures)
    assert "RTT 10 ms" in capsys.readouterr().out
