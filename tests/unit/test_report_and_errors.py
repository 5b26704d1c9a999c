"""What a pass reports, as values (no I/O), and the shape of the error tree."""

from __future__ import annotations

import pytest

from syncd.core.model import Action, ActionKind, LocalFile
from syncd.errors import (
    AuthExpired,
    FatalError,
    FileShrank,
    FolderUnavailable,
    LocalChanged,
    LocalError,
    NotSettled,
    RemoteError,
    SyncdError,
    TransientError,
)
from syncd.state import jobcodec
from syncd.state.queue import Job, JobState
from syncd.sync.report import ActionResult, FolderReport, Reports, action_result, add_leftovers


def job(name: str, *, state: JobState = JobState.PENDING, error: str | None = None, payload: str = "") -> Job:
    return Job(
        id=1, folder="f", name=name, kind="upload", payload=payload, state=state, attempts=0, next_try=0.0,
        lease_owner=None, lease_until=None, claims=0, dirty=False, last_error=error, created=0.0, updated=0.0,
    )


def upload(name: str) -> Action:
    return Action(ActionKind.UPLOAD, name, local=LocalFile(name=name, size=1, mtime_ns=1, sha256="b" * 64))


def test_leftovers_are_reported_failed_with_why_they_wait() -> None:
    report = FolderReport("f", results={"a.txt": ActionResult("a.txt", "upload", "planned")})
    jobs = [
        job("a.txt", error="HTTP 503"),
        job("b.txt", payload=jobcodec.dumps(upload("b.txt"))),  # queued earlier, not in this pass's plan
        job("c.txt", state=JobState.FAILED, error="refused", payload=jobcodec.dumps(upload("c.txt"))),
    ]
    add_leftovers(report, jobs, waiting="not done yet", failing=None, held_back=None)
    assert report.results["a.txt"] == ActionResult("a.txt", "upload", "failed", "HTTP 503 (will retry)")
    assert report.results["b.txt"] == ActionResult("b.txt", "upload", "failed", "not done yet")
    assert report.results["c.txt"] == ActionResult("c.txt", "upload", "failed", "refused")
    assert report.failed == 3 and not report.ok
    assert report.first_error == "HTTP 503 (will retry)"


def test_leftovers_held_back_by_a_failing_remote_say_so() -> None:
    report = FolderReport("f", results={"a.txt": ActionResult("a.txt", "upload", "planned")})
    add_leftovers(
        report, [job("a.txt", error="HTTP 503"), job("b.txt", payload="not json")],
        waiting="not done yet", failing="remote r is failing (last: x)", held_back="remote r is failing",
    )
    assert report.results["a.txt"].error == "HTTP 503; remote r is failing (will retry)"
    assert report.results["b.txt"].error == "remote r is failing (last: x)"  # unreadable: shown as its kind


def test_a_journal_only_action_is_reported_only_when_it_fails() -> None:
    forget = Action(ActionKind.FORGET, "a.txt")
    assert action_result(forget, "done", None) is None
    assert action_result(forget, "failed", "boom") == ActionResult("a.txt", "download", "failed", "boom")
    assert action_result(upload("b.txt"), "done", None) == ActionResult("b.txt", "upload", "done", None)


def test_the_board_keeps_the_latest_pass_of_a_folder() -> None:
    reports = Reports()
    first = reports.start("f")
    reports.set("f", "a.txt", ActionResult("a.txt", "compare", "planned"))
    assert first.results
    second = reports.start("f")
    assert reports.get("f") is second and not second.results
    reports.set("f", "a.txt", ActionResult("a.txt", "compare", "planned"))
    reports.unchanged("f", "a.txt")
    assert (second.results, second.unchanged) == ({}, 1)
    reports.set("g", "x", ActionResult("x", "upload", "done"))  # no pass of g: nowhere to report
    assert reports.get("g") is None


@pytest.mark.parametrize("error", [LocalChanged("a"), FolderUnavailable("m"), NotSettled("n", retry_after=1.0)])
def test_local_errors_are_not_remote_errors(error: SyncdError) -> None:
    assert isinstance(error, LocalError) and not isinstance(error, RemoteError)


def test_a_file_that_shrank_is_local_and_still_retried_as_transient() -> None:
    error = FileShrank("upload 'a' failed: shorter than expected")
    assert isinstance(error, LocalError) and isinstance(error, TransientError)
    assert error.retry_after is None and error.status is None


def test_an_expired_login_is_handled_as_every_refusal() -> None:
    error = AuthExpired("remote r: the login expired; log in again")
    assert isinstance(error, FatalError) and not isinstance(error, LocalError)
    assert NotSettled("n", retry_after=2.5).retry_after == 2.5
