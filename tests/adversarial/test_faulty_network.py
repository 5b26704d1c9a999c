"""A two-way sync over a network that misbehaves on every kind of request.

A `FaultProxy` sits between `syncd reconcile` and the reference file service;
a seeded random rule gives each request what a bad network gives: 20 % 503,
5 % a 500 *after* the service acted (the ambiguous failure: the upload was
stored, the delete was done), 5 % connection resets (half of them after the
service acted), 2 % stalls past the client's timeout, and some `/downloadFile`
answers cut short after announcing their full length. Another client (the
published SDK, straight to the service) adds and edits remote files.

The scenario: local files to upload and remote files to download, synced
until converged; then one-sided edits on each side and edits of one name on
both sides (keep-both conflicts), synced until converged again. Each pass is
the real command in a subprocess; a pass may fail (exit 1, the work stays in
the persistent queue), and the next `reconcile` makes it due at once (it is
"urgent" and revives failed rows), so no `syncd retry` is needed in between.
Convergence is bounded: a pass that exits 0 followed by one that plans nothing,
within `MAX_RUNS` passes.

What it proves: whatever the network does, no file is lost, none is uploaded
twice (the "look for the copy the failed attempt made" rule), no truncated
download ever lands under a real name, nothing is written outside the folder,
the command never crashes with a traceback, and every kind of fault was
actually met. FULL: 500 names; SHORT (default suite): 40.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.adversarial.audit import Ledger, audit, remote_files
from tests.adversarial.conftest import Audited
from tests.support import syncd_cli
from tests.support.faultproxy import (
    Fault,
    FaultProxy,
    Reset,
    Seen,
    Stall,
    Truncate,
    error_after_forward,
    unavailable,
)
from tests.support.syncd_cli import Result, reconcile, write_config

CHAT = "chat-net"
FOLDER = "net"
SEED = 20_240_611
#: The client's timeout (s): every stall outlasts it. Generous enough for a loaded 2-core machine.
TIMEOUT = 2.0
#: Passes allowed to converge, per phase.
MAX_RUNS = 8
#: Cumulative thresholds of one roll per request: what share of requests meets which fault.
ROLLS: tuple[tuple[float, str], ...] = (
    (0.20, "503"),
    (0.25, "500 after forward"),
    (0.30, "reset"),
    (0.32, "stall"),
)
#: Share of the remaining `/downloadFile` answers that are cut short.
TRUNCATED = 0.10
KINDS = ("503", "500 after forward", "reset", "reset after forward", "stall", "truncate")


@dataclass
class Weather:
    """The proxy's rule: a seeded random fault per request, and a tally of what was injected.

    Requests arrive on many threads, so which request meets which roll varies from run
    to run; the sequence of rolls (and so the mix of faults) is fixed by the seed.
    """

    seed: int
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def __call__(self, seen: Seen) -> Fault | None:
        with self._lock:
            roll, coin = self._rng.random(), self._rng.random()
        kind = next((name for limit, name in ROLLS if roll < limit), None)
        if kind is None and seen.path == "/downloadFile" and roll < ROLLS[-1][0] + TRUNCATED:
            kind = "truncate"
        if kind == "reset" and coin < 0.5:
            kind = "reset after forward"
        if kind is None:
            return None
        with self._lock:
            self.injected[kind] += 1
        return _fault(kind, coin)


def _fault(kind: str, coin: float) -> Fault:
    if kind == "503":
        return unavailable()
    if kind == "500 after forward":
        return error_after_forward(500)
    if kind.startswith("reset"):
        return Reset(forward_first=kind == "reset after forward")
    if kind == "stall":
        return Stall(seconds=TIMEOUT * 4)
    return Truncate(keep=int(coin * 100))  # every file is longer than 100 bytes


@dataclass
class Scene:
    """Folder `net` synced with chat `chat-net` through the proxy; the SDK edits the remote directly."""

    tmp: Path
    sdk: BddFileClient
    proxy: FaultProxy
    ledger: Ledger = field(default_factory=Ledger)
    weather: Weather = field(default_factory=lambda: Weather(SEED))
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))

    def __post_init__(self) -> None:
        self.proxy.rule = self.weather
        self.folder = self.tmp / FOLDER
        self.folder.mkdir()
        self.state_dir = self.tmp / "state"
        self.config = write_config(
            self.tmp / "syncd.toml", state_dir=self.state_dir, url=self.proxy.url, workers=4, timeout=TIMEOUT,
            folders=[{"name": FOLDER, "path": self.folder, "chat_id": CHAT}],
        )

    def content(self, name: str, version: str) -> bytes:
        """Bytes no other (name, version) has, between 200 B and 6 KiB."""
        head = f"{name} {version}\n".encode()
        return head + self.rng.randbytes(self.rng.randint(200, 6000))

    def write(self, name: str, version: str) -> bytes:
        data = self.content(name, version)
        self.ledger.write(self.folder, name, data)
        return data

    def put(self, name: str, version: str) -> None:
        self.ledger.put(self.sdk, CHAT, name, self.content(name, version))

    def edit_remote(self, name: str, version: str) -> None:
        """What another client does to change a file: upload the new version, delete the old."""
        old = [f.id for f in self.sdk.list_chat_files(chat_id=CHAT) if f.filename == name]
        self.put(name, version)
        for file_id in old:
            self.sdk.delete(file_id=file_id)

    def converge(self) -> list[Result]:
        """Reconcile until a pass exits 0 and the next one plans nothing; every pass, for the message."""
        runs: list[Result] = []
        while len(runs) < MAX_RUNS:
            result = reconcile(self.config)
            assert "Traceback" not in result.stderr, result.stderr
            assert result.doc is not None, f"exit {result.code}, no JSON report; stderr:\n{result.stderr}"
            settled = bool(runs) and runs[-1].code == 0 and result.code == 0
            runs.append(result)
            if settled and result.folder(FOLDER)["actions"] == []:
                return runs
        raise AssertionError(f"no convergence in {MAX_RUNS} passes; last:\n" + _summary(runs[-1]))


def _summary(result: Result) -> str:
    failed = [a for a in result.folder(FOLDER)["actions"] if a["status"] == "failed"]
    return f"exit {result.code}, {len(failed)} failed, e.g. {failed[:3]}"


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(server_url) as running:
        yield running


def run_scenario(files: int, tmp_path: Path, sdk: BddFileClient, proxy: FaultProxy) -> Scene:
    """The two phases over `files` names (a multiple of 5), faults on from the first request."""
    scene = Scene(tmp_path, sdk, proxy)
    groups: dict[int, list[str]] = {g: [] for g in range(5)}
    for i in range(files):
        groups[i % 5].append(f"{('up', 'down', 'mine', 'theirs', 'both')[i % 5]}-{i:04d}.bin")

    # Phase 1: new on one side. Groups 0, 2, 4 start local, 1 and 3 remote.
    for name in groups[0] + groups[2] + groups[4]:
        scene.write(name, "v1")
    for name in groups[1] + groups[3]:
        scene.put(name, "v1")
    scene.converge()

    # Phase 2: one-sided edits on each side, and both sides edited (keep-both conflicts).
    for name in groups[2]:
        scene.write(name, "v2 local")
    for name in groups[3]:
        scene.edit_remote(name, "v2 remote")
    for name in groups[4]:
        scene.ledger.conflict(name, scene.write(name, "v2 local"))
        scene.edit_remote(name, "v2 remote")
    scene.converge()
    proxy.clear()
    return scene


def check(scene: Scene, audited: Audited, scenario: str, server_data: Path, kinds: tuple[str, ...]) -> None:
    """Audit both sides and check the faults in `kinds` were injected."""
    weather = scene.weather
    counts = audit(
        scene.ledger, folder=scene.folder, remote=remote_files(scene.sdk, CHAT), sandbox=scene.tmp,
        allowed=[scene.state_dir, scene.config, server_data],
    )
    audited(scenario, counts)
    missing = [kind for kind in kinds if not weather.injected[kind]]
    assert not missing, f"faults never met: {missing} (injected: {dict(weather.injected)})"


@pytest.mark.adversarial
@pytest.mark.timeout(1800)
def test_faulty_network_full(
    tmp_path: Path, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(syncd_cli, "COMMAND_TIMEOUT", 600.0)  # one pass over 500 files under faults
    scene = run_scenario(500, tmp_path, sdk, proxy)
    check(scene, audited, "faulty network", server_data, KINDS)


@pytest.mark.timeout(300)
def test_faulty_network_short(
    tmp_path: Path, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited
) -> None:
    scene = run_scenario(40, tmp_path, sdk, proxy)
    check(scene, audited, "faulty network (short)", server_data, ("503", "500 after forward"))
