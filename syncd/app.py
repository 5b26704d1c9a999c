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
from syncd.engine import Engine
from syncd.folderfs import FolderFS
from syncd.queue import Queue
from syncd.remote.base import Remote
from syncd.remote.bdd import BddRemote
from syncd.state import State, open_state


@dataclass
class App:
    config: Config
    state: State
    queue: Queue
    remotes: Mapping[str, Remote]
    engine: Engine


def embedded_data_dir(config: Config) -> Path:
    return config.daemon.state_dir / "embedded"


def build_remotes(config: Config, stack: ExitStack) -> dict[str, Remote]:
    """One client per configured remote; `embedded` remotes share one in-process file service."""
    remotes: dict[str, Remote] = {}
    embedded_url: str | None = None
    used = {f.remote for f in config.folders}
    for name, rc in config.remotes.items():
        if name not in used:
            continue
        if rc.kind == "embedded":
            if embedded_url is None:
                embedded_url = start_embedded(config, stack)
            remotes[name] = make_client(rc, embedded_url)
        else:
            assert rc.url is not None
            remotes[name] = make_client(rc, rc.url)
        stack.callback(remotes[name].close)
    return remotes


def make_client(rc: RemoteConfig, url: str) -> BddRemote:
    return BddRemote(
        url, rc.user_id, api_key=rc.api_key(), timeout=rc.timeout, requests_per_minute=rc.requests_per_minute,
        max_connections=16,
    )


def start_embedded(config: Config, stack: ExitStack) -> str:
    """Start the reference file service on a free loopback port; stopped with the stack."""
    from syncd.server.app import build_app
    from syncd.server.runner import ServerThread

    server = ServerThread(build_app(embedded_data_dir(config))).start()
    stack.callback(server.stop)
    return server.url


@contextmanager
def open_app(
    config: Config,
    *,
    remotes: Mapping[str, Remote] | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[App]:
    """Everything a writing command needs, torn down in reverse order."""
    with ExitStack() as stack:
        state = open_state(config.daemon.state_dir)
        stack.callback(state.close)
        queue = Queue(state, clock=clock)
        queue.resume()  # leases of a process that died go back to pending
        live = dict(remotes) if remotes is not None else build_remotes(config, stack)
        for folder in config.folders:
            FolderFS(folder.path).clean_tmp()  # partial downloads of a crashed run
        engine = Engine(config, state, queue, live, clock=clock)
        yield App(config, state, queue, live, engine)
