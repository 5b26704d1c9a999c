"""`syncd status`: per folder, what is tracked, queued, failed, and why."""

from __future__ import annotations

import argparse
import json

from syncd.cli.common import config_of
from syncd.cli.exits import EXIT_OK
from syncd.cli.output import print_status, read_status


def command(args: argparse.Namespace) -> int:
    config = config_of(args)
    doc = read_status(config)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False))
    else:
        print_status(doc)
    return EXIT_OK
