"""Log set-up: every record, syncd's own or a library's, is one line of the chosen format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from syncd.cli.logs import configure


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
