"""Log set-up: every record, syncd's own or a library's, is one line of the chosen format."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator

import pytest
import structlog

from syncd.cli.logs import configure
from syncd.server.quietlogs import InfoAsDebug


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure` binds the current stderr (here, the capture): undo it for the tests after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_library_records_traceback_is_text_in_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logging.getLogger("asyncio").error("socket.accept() out of system resource", exc_info=True)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["logger"] == "asyncio" and record["level"] == "error"
    assert "Traceback (most recent call last)" in record["exception"]
    assert "OSError: [Errno 24] Too many open files" in record["exception"]
    assert "exc_info" not in record


@pytest.fixture
def zone_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 14 hours ahead of UTC: a UTC stamp cannot pass for a local one."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_lines_carry_real_unicode_from_structlog_and_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    structlog.get_logger("syncd.sync.jobs").warning("transfer", name="\U0001f389party.md")
    logging.getLogger("uvicorn.error").warning("refused %s", "Grüße.txt")
    first, second = lines(capsys)
    assert '"\U0001f389party.md"' in first and "\\ud83c" not in first
    assert json.loads(first)["name"] == "\U0001f389party.md"
    assert json.loads(second)["event"] == "refused Grüße.txt" and "Grüße" in second


def test_a_lone_surrogate_is_written_as_its_escape_even_to_a_strict_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stderr", strict)
    configure("json")
    name = os.fsdecode(b"latin-\xe9.txt")  # a name that is not UTF-8, as the scan decodes it
    structlog.get_logger("syncd.sync.passes").warning("not synced", name=name)
    logging.getLogger("asyncio").warning("about %s", name)
    raw = strict.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    first, second = raw.splitlines()
    assert "latin-\\udce9.txt" in first
    assert json.loads(first)["name"] == name and json.loads(second)["event"] == f"about {name}"


def test_console_lines_are_short_local_time_compact_and_in_the_order_logged(
    capsys: pytest.CaptureFixture[str], zone_far_from_utc: None
) -> None:
    configure("console")
    before = time.strftime("%H:%M:%S")
    structlog.get_logger("syncd.sync.jobs").info("transfer", folder="docs", name="a.txt", action="upload", bytes=3)
    after = time.strftime("%H:%M:%S")
    [line] = lines(capsys)
    stamp, rest = line.split(" ", 1)
    assert stamp in (before, after), (stamp, before, after)
    assert rest == "[info] transfer folder=docs name=a.txt action=upload bytes=3"


def test_console_values_have_control_characters_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console")
    structlog.get_logger("syncd.sync.passes").warning("not synced", folder="docs", name="two\nlines\x1b[31m",
                                                      reason="a b\tc")
    logging.getLogger("uvicorn.error").warning("about %s", "esc\x1b]0;title\x07")
    first, second = lines(capsys)
    assert first.endswith("[warning] not synced folder=docs name=two\\nlines\\x1b[31m reason='a b\\tc'")
    assert second.endswith("[warning] about esc\\x1b]0;title\\x07 [uvicorn.error]")
    assert "\x1b" not in first + second


def test_console_tracebacks_are_plain_text_without_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    configure("console")
    api_key = "the-real-key-0123456789"
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        structlog.get_logger("syncd.sync.jobs").error("internal error", exc_info=exc)
        assert api_key  # a local of the failing frame, which a locals-showing traceback would print
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert api_key not in err


def test_events_a_command_reports_itself_are_left_out_unless_info_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    log = structlog.get_logger("syncd.sync.jobs")
    configure("json", "warning", reported=("transfer",))
    log.warning("transfer", name="a.txt", outcome="failed")
    log.warning("remote.retry", call="upload a.txt")
    assert [json.loads(line)["event"] for line in lines(capsys)] == ["remote.retry"]
    configure("json", "info", reported=("transfer",))
    log.warning("transfer", name="a.txt", outcome="failed")
    assert [json.loads(line)["event"] for line in lines(capsys)] == ["transfer"]


@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_a_filter_on_a_logger_lowers_its_info_lines_to_debug(
    capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    """How the daemon quiets its in-process services (`server/quietlogs.py`)."""
    quiet = InfoAsDebug()
    service, uvicorn = logging.getLogger("syncd.server"), logging.getLogger("uvicorn.error")
    for logger in (service, uvicorn):
        logger.addFilter(quiet)
    try:
        configure("json", level)
        structlog.get_logger("syncd.server").info("uploaded", file_id=27)
        # Per case: uvicorn's logger may carry the service's rate limit (`server/lograte.py`)
        # from an earlier test in this process, which would hold back a repeated line.
        uvicorn.info("Uvicorn running on %s", f"unix socket {level}")
        structlog.get_logger("syncd.server").warning("signing key damaged")
        structlog.get_logger("syncd.app").info("embedded file service")
    finally:
        for logger in (service, uvicorn):
            logger.removeFilter(quiet)
    records = [(r["event"], r["level"]) for r in map(json.loads, lines(capsys))]
    service_lines = [("uploaded", "debug"), (f"Uvicorn running on unix socket {level}", "debug")]
    assert records == [*(service_lines if shown else []), ("signing key damaged", "warning"),
                       ("embedded file service", "info")]
