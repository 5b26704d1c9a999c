"""`syncd retry`: put failed jobs back in the queue."""

from __future__ import annotations

import argparse

from syncd.cli.common import config_of, folders_of
from syncd.cli.exits import EXIT_OK
from syncd.state.db import open_state
from syncd.state.queue import Queue


def command(args: argparse.Namespace) -> int:
    config = config_of(args)
    folders = folders_of(config, args.folder)
    state = open_state(config.daemon.state_dir, writer=False)
    try:
        queue = Queue(state)
        count = sum(queue.retry(f.name) for f in folders)
    finally:
        state.close()
    print(f"requeued {count} failed job{'s' if count != 1 else ''}")
    return EXIT_OK
