"""What `syncd reconcile` prints: each folder's summary (its progress display is `progress.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.cli.text import shown

if TYPE_CHECKING:
    from syncd.sync.report import FolderReport


def print_report(report: FolderReport, *, every_action: bool = True) -> None:
    """Plain lines, one per action, then the folder's totals.

    Without `every_action` (a terminal, where the progress display showed the work going by),
    only the actions a person has to look at: failures and conflicts. Names and messages have
    their control characters escaped: one action is always one line."""
    folder = shown(report.name)
    if report.blocked:
        print(f"{folder}: blocked: {shown(report.blocked)}")
    if report.warning:
        print(f"{folder}: warning: {shown(report.warning)}")
    for r in sorted(report.results.values(), key=lambda r: r.name):
        if not every_action and r.status != "failed" and r.action != "conflict":
            continue
        tail = f": {shown(r.error)}" if r.error else ""
        what = (
            f"rename {shown(r.renamed_from)} \u2192 {shown(r.name)}" if r.renamed_from
            else f"{r.action} {shown(r.name)}"
        )
        print(f"{folder}: {what} {r.status}{tail}")
    d = report.as_json()
    print(
        f"{folder}: {d['uploaded']} uploaded, {d['downloaded']} downloaded, "
        f"{d['deleted_local']} deleted locally, {d['deleted_remote']} deleted remotely, "
        f"{d['conflicts']} conflicts, {d['failed']} failed, {d['unchanged']} unchanged"
    )
