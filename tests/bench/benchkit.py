"""What the benchmark scripts share: a `syncd serve` subprocess, config files, test files, the
work directory and the JSON output.

The scripts run from anywhere (`.venv/bin/python tests/bench/...`); importing this module puts
the repository on the import path, so they write configs with the tests' own writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.syncd_cli import write_config  # noqa: E402

__all__ = ["Served", "free_port", "make_files", "serve", "serve_argv", "wait_healthy", "workdir", "write_config",
           "write_results"]

SERVE_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_argv(data: Path, port: int) -> list[str]:
    """The command line of `syncd serve` on loopback `port`, data under `data`."""
    return [sys.executable, "-m", "syncd", "serve", "--data", str(data), "--port", str(port)]


def wait_healthy(
    url: str, proc: subprocess.Popen[Any], *, timeout: float = SERVE_TIMEOUT, why: Callable[[], str] = str
) -> float:
    """Wait until `url/health` answers; the seconds it took. Fails if `proc` exits first
    (`why()` adds what its log says) or after `timeout`."""
    started = time.monotonic()
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return time.monotonic() - started
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(f"syncd serve exited {proc.returncode}: {why()}") from None
            if time.monotonic() - started > timeout:
                raise
            time.sleep(0.02)


@dataclass(frozen=True)
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    startup_s: float


@contextlib.contextmanager
def serve(data: Path, *, stderr: int | IO[Any] = subprocess.DEVNULL) -> Iterator[Served]:
    """`syncd serve` in a subprocess on a free loopback port, stopped on the way out."""
    port = free_port()
    proc = subprocess.Popen(serve_argv(data, port), stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Served(url, proc, wait_healthy(url, proc))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_files(folder: Path, count: int, size: int, prefix: str = "f") -> None:
    """`count` files of `size` random bytes, named PREFIX000000.bin and up."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}{i:06d}.bin").write_bytes(os.urandom(size))


@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    """`keep` (created, must not exist, kept afterwards for profiling or inspection), else a
    temporary directory (under `$SYNCD_BENCH_DIR` if set) removed afterwards."""
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=False)
        yield path
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("SYNCD_BENCH_DIR")) as tmp:
        yield Path(tmp)


def write_results(figures: dict[str, Any], out: str) -> None:
    Path(out).write_text(json.dumps(figures, indent=2))
