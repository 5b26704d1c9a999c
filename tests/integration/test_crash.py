"""`syncd reconcile` killed with SIGKILL at random moments, then run to completion.

SPEC, "Persistence": killed at any moment, syncd restarts and finishes the
work with no loss, no duplicates, no partial files under a real name and no
leftover temp files. The folder holds a mix of work (uploads of varied sizes,
downloads, both-sided conflicts); each round starts the real command in a
subprocess and kills it after a delay drawn from a seeded generator, so a
failing seed can be replayed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.support.syncd_cli import Result, reconcile, write_config

pytestmark = pytest.mark.timeout(240)

CHAT = "chat-crash"
FOLDER = "f"
MiB = 1024 * 1024
MAX_KILL_DELAY = 1.2  # an uninterrupted pass over the initial work takes about 0.9 s here
FINISH_RUNS = 4  # runs allowed to finish the work after the last kill


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def conflicted_copy(name: str) -> re.Pattern[str]:
    stem, ext = os.path.splitext(name)
    return re.compile(re.escape(stem) + r" \(conflicted copy \d{4}-\d{2}-\d{2} \d{6}\)" + re.escape(ext))


class CrashBox:
    """A two-way folder whose sync is killed and restarted; remembers every legitimate content."""

    def __init__(self, tmp_path: Path, url: str, sdk: BddFileClient) -> None:
        self.tmp = tmp_path
        self.outside = tmp_path / "home"  # the folder's parent: nothing may appear here but the folder
        self.folder = self.outside / "f"
        self.state_dir = tmp_path / "state"
        self.config = tmp_path / "syncd.toml"
        self.sdk = sdk
        self.outside.mkdir()
        self.folder.mkdir()
        folder = {"name": FOLDER, "path": self.folder, "chat_id": CHAT}
        write_config(self.config, state_dir=self.state_dir, url=url, folders=[folder], settle=0, workers=3)
        self.expected: dict[str, set[bytes]] = {}  # name -> every content it may hold at the end
        self.conflict_locals: dict[str, bytes] = {}  # name -> local version that must survive as a copy

    def write(self, name: str, data: bytes) -> None:
        (self.folder / name).write_bytes(data)
        self.expected.setdefault(name, set()).add(data)

    def put(self, name: str, data: bytes) -> int:
        self.expected.setdefault(name, set()).add(data)
        return self.sdk.upload(stream=io.BytesIO(data), filename=name, size=len(data), biz_params={"chat_id": CHAT})

    def remote_by_name(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for info in self.sdk.list_chat_files(chat_id=CHAT):
            out.setdefault(info.filename, []).append(info)
        return out

    def fetch(self, file_id: int) -> bytes:
        buf = io.BytesIO()
        self.sdk.download(file_id=file_id, stream=buf)
        return buf.getvalue()

    def local(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.folder.iterdir() if p.name != ".syncd" and p.is_file()}

    def run(self) -> Result:
        return reconcile(self.config)

    def run_and_kill(self, delay: float) -> int | None:
        """Start a pass and SIGKILL it after `delay` s; its exit code if it finished first."""
        env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        try:
            proc.wait(timeout=delay)
            return proc.returncode
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def prepare(box: CrashBox, rng: random.Random) -> None:
    """Conflicts (after a first sync), then fresh uploads and downloads."""
    conflicted = [f"both-{i}.txt" for i in range(4)]
    for name in conflicted:
        box.write(name, f"base of {name}\n".encode())
    first = box.run()
    assert first.code == 0, first.stderr
    assert first.folder(FOLDER)["uploaded"] == len(conflicted)
    remote = box.remote_by_name()
    for name in conflicted:
        local_version = f"local edit of {name}, longer than before\n".encode()
        remote_version = f"remote edit of {name}\n".encode() * 3
        box.write(name, local_version)
        box.conflict_locals[name] = local_version
        new_id = box.put(name, remote_version)
        for info in remote[name]:
            box.sdk.delete(file_id=info.id)
        assert new_id
    # 60 local files to upload, a few of about 2 MiB.
    for i in range(60):
        size = 2 * MiB + rng.randrange(4096) if i % 20 == 0 else rng.randrange(0, 96 * 1024)
        box.write(f"up-{i:02d}.bin", rng.randbytes(size))
    # 40 remote files to download, uploaded by another client.
    for i in range(40):
        size = 2 * MiB + rng.randrange(4096) if i % 20 == 7 else rng.randrange(0, 64 * 1024)
        box.put(f"down-{i:02d}.bin", rng.randbytes(size))


def more_work(box: CrashBox, rng: random.Random, round_no: int) -> None:
    """Fresh work for the next killed pass, so every kill has something to interrupt."""
    for i in range(5):
        size = 2 * MiB if i == 0 and round_no % 2 else rng.randrange(0, 64 * 1024)
        box.write(f"more-up-{round_no:02d}-{i}.bin", rng.randbytes(size))
    for i in range(3):
        box.put(f"more-down-{round_no:02d}-{i}.bin", rng.randbytes(rng.randrange(0, 64 * 1024)))


def finish(box: CrashBox) -> list[Result]:
    """Run to completion: exit 0, then a pass that plans nothing; bounded."""
    runs: list[Result] = []
    for _ in range(FINISH_RUNS):
        result = box.run()
        runs.append(result)
        if result.code == 0 and result.doc is not None:
            report = result.folder(FOLDER)
            if report["actions"] == []:
                return runs
    details = "\n".join(f"exit {r.code}: {r.stdout[:2000]} {r.stderr[-2000:]}" for r in runs)
    raise AssertionError(f"did not converge in {FINISH_RUNS} runs:\n{details}")


def check_invariants(box: CrashBox) -> None:
    local = box.local()
    remote = box.remote_by_name()

    # Remote: exactly one `ok` copy of each name, with the local file's bytes; nothing else.
    not_ok = {n: [i.status.value for i in infos] for n, infos in remote.items()
              if any(i.status.value != "ok" for i in infos)}
    assert not not_ok, f"remote files not ok: {not_ok}"
    duplicated = {n: [i.id for i in infos] for n, infos in remote.items() if len(infos) > 1}
    assert not duplicated, f"duplicate remote copies: {duplicated}"
    assert set(remote) == set(local), (sorted(set(remote) ^ set(local)))
    for name, [info] in remote.items():
        data = box.fetch(info.id)
        assert data == local[name], f"{name}: remote bytes differ from the local file"
        assert info.hashcode == sha256(local[name]), f"{name}: remote hashcode is not the local sha256"

    # Local: every file whole, with bytes some side had for that name.
    copies: dict[str, list[str]] = {name: [] for name in box.conflict_locals}
    for name, data in local.items():
        if name in box.expected:
            assert data in box.expected[name], f"{name}: {len(data)} bytes that no side ever had"
            continue
        owner = next((n for n in box.conflict_locals if conflicted_copy(n).fullmatch(name)), None)
        assert owner is not None, f"unexpected local file {name!r}"
        assert data == box.conflict_locals[owner], f"{name}: conflicted copy does not hold the local version"
        copies[owner].append(name)
    missing = sorted(set(box.expected) - set(local))
    assert not missing, f"files lost: {missing}"
    # Nothing lost (keep-both): the local version lives on as a conflicted copy, the remote one holds the name.
    for name, found in copies.items():
        assert found, f"{name}: no conflicted copy, local version lost"
        assert local[name] != box.conflict_locals[name]

    # No leftovers: temp dir empty, no partial files anywhere we write, nothing outside the folder.
    tmp = box.folder / ".syncd" / "tmp"
    assert not tmp.is_dir() or list(tmp.iterdir()) == []
    parts = [p for root in (box.outside, box.state_dir) for p in root.rglob("*.part")]
    assert parts == []
    assert [p.name for p in box.outside.iterdir()] == ["f"]


def crash_and_recover(tmp_path: Path, server_url: str, sdk: BddFileClient, seed: int, kills: int) -> None:
    rng = random.Random(seed)
    box = CrashBox(tmp_path, server_url, sdk)
    prepare(box, rng)
    outcomes = []
    for round_no in range(kills):
        if round_no:
            more_work(box, rng, round_no)
        delay = rng.uniform(0, MAX_KILL_DELAY)
        outcomes.append((round(delay, 3), box.run_and_kill(delay)))
    assert any(code is None for _, code in outcomes), f"no pass was killed while working: {outcomes}"
    runs = finish(box)
    try:
        check_invariants(box)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}, kills (delay, exit) {outcomes}: {exc}") from exc
    # The finishing passes reported no failure.
    for result in runs:
        assert result.doc is not None and result.doc["ok"], json.dumps(result.doc)[:2000]


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_reconcile_recovers_without_loss_or_duplicates(
    tmp_path: Path, server_url: str, sdk: BddFileClient, seed: int
) -> None:
    started = time.monotonic()
    crash_and_recover(tmp_path, server_url, sdk, seed, kills=5)
    assert time.monotonic() - started < 60


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed", range(100, 105))
def test_killed_reconcile_recovers_soak(tmp_path: Path, server_url: str, sdk: BddFileClient, seed: int) -> None:
    crash_and_recover(tmp_path, server_url, sdk, seed, kills=25)
