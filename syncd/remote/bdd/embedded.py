"""The embedded file service: `syncd serve`'s app in-process, on a private Unix socket.

What ``kind = "embedded"`` remotes talk to. One process serves a state dir at a time; the
service is started once per set of remotes (`OpenContext.shared`) and stopped with its stack.

Inside the daemon the service's everyday lines (`uploaded file_id=27`, uvicorn's `Uvicorn
running on ...`) are detail of syncd's own transfers: while it runs embedded, its loggers'
info records count as debug (`syncd serve` keeps them at info). The service itself knows
nothing of this; it logs as it always does.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import structlog

from syncd.errors import StateLocked

log = structlog.get_logger("syncd.app")

#: The base URL of requests over the embedded remote's socket. Only its path part matters; the
#: host (a name that never resolves, RFC 2606) is what the service's signed download URLs carry.
EMBEDDED_BASE_URL = "http://syncd-embedded.invalid"
#: How long a writer waits for another process (a `syncd check` probing) to stop serving.
EMBEDDED_WAIT_S = 30.0
#: The loggers the file service and uvicorn write their everyday lines to.
SERVICE_LOGGERS = ("syncd.server", "uvicorn.error")


@dataclass(frozen=True)
class EmbeddedService:
    """Where the embedded file service listens."""

    socket_path: Path  # for messages
    address: str  # what this process connects to (see `SocketDir.address`)

    def describe(self) -> str:
        return f"embedded (unix socket {self.socket_path})"


def start_embedded(
    state_dir: Path, stack: ExitStack, *, share: bool = False, wait: float = EMBEDDED_WAIT_S
) -> EmbeddedService:
    """Start the reference file service over `state_dir/embedded` on a Unix socket in that
    directory (`service.sock`), private to this user: both directories are made 0700, the
    socket is 0600, and no TCP port is opened. Stopped, and the socket removed, with the stack.

    One process serves a state dir at a time. When another one does, `share=True` (a probe)
    uses that service; otherwise this waits up to `wait` seconds for it to stop, then raises
    `StateLocked`."""
    from syncd.server.app import build_app
    from syncd.server.quietlogs import info_as_debug
    from syncd.server.runner import ServerThread
    from syncd.server.unixsock import SocketDir, private_dir

    state_dir = Path(state_dir).expanduser()
    private_dir(state_dir)
    sockdir = stack.enter_context(SocketDir(state_dir / "embedded"))  # closed last: clients use its fd
    service = EmbeddedService(sockdir.socket_path, sockdir.address)
    if not sockdir.try_lock():
        if share:
            return service
        if not sockdir.lock(wait):
            raise StateLocked(
                f"the embedded file service in {sockdir.path} is served by another syncd process"
            )
    sock = sockdir.bind()
    stack.callback(sockdir.remove)
    info_as_debug(SERVICE_LOGGERS, stack)  # the daemon's log is the daemon's: `-v` shows these
    try:
        server = ServerThread(build_app(sockdir.path), sock=sock).start()
    except BaseException:
        sock.close()
        raise
    stack.callback(server.stop)
    log.info("embedded file service", socket=str(sockdir.socket_path))
    return service
