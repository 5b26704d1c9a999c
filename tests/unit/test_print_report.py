"""`print_report`: one line per action (or, on a terminal, per action to look at), then the totals;
every name and message on one line, its control characters escaped."""

from __future__ import annotations

import pytest

from syncd.cli.output import print_report
from syncd.sync.report import ActionResult, FolderReport


def report() -> FolderReport:
    results = [
        ActionResult("a.txt", "upload", "done"),
        ActionResult("new.txt", "upload", "done", renamed_from="old\nname.txt"),
        ActionResult("b.txt", "download", "done"),
        ActionResult("both.txt", "conflict", "done"),
        ActionResult("big\x1b[2J.bin", "upload", "failed", "HTTP 413: big\x1b[2J.bin\nis too large"),
    ]
    return FolderReport("docs", warning="would delete 3 of 4\x07", results={r.name: r for r in results})


TOTALS = "docs: 2 uploaded, 1 downloaded, 0 deleted locally, 0 deleted remotely, 1 conflicts, 1 failed, 0 unchanged"


def test_every_action_one_line_each_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    print_report(report())
    assert capsys.readouterr().out.splitlines() == [
        "docs: warning: would delete 3 of 4\\x07",
        "docs: upload a.txt done",
        "docs: download b.txt done",
        "docs: upload big\\x1b[2J.bin failed: HTTP 413: big\\x1b[2J.bin\\nis too large",
        "docs: conflict both.txt done",
        "docs: rename old\\nname.txt \u2192 new.txt done",
        TOTALS,
    ]


def test_on_a_terminal_only_failures_and_conflicts_then_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    print_report(report(), every_action=False)
    assert capsys.readouterr().out.splitlines() == [
        "docs: warning: would delete 3 of 4\\x07",
        "docs: upload big\\x1b[2J.bin failed: HTTP 413: big\\x1b[2J.bin\\nis too large",
        "docs: conflict both.txt done",
        TOTALS,
    ]
