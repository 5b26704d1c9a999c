"""`syncd check`: validate the config, then probe each folder's remote."""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from syncd.cli.common import config_of
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.output import probe_remotes
from syncd.cli.parser import log_level


def command(args: argparse.Namespace) -> int:
    config = config_of(args)
    configure_logs(config.daemon.log_format, log_level(args, "warning"))  # stdout is the probe's report
    print(f"config {config.path}: ok ({len(config.folders)} folders, {len(config.remotes)} remotes)")
    with ExitStack() as stack:
        problems = probe_remotes(config, stack)
    for line in problems.lines:
        print(line)
    return EXIT_OK if problems.ok else EXIT_FAILED
