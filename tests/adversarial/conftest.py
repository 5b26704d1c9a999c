"""The adversarial suite's scoreboards: each scenario records its audit; the run prints them as a table.

`audited(scenario, counts)` records one scenario's `Counts` and fails the test
unless every count is 0. At the end of the run a table of scenarios x (lost,
duplicates, partial, outside) is printed, and written as JSON when
`SYNCD_ADVERSARIAL_JSON` names a file.

The attacks on `syncd serve` (test_service_attacks.py) record a row each, pass or fail:
attack, the server's peak RSS, the worst `/health` latency, what happened. They are
printed as a second table, and written as JSON when `SYNCD_ATTACKS_JSON` names a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.adversarial.audit import Counts
from tests.support.attack import ATTACKS

COLUMNS = ("lost", "duplicates", "partial", "outside")
_RESULTS: list[tuple[str, Counts]] = []

Audited = Callable[[str, Counts], None]


@pytest.fixture
def audited(request: pytest.FixtureRequest) -> Audited:
    """Record `counts` for `scenario` in the table; fail with the details unless all are 0."""

    def record(scenario: str, counts: Counts) -> None:
        _RESULTS.append((scenario, counts))
        assert counts.clean, f"{scenario}: {counts.row()}\n" + "\n".join(counts.details[:50])

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _attacks_table(terminalreporter)
    if not _RESULTS:
        return
    width = max(len("scenario"), *(len(name) for name, _ in _RESULTS))
    tr = terminalreporter
    tr.section("adversarial scenarios: files lost, remote duplicates, partial files, files outside the folder")
    tr.write_line(f"{'scenario':<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS))
    for name, counts in _RESULTS:
        row = counts.row()
        tr.write_line(f"{name:<{width}}  " + "  ".join(f"{row[c]:>10}" for c in COLUMNS))
    out = os.environ.get("SYNCD_ADVERSARIAL_JSON")
    if out:
        doc = [{"scenario": name, **counts.row()} for name, counts in _RESULTS]
        Path(out).write_text(json.dumps(doc, indent=2))
        tr.write_line(f"written to {out}")


def _attacks_table(tr: pytest.TerminalReporter) -> None:
    if not ATTACKS:
        return
    width = max(len("attack"), *(len(row.attack) for row in ATTACKS))
    tr.section("attacks on syncd serve: server peak RSS, worst /health latency, outcome")
    tr.write_line(f"{'attack':<{width}}  {'RSS MB':>8}  {'/health s':>9}  outcome")
    for row in ATTACKS:
        rss = "-" if row.peak_rss_mb is None else f"{row.peak_rss_mb:.0f}"
        health = "-" if row.worst_health_s is None else f"{row.worst_health_s:.2f}"
        tr.write_line(f"{row.attack:<{width}}  {rss:>8}  {health:>9}  {row.outcome}")
    out = os.environ.get("SYNCD_ATTACKS_JSON")
    if out:
        Path(out).write_text(json.dumps([asdict(row) for row in ATTACKS], indent=2))
        tr.write_line(f"written to {out}")
