"""SIGKILL at a random moment of a mixed sync, then a run to completion: nothing lost, nothing twice.

SPEC, "Persistence": killed at any moment (even `kill -9`), syncd restarts and
finishes the work with no loss, no duplicates, no partial files under a real
name and no leftover temp files. Each trial builds a two-way folder with every
kind of work at once - uploads of varied sizes (some multi-MiB), downloads put
there by another client, and both-sided edits (keep-both conflicts) - starts
the real command in a subprocess and kills it with SIGKILL after a delay drawn
from the trial's seed (so a failing trial can be replayed). Most trials kill
`syncd reconcile`; every third kills the daemon, `syncd run`, mid-start-up
pass. Then `syncd reconcile` runs until a pass plans nothing, and the audit
checks the whole state; both sides must also hold the same bytes.

The short version (default run) is 2 trials of 100 files; the full one
(`-m adversarial`) is 20 trials of 500 files.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.adversarial.audit import Ledger, audit, local_files, remote_files
from tests.adversarial.conftest import Audited
from tests.support.syncd_cli import Result, reconcile, write_config

pytestmark = pytest.mark.timeout(600)

FOLDER = "f"
MiB = 1024 * 1024
FINISH_RUNS = 4  # runs allowed to finish the work after the kill
STARTUP_S = 0.3  # interpreter start and imports, before any work
FILES_PER_S = 600  # a little faster than a pass works through this mix here: kills land while it works


@dataclass
class Trial:
    seed: int
    files: int
    tmp: Path
    url: str
    sdk: BddFileClient

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.chat = f"chat-kill-{self.seed}"
        self.sandbox = self.tmp / "home"
        self.folder = self.sandbox / FOLDER
        self.folder.mkdir(parents=True)
        self.state_dir = self.tmp / "state"
        self.config = write_config(
            self.tmp / "syncd.toml", state_dir=self.state_dir, url=self.url, settle=0, workers=4,
            folders=[{"name": FOLDER, "path": self.folder, "chat_id": self.chat}],
        )
        self.ledger = Ledger()

    def size(self, big_every: int, i: int) -> int:
        return 2 * MiB + self.rng.randrange(4096) if i % big_every == 0 else self.rng.randrange(0, 64 * 1024)

    def prepare(self) -> None:
        """Conflicts (edited on both sides after a first sync), then fresh uploads and downloads."""
        conflicted = [f"both-{i:03d}.txt" for i in range(max(2, self.files // 25))]
        for name in conflicted:
            self.ledger.write(self.folder, name, f"base of {name}\n".encode())
        first = reconcile(self.config)
        assert first.code == 0, first.stderr[-2000:]
        remote_ids = {info.filename: info.id for info in self.sdk.list_chat_files(chat_id=self.chat)}
        for name in conflicted:
            local_version = f"local edit of {name}, longer than before\n".encode()
            self.ledger.write(self.folder, name, local_version)
            self.ledger.conflict(name, local_version)
            self.ledger.put(self.sdk, self.chat, name, f"remote edit of {name}\n".encode() * 3)
            self.sdk.delete(file_id=remote_ids[name])
        rest = self.files - len(conflicted)
        for i in range(rest * 11 // 20):
            self.ledger.write(self.folder, f"up-{i:04d}.bin", self.rng.randbytes(self.size(40, i)))
        for i in range(rest * 9 // 20):
            self.ledger.put(self.sdk, self.chat, f"down-{i:04d}.bin", self.rng.randbytes(self.size(45, i + 7)))

    def argv(self) -> list[str]:
        command = ["run"] if self.seed % 3 == 2 else ["reconcile", "--json"]
        return [sys.executable, "-m", "syncd", *command, "-c", str(self.config)]

    def run_and_kill(self, delay: float) -> int | None:
        """Start the command and SIGKILL it after `delay` s; its exit code if it finished first."""
        env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
        proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
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

    def progress(self) -> str:
        """How many of the uploads and downloads were done when the command died."""
        remote = {info.filename for info in self.sdk.list_chat_files(chat_id=self.chat)}
        local = {p.name for p in self.folder.iterdir()}
        ups = [n for n in self.ledger.versions if n.startswith("up-")]
        downs = [n for n in self.ledger.versions if n.startswith("down-")]
        done = sum(n in remote for n in ups) + sum(n in local for n in downs)
        return f"{done}/{len(ups) + len(downs)} transfers done"

    def finish(self) -> list[Result]:
        """Run to completion: exit 0, then a pass that plans nothing; bounded."""
        runs: list[Result] = []
        for _ in range(FINISH_RUNS):
            result = reconcile(self.config)
            runs.append(result)
            if result.code == 0 and result.doc is not None and result.folder(FOLDER)["actions"] == []:
                return runs
        details = "\n".join(f"exit {r.code}: {r.stdout[:2000]} {r.stderr[-2000:]}" for r in runs)
        raise AssertionError(f"trial {self.seed} did not converge in {FINISH_RUNS} runs:\n{details}")


def kill_and_recover(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, seed: int, files: int
) -> None:
    trial = Trial(seed, files, tmp_path, server_url, sdk)
    trial.prepare()
    delay = trial.rng.uniform(STARTUP_S, STARTUP_S + files / FILES_PER_S)
    code = trial.run_and_kill(delay)
    progress = trial.progress()
    runs = trial.finish()
    for result in runs:
        assert result.doc is not None and result.doc["ok"], (result.stdout[-2000:], result.stderr[-2000:])

    remote = remote_files(sdk, trial.chat)
    local = local_files(trial.folder)
    differ = sorted(r.name for r in remote if r.data is not None and local.get(r.name) != r.data)
    assert differ == [], f"trial {seed}: the sides disagree on {differ[:20]}"
    what = trial.argv()[3]
    moment = f"killed at {delay:.2f} s, {progress}" if code is None else f"finished before {delay:.2f} s"
    audited(
        f"SIGKILL {what} trial {seed:02d} ({files} files, {moment})",
        audit(trial.ledger, folder=trial.folder, remote=remote, sandbox=tmp_path,
              allowed=[trial.state_dir, trial.config, server_data]),
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_a_killed_sync_recovers_without_loss_or_duplicates(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, seed: int
) -> None:
    kill_and_recover(tmp_path, server_url, server_data, sdk, audited, seed, files=100)


@pytest.mark.adversarial
@pytest.mark.parametrize("seed", range(100, 120))
def test_a_killed_sync_recovers_without_loss_or_duplicates_full(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, seed: int
) -> None:
    kill_and_recover(tmp_path, server_url, server_data, sdk, audited, seed, files=500)
