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

from syncd.config import Config, RemoteConfig
from syncd.local.folderfs import FolderFS
from syncd.remote import kinds
from syncd.remote.base import Remote
from syncd.remote.breaker import Breakers
from syncd.remote.kind import OpenContext, Services
from syncd.state.db import State, open_state
from syncd.state.queue import Queue
from syncd.sync.engine import Engine
from syncd.sync.firstrun import check_new_folders


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
    did not change keeps its client, and what kinds share between remotes (a service they run
    in-process) is started once.

    Each client is opened by its remote's kind (`syncd.remote.kinds`). With `breakers`, each
    client's retries stop early while its remote's breaker is open. `probe`: the caller holds no
    state lock (`syncd check`), see `OpenContext`."""

    def __init__(
        self, state_dir: Path, stack: ExitStack, breakers: Breakers | None = None, *, probe: bool = False
    ) -> None:
        self._state_dir = state_dir
        self._stack = stack
        self._breakers = breakers
        self._probe = probe
        self._services = Services()
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
                context = OpenContext(self._state_dir, self._stack, abort, self._probe, self._services)
                client = kinds.get(rc.kind).open(rc, context)
                self._stack.callback(client.close)
                self._clients[rc] = client
            remotes[name] = client
        return remotes

    def close(self) -> None:
        """Close every client now (aborts transfers in flight); closing twice is harmless."""
        for client in self._clients.values():
            client.close()


def build_remotes(config: Config, stack: ExitStack) -> dict[str, Remote]:
    """One client per configured remote, for a probe (`syncd check`), which takes no state lock:
    what the remotes' kinds run in-process is shared with the running daemon when there is one."""
    return RemoteSet(config.daemon.state_dir, stack, probe=True).build(config)


@contextmanager
def open_app(
    config: Config,
    *,
    remotes: Mapping[str, Remote] | None = None,
    clock: Callable[[], float] = time.time,
    rebuild_journal: bool = False,
    dry_run: bool = False,
) -> Iterator[App]:
    """Everything a writing command needs, torn down in reverse order.

    `rebuild_journal`: set the state database aside first (kept, renamed) and start from an
    empty journal, which the next pass rebuilds as a first sync (nothing is deleted).
    `dry_run`: plan only (`reconcile --dry-run`): the state is read without the writer lock and
    never written, so it works next to a running daemon, whose in-process services (the
    embedded remote) it shares; nothing left by a crashed run is cleaned up."""
    with ExitStack() as stack:
        state = open_state(config.daemon.state_dir, set_aside=rebuild_journal, read_only=dry_run)
        stack.callback(state.close)
        # Before anything starts: a new folder on a disk that is not mounted is a config error.
        check_new_folders(config, lambda name: state.journal_count(name) > 0)
        queue = Queue(state, clock=clock)
        if not dry_run:
            queue.resume()  # leases of a process that died go back to pending
        breakers = Breakers(clock=clock)  # one per remote, shared by its client and the engine
        remote_set = None
        if remotes is None:
            remote_set = RemoteSet(config.daemon.state_dir, stack, breakers, probe=dry_run)
            remotes = remote_set.build(config)
        live = dict(remotes)
        for folder in config.folders if not dry_run else ():
            FolderFS(folder.path).clean_tmp()  # partial downloads of a crashed run
        engine = Engine(config, state, queue, live, clock=clock, breakers=breakers)
        yield App(config, state, queue, live, engine, remote_set)
