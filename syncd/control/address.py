"""Where a state dir's daemon listens, and whether one does: all a command needs to know before
it loads any HTTP client (`status` with no daemon running loads none)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.control.client import DaemonClient

SOCKET_NAME = "control.sock"


def socket_path(state_dir: Path) -> Path:
    return Path(state_dir).expanduser().absolute() / SOCKET_NAME


def connect(state_dir: Path) -> DaemonClient | None:
    """A client of the daemon serving `state_dir`, or None when none answers on its socket (no
    socket file: nothing else is loaded)."""
    try:
        if not socket_path(state_dir).is_socket():
            return None
    except OSError:
        return None
    from syncd.control.client import reach

    return reach(state_dir)
