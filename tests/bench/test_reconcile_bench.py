"""Opt-in (`-m bench`): the reconcile benchmark still runs end to end at a small size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_bench import print_table, run  # noqa: E402


@pytest.mark.bench
@pytest.mark.timeout(300)
def test_reconcile_bench_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bdd_file")
    figures = run(files=50, noop_files=200, repeat=1, workdir=tmp_path)
    assert figures["arrived"] == {
        f"{phase}_{name}": True for phase in ("upload", "download") for name in ("syncd", "sdk", "bare")
    }
    assert figures["noop_synced"] == 200
    medians = figures["medians"]
    assert isinstance(medians, dict)
    assert all(value > 0 for value in medians.values())
    summary = figures["raw"]["noop"]["last_summary"]  # type: ignore[index]
    assert summary["ok"] is True
    print_table(figures)
    assert "no-op over 200 files" in capsys.readouterr().out
