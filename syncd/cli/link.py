"""`syncd link PATH [--expires S]`: a URL that downloads a synced file without credentials.

PATH is looked up in its folder's journal (what syncd synced is what the URL serves: the
version the journal recorded, which is the only listing some remotes have), then the folder's
remote signs a URL for that version. Only remotes with SIGN_URL can; on others the command is a
usage error that says so. Reads the state without its lock, so it works next to a daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from syncd.config import Config, FolderConfig
from syncd.core.names import normalize
from syncd.remote.base import Capability, RemoteFile
from syncd.state.db import open_state
from syncd.sync.outcome import to_base


class NotLinkable(Exception):
    """PATH names nothing syncd can link to (exit 2): the message says why."""


def synced_file(config: Config, path: Path) -> tuple[FolderConfig, RemoteFile]:
    """The folder holding `path` and the remote file its journal row recorded."""
    target = Path(os.path.abspath(path.expanduser()))
    for folder in config.folders:
        root = Path(os.path.abspath(folder.path))
        if target == root or root not in target.parents:
            continue
        key = normalize("/".join(target.relative_to(root).parts))
        state = open_state(config.daemon.state_dir, writer=False)
        try:
            row = state.journal_row(folder.name, key)
        finally:
            state.close()
        recorded = to_base(row).recorded_remote() if row is not None else None
        if recorded is None:
            raise NotLinkable(f"{path}: not a file syncd has synced in folder {folder.name}")
        return folder, recorded
    raise NotLinkable(f"{path}: not inside any configured folder")


def link(config: Config, path: Path, expires: int | None) -> str:
    """The signed URL of the synced file at `path` (NotLinkable, or the remote's error)."""
    from syncd.app import build_remotes  # the HTTP clients only for this command's own work

    folder, recorded = synced_file(config, path)
    with ExitStack() as stack:
        remote = build_remotes(config, stack)[folder.remote]
        if Capability.SIGN_URL not in remote.capabilities:
            kind = config.remotes[folder.remote].kind
            raise NotLinkable(f"remote {folder.remote} (kind {kind}) cannot sign download URLs")
        if expires is None:
            return remote.sign_url(folder.place, recorded)
        return remote.sign_url(folder.place, recorded, expires)


def command(args: argparse.Namespace) -> int:
    """`syncd link PATH [--expires S]`."""
    from syncd.cli.common import config_of
    from syncd.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from syncd.cli.logs import configure as configure_logs
    from syncd.cli.parser import log_level
    from syncd.errors import RemoteError

    config = config_of(args)
    configure_logs(config.daemon.log_format, log_level(args, "warning"))
    try:
        print(link(config, Path(args.path), args.expires))
    except NotLinkable as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RemoteError as exc:
        print(f"syncd: link failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
