"""An in-process service's everyday lines as debug detail.

`syncd serve` logs each request and uvicorn's start-up at info: they are what a service's log is
for. Inside the daemon (the embedded remote, the control socket) the same lines would drown the
daemon's own, so there they count as debug lines, shown with `-v`; warnings and errors keep
their level. The service's code is the same either way: the filter sits on its loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import ExitStack


class InfoAsDebug(logging.Filter):
    """On a logger: its info records count as debug, shown only when debug is on. Warnings
    and errors keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def info_as_debug(names: Iterable[str], stack: ExitStack) -> None:
    """Until `stack` closes, the info lines of the loggers `names` are debug lines. Call before
    the service starts, so its start-up lines are too."""
    quiet = InfoAsDebug()
    for name in names:
        logger = logging.getLogger(name)
        logger.addFilter(quiet)
        stack.callback(logger.removeFilter, quiet)
