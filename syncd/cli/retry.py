"""`syncd retry`: put failed jobs back in the queue.

Next to a running daemon the request goes over its control socket, and the daemon's workers
take the jobs at once; otherwise the queue is changed here, for the next `run` or `reconcile`.
"""

from __future__ import annotations

import argparse

from syncd.cli.common import config_of, folders_of
from syncd.cli.exits import EXIT_OK
from syncd.state.db import open_state
from syncd.state.queue import Queue


def command(args: argparse.Namespace) -> int:
    from syncd.control.address import connect

    config = config_of(args)
    folders = [f.name for f in folders_of(config, args.folder)]
    client = connect(config.daemon.state_dir)
    if client is not None:
        with client:
            count = client.retry(folders)
        print(f"requeued {count} failed job{'s' if count != 1 else ''}; the running daemon is trying them now")
        return EXIT_OK
    state = open_state(config.daemon.state_dir, writer=False)
    try:
        queue = Queue(state)
        count = sum(queue.retry(f) for f in folders)
    finally:
        state.close()
    print(f"requeued {count} failed job{'s' if count != 1 else ''}")
    return EXIT_OK
