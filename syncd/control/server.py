"""The control socket itself: `state_dir/control.sock`, served by the running daemon.

The socket lives in the state dir, which is made 0700 and must belong to this user, and is
itself 0600 (`syncd.server.unixsock`, the same rules as the embedded remote's socket), so no
other user can connect. The daemon holds the state dir's writer lock, so one daemon at most
serves it; a socket file left behind by a killed daemon is replaced, a live one or anything
that is not a socket never is.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.control.address import SOCKET_NAME

if TYPE_CHECKING:
    from syncd.control.api import Controls


class ControlServer:
    """The control API on the state dir's socket, in a background thread, until `stop`."""

    def __init__(self, state_dir: Path, controls: Controls) -> None:
        from syncd.control.api import build_api
        from syncd.server.quietlogs import info_as_debug
        from syncd.server.runner import ServerThread
        from syncd.server.servelimits import ServeLimits
        from syncd.server.unixsock import SocketDir

        self._stack = ExitStack()
        self._controls = controls
        try:
            sockdir = self._stack.enter_context(SocketDir(Path(state_dir).expanduser(), SOCKET_NAME))
            sockdir.try_lock()  # the state dir's writer lock already makes this process the only server
            sock = sockdir.bind()
            self._stack.callback(sockdir.remove)
            info_as_debug(("uvicorn.error",), self._stack)  # uvicorn's start-up lines: debug detail here
            # An events stream lives as long as its reader wants: only the daemon's stop ends it
            # (`bus.close`), and the shutdown waits for no stream.
            limits = ServeLimits(shutdown_timeout=2)
            self._server = ServerThread(build_api(controls), limits=limits, sock=sock)
            self._server.start()
        except BaseException:
            self._stack.close()
            raise
        self.path = sockdir.socket_path
        self.pid = os.getpid()

    def stop(self) -> None:
        """End the event streams, stop serving, remove the socket."""
        self._controls.bus.close()
        try:
            self._server.stop()
        finally:
            self._stack.close()
