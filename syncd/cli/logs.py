"""Log set-up: JSON lines when not on a TTY (journald), short console lines on a TTY.

Every record, syncd's own (structlog) or a library's (stdlib `logging`: uvicorn, asyncio),
goes through the root logger's one handler, so:

* each record is one line of one format, written whole in a single write (two threads never
  glue their lines together);
* a record's logger name decides how it is treated, whoever logged it: a stdlib filter on a
  logger may lower its records' level, and the line shows the level it ends with (the embedded
  file service's per-request lines are the daemon's debug detail, `remote/bdd/embedded.py`);
* the handler writes to whatever `sys.stderr` is at that moment, so a live progress display
  that takes stderr over (`cli/progress.py`) prints the lines above itself.

Console lines are for a person: local time (`21:04:05`), no padding, names with control
characters escaped (`cli/text.py`), tracebacks as plain text (never with local variables,
which may hold an API key). JSON lines are for machines: UTC ISO timestamps, real Unicode, and
lone surrogates (names that are not UTF-8) as `\\udcff` escapes, so writing one never fails.

Only values syncd chooses to log reach the output; no code path logs a request's headers, so
API keys never appear.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Collection
from typing import Any, Literal

import structlog

from syncd.cli.text import shown

LogFormat = Literal["auto", "json", "console"]
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: Console timestamps: local wall-clock time, to the second.
CONSOLE_TIME = "%H:%M:%S"
#: Values the console renderer leaves as they are: tracebacks are text of many lines.
_VERBATIM = frozenset({"exception", "stack", "exc_info", "timestamp", "level"})
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def configure(log_format: LogFormat = "auto", level: str = "info", *, reported: Collection[str] = ()) -> None:
    """Route structlog and stdlib logging to stderr in one format, at `level`.

    `reported`: events the command prints itself, per file, in its own report (`reconcile`'s
    failures): left out of the log unless it shows info lines too (`-v`), where every file's
    outcome is logged anyway, so a person sees each failure once."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    threshold = LEVELS.get(level, logging.INFO)
    stamper = (
        structlog.processors.TimeStamper(fmt="iso", utc=True)
        if as_json
        else structlog.processors.TimeStamper(fmt=CONSOLE_TIME, utc=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        stamper,
    ]
    left_out: list[structlog.typing.Processor] = (
        [_LeaveOut(frozenset(reported))] if reported and threshold > logging.INFO else []
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            *left_out,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    renderer: list[structlog.typing.Processor] = (
        # A foreign record's traceback as text (JSON would show the exc_info tuple's reprs).
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(serializer=json_line)]
        if as_json
        else [_escape_for_console, _console_renderer(colors=sys.stderr.isatty())]
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[_level_of_record, structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    # One line per HTTP request drowns the one line per transfer that syncd logs itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def json_line(obj: Any, **options: Any) -> str:
    """One JSON document with real Unicode; a lone surrogate (a name that is not UTF-8) is
    written as its `\\uXXXX` escape, which any encoding can carry and JSON reads back."""
    text = json.dumps(obj, ensure_ascii=False, **options)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now (a progress display may have taken it over)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _LeaveOut:
    """Drops the records of `events` (see `configure`'s `reported`)."""

    def __init__(self, events: frozenset[str]) -> None:
        self.events = events

    def __call__(self, logger: Any, method: str, event_dict: structlog.typing.EventDict) -> Any:
        if event_dict.get("event") in self.events:
            raise structlog.DropEvent
        return event_dict


def _level_of_record(logger: Any, method: str, event_dict: structlog.typing.EventDict) -> Any:
    """The level the record has now: a filter on its logger may have lowered it."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict["level"] = record.levelname.lower()
    return event_dict


class _Shown(str):
    """A string value already escaped for the console: the renderer, which quotes values with
    spaces by their `repr`, gets the quoted form without a second round of escapes."""

    __slots__ = ()

    def __repr__(self) -> str:
        text = str(self)
        quote = '"' if "'" in text and '"' not in text else "'"
        return quote + (text.replace(quote, "\\" + quote)) + quote


def _escape_for_console(logger: Any, method: str, event_dict: structlog.typing.EventDict) -> Any:
    """Every string value (and the event) with control characters escaped (`shown`)."""
    for key, value in event_dict.items():
        if isinstance(value, str) and key not in _VERBATIM:
            event_dict[key] = _Shown(shown(value))
    return event_dict


def _console_renderer(*, colors: bool) -> structlog.dev.ConsoleRenderer:
    options: dict[str, Any] = {
        "colors": colors,
        "sort_keys": False,  # as logged: folder, name, action, ... read in that order
        "pad_level": False,
        "exception_formatter": structlog.dev.plain_traceback,
    }
    try:
        return structlog.dev.ConsoleRenderer(pad_event_to=0, **options)
    except TypeError:  # structlog before 25.5 calls it pad_event
        return structlog.dev.ConsoleRenderer(pad_event=0, **options)
