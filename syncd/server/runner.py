"""Running the file service: in the foreground (`syncd serve`) or in a thread
(the embedded remote, and the tests)."""

from __future__ import annotations

import signal
import socket
import threading
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from syncd.server.guard import guarded_protocol
from syncd.server.lograte import install_log_rate_limit
from syncd.server.servelimits import ServeLimits


def _config(app: Starlette, host: str, port: int, limits: ServeLimits) -> uvicorn.Config:
    install_log_rate_limit()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",  # the service expires abandoned uploads while it runs
        # Signed URLs must not take their scheme or host from a client's X-Forwarded-* headers.
        proxy_headers=False,
        loop="syncd.server.acceptloop:new_event_loop",  # an accept loop that does not spin when descriptors run out
        http=guarded_protocol(limits),  # h11 with the header/body/send deadlines and the connection limit
        ws="none",  # no WebSocket endpoints: an upgrade must not leave the guarded protocol
        timeout_keep_alive=limits.keep_alive_timeout,
        timeout_graceful_shutdown=limits.shutdown_timeout,
    )


def listen(host: str, port: int, backlog: int = 2048) -> list[socket.socket]:
    """Listening sockets on `port` at every address `host` resolves to (as asyncio's
    `create_server` binds them: address reuse on, IPv6 sockets IPv6 only).

    Bound here, before the service starts, so that a port in use or an address that is not
    this machine's is an `OSError` the caller turns into a clear message; uvicorn would log
    the error and exit on its own, with its own status. `socket.gaierror` when `host` does not
    resolve."""
    sockets: list[socket.socket] = []
    try:
        seen: set[tuple[int, object]] = set()
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve_forever(app: Starlette, sockets: list[socket.socket], limits: ServeLimits | None = None) -> None:
    """Serve on `sockets` (from `listen`) until SIGINT/SIGTERM, then return normally (exit
    status 0); the sockets are closed on return.

    uvicorn handles the signals for a graceful shutdown (at most `limits.shutdown_timeout`
    seconds) and afterwards re-raises them at the handlers it found installed; ours swallow
    them, so a service manager sees a clean stop rather than death by signal.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    host, port = sockets[0].getsockname()[:2]
    try:
        uvicorn.Server(_config(app, host, port, limits or ServeLimits())).run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


class ServerThread:
    """The file service in a background thread: on a loopback port, or on a socket given.

    `port=0` picks a free port; `.url` is the base URL once started. With `sock` (a bound,
    listening socket, e.g. the embedded remote's Unix socket from `syncd.server.unixsock`),
    the service accepts on that socket only and opens no port; `.url` stays empty for a Unix
    socket. `stop` closes the socket; removing its file is the caller's business. The limits
    on clients are `syncd serve`'s defaults unless given.
    """

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServeLimits | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> None:
        self.app = app
        self.limits = limits or ServeLimits()
        self._server = uvicorn.Server(_config(app, host, port, self.limits))
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="syncd-file-service", daemon=True)
        self._failed: BaseException | None = None
        self.url = ""

    def _run(self) -> None:
        try:
            self._server.run(sockets=None if self._sock is None else [self._sock])  # on the config's loop
        except BaseException as exc:  # surfaced by start()
            self._failed = exc

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        ready = threading.Event()

        def poll() -> None:
            while not (self._server.started or self._failed or not self._thread.is_alive()):
                ready.wait(0.01)

        poll_thread = threading.Thread(target=poll)
        poll_thread.start()
        poll_thread.join(timeout)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"file service did not start: {self._failed!r}")
        listener = self._server.servers[0].sockets[0]
        if listener.family in (socket.AF_INET, socket.AF_INET6):
            host, port = listener.getsockname()[:2]
            self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=self.limits.shutdown_timeout + 10)
        if self._sock is not None:
            self._sock.close()  # uvicorn closes it too once it served; not when it never started
        service = getattr(self.app.state, "service", None)  # after the lifespan ended
        if service is not None:
            service.store.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
