"""`syncd run`: the daemon, in the foreground."""

from __future__ import annotations

import argparse

from syncd.cli.logs import configure as configure_logs
from syncd.cli.parser import log_level
from syncd.config import find_config_path, load_config


def command(args: argparse.Namespace) -> int:
    from syncd.daemon.service import Daemon

    path = find_config_path(args.config)
    config = load_config(path)
    configure_logs(config.daemon.log_format, log_level(args, config.daemon.log_level))
    return Daemon(path, config).run()
