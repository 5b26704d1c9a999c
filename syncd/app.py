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

from syncd.breaker import Breakers
from syncd.config import Config, RemoteConfig
from syncd.engine import Engine
from syncd.folderfs import FolderFS
from syncd.queue import Queue
from syncd.remote.base import Remote
from syncd.remote.bdd import BddRemote
from syncd.remote.retry import Abort
from syncd.state import State, open_state


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

    With `breakers`, each client's retries stop early while its remote's breaker is open."""

    def __init__(self, state_dir: Path, stack: ExitStack, breakers: Breakers | None = None) -> None:
        self._state_dir = state_dir
        self._stack = stack
        self._breakers = breakers
        self._embedded_url: str | None = None
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
                client = make_client(rc, self._embedded() if rc.kind == "embedded" else str(rc.url), abort=abort)
                self._stack.callback(client.close)
                self._clients[rc] = client
            remotes[name] = client
        return remotes

    def close(self) -> None:
        """Close every client now (aborts transfers in flight); closing twice is harmless."""
        for client in self._clients.values():
            client.close()

    def _embedded(self) -> str:
        if self._embedded_url is None:
            self._embedded_url = start_embedded(self._state_dir / "embedded", self._stack)
        return self._embedded_url


def build_remotes(config: Config, stack: ExitStack) -> dict[str, Remote]:
    """One client per configured remote; `embedded` remotes share one in-process file service."""
    return RemoteSet(config.daemon.state_dir, stack).build(config)


def make_client(rc: RemoteConfig, url: str, *, abort: Abort | None = None) -> BddRemote:
    """The client of one remote; `abort` (its breaker's `tripped`) cuts its retry loops short."""
    return BddRemote(
        url, rc.user_id, api_key=rc.api_key(), timeout=rc.timeout, requests_per_minute=rc.requests_per_minute,
        max_connections=16, abort=abort,
    )


def start_embedded(data_dir: Path, stack: ExitStack) -> str:
    """Start the reference file service on a free loopback port; stopped with the stack."""
    from syncd.server.app import build_app
    from syncd.server.runner import ServerThread

    server = ServerThread(build_app(data_dir)).start()
    stack.callback(server.stop)
    return server.url


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
