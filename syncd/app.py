"""Wiring in one place: config -> state -> remotes -> queue -> engine.

Commands call `open_app`; tests pass their own remotes or clock instead of
patching anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from syncd.config import Config, RemoteConfig
from syncd.errors import StateLocked
from syncd.local.folderfs import FolderFS
from syncd.remote.base import Remote
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote
from syncd.remote.breaker import Breakers
from syncd.remote.retry import Abort
from syncd.state.db import State, open_state
from syncd.state.queue import Queue
from syncd.sync.engine import Engine

log = structlog.get_logger("syncd.app")


@dataclass
class App:
    config: Config
    state: State
    queue: Queue
    remotes: Mapping[str, Remote]
    engine: Engine
    remote_set: RemoteSet | None = None


class RemoteSet:
    """The clients of a config's remotes, kept across config reloads: a remote whose settings
    did not change keeps its client, and the embedded file service is started once.

    With `breakers`, each client's retries stop early while its remote's breaker is open.
    `share_embedded`: see `start_embedded` (for probes that take no state lock)."""

    def __init__(
        self, state_dir: Path, stack: ExitStack, breakers: Breakers | None = None, *, share_embedded: bool = False
    ) -> None:
        self._state_dir = state_dir
        self._stack = stack
        self._breakers = breakers
        self._share_embedded = share_embedded
        self._embedded_service: EmbeddedService | None = None
        self._clients: dict[RemoteConfig, Remote] = {}

    def build(self, config: Config) -> dict[str, Remote]:
        """One client per remote that a folder uses."""
        remotes: dict[str, Remote] = {}
        used = {f.remote for f in config.folders}
        for name, rc in config.remotes.items():
            if name not in used:
                continue
            client = self._clients.get(rc)
            if client is None:
                abort = self._breakers.get(name).tripped if self._breakers is not None else None
                if rc.kind == "embedded":
                    client = embedded_client(rc, self._embedded(), abort=abort)
                else:
                    client = make_client(rc, str(rc.url), abort=abort)
                self._stack.callback(client.close)
                self._clients[rc] = client
            remotes[name] = client
        return remotes

    def close(self) -> None:
        """Close every client now (aborts transfers in flight); closing twice is harmless."""
        for client in self._clients.values():
            client.close()

    def _embedded(self) -> EmbeddedService:
        if self._embedded_service is None:
            self._embedded_service = start_embedded(self._state_dir, self._stack, share=self._share_embedded)
        return self._embedded_service


def build_remotes(config: Config, stack: ExitStack) -> dict[str, Remote]:
    """One client per configured remote, for a probe (`syncd check`), which takes no state lock:
    `embedded` remotes share one file service, the running daemon's when there is one."""
    return RemoteSet(config.daemon.state_dir, stack, share_embedded=True).build(config)


def make_client(rc: RemoteConfig, url: str, *, abort: Abort | None = None) -> BddRemote:
    """The client of one remote; `abort` (its breaker's `tripped`) cuts its retry loops short."""
    return BddRemote(BddClient(
        url, rc.user_id, api_key=rc.api_key(), timeout=rc.timeout, requests_per_minute=rc.requests_per_minute,
        max_connections=_MAX_CONNECTIONS, abort=abort,
    ))


def embedded_client(rc: RemoteConfig, service: EmbeddedService, *, abort: Abort | None = None) -> BddRemote:
    """The client of an embedded remote: HTTP over the service's Unix socket."""
    limits = httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_CONNECTIONS)
    return BddRemote(BddClient(
        EMBEDDED_BASE_URL, rc.user_id, api_key=rc.api_key(), timeout=rc.timeout,
        requests_per_minute=rc.requests_per_minute, abort=abort, origin=service.describe(),
        transport=httpx.HTTPTransport(uds=service.address, limits=limits),
    ))


_MAX_CONNECTIONS = 16
#: The base URL of requests over the embedded remote's socket. Only its path part matters; the
#: host (a name that never resolves, RFC 2606) is what the service's signed download URLs carry.
EMBEDDED_BASE_URL = "http://syncd-embedded.invalid"
#: How long a writer waits for another process (a `syncd check` probing) to stop serving.
EMBEDDED_WAIT_S = 30.0


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
    try:
        server = ServerThread(build_app(sockdir.path), sock=sock).start()
    except BaseException:
        sock.close()
        raise
    stack.callback(server.stop)
    log.info("embedded file service", socket=str(sockdir.socket_path))
    return service


@contextmanager
def open_app(
    config: Config,
    *,
    remotes: Mapping[str, Remote] | None = None,
    clock: Callable[[], float] = time.time,
    rebuild_journal: bool = False,
) -> Iterator[App]:
    """Everything a writing command needs, torn down in reverse order.

    `rebuild_journal`: set the state database aside first (kept, renamed) and start from an
    empty journal, which the next pass rebuilds as a first sync (nothing is deleted)."""
    with ExitStack() as stack:
        state = open_state(config.daemon.state_dir, set_aside=rebuild_journal)
        stack.callback(state.close)
        queue = Queue(state, clock=clock)
        queue.resume()  # leases of a process that died go back to pending
        breakers = Breakers(clock=clock)  # one per remote, shared by its client and the engine
        remote_set = None
        if remotes is None:
            remote_set = RemoteSet(config.daemon.state_dir, stack, breakers)
            remotes = remote_set.build(config)
        live = dict(remotes)
        for folder in config.folders:
            FolderFS(folder.path).clean_tmp()  # partial downloads of a crashed run
        engine = Engine(config, state, queue, live, clock=clock, breakers=breakers)
        yield App(config, state, queue, live, engine, remote_set)
