"""What the benchmark scripts share: a `syncd serve` subprocess (or the URL of one already
running), config files, test files, `syncd reconcile` runs with their wall time and peak memory,
curl's command lines for one file up and down, the work directory and the JSON output.

The scripts run from anywhere (`.venv/bin/python tests/bench/...`); importing this module puts
the repository on the import path, so they write configs with the tests' own writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
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

__all__ = [
    "PAGE", "USER", "WORKERS", "Measured", "Row", "Served", "curl_download", "curl_upload", "curl_version",
    "free_port", "list_chat", "make_big_file", "make_files", "parse_size", "peak_rss", "print_rows", "reconcile",
    "run_measured", "serve", "serve_argv", "server_url", "sha256_file", "syncd_env", "wait_healthy", "workdir",
    "write_config", "write_results",
]

SERVE_TIMEOUT = 30.0
#: How often a measured subprocess's peak RSS is sampled.
RSS_POLL = 0.02
#: The user every benchmark acts as, the page size of its listings, syncd's worker count.
USER = "u"
PAGE = 1000
WORKERS = 4


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


@contextlib.contextmanager
def server_url(url: str | None, data: Path) -> Iterator[str]:
    """`url` when given (a `syncd serve` someone else runs), else a fresh `syncd serve` on `data`
    for the duration."""
    if url is not None:
        yield url
        return
    with serve(data) as server:
        yield server.url


def vm_hwm(pid: int) -> int | None:
    """Peak resident memory (VmHWM) of process `pid` in bytes; None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss(pid: int) -> int:
    """Peak resident memory (VmHWM) of the live process `pid`, in bytes."""
    peak = vm_hwm(pid)
    if peak is None:
        raise RuntimeError(f"no VmHWM for process {pid}")
    return peak


def syncd_env() -> dict[str, str]:
    """This environment without `SYNCD_CONFIG`, so only `-c` says which config a command reads."""
    return {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}


@dataclass(frozen=True)
class Measured:
    """One finished subprocess: wall time, exit code, peak RSS (bytes, VmHWM) and output."""

    seconds: float
    returncode: int
    peak_rss: int
    stdout: str
    stderr: str


class PeakWatcher:
    """Samples a process's VmHWM every RSS_POLL seconds in a thread until stopped; the highest
    reading is its peak RSS (VmHWM only grows, so only the last RSS_POLL before exit can be missed).

    Not wait4's `ru_maxrss`: that also counts the memory of the parent the child was spawned from.
    """

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, vm_hwm(self.pid) or 0)
            self._stop.wait(RSS_POLL)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_measured(argv: list[str]) -> Measured:
    """Run `argv` to completion; its wall time from spawn to exit and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=syncd_env())
        watcher = PeakWatcher(proc.pid)
        proc.wait()
        elapsed = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Measured(
            seconds=elapsed,
            returncode=proc.returncode,
            peak_rss=watcher.stop(),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def reconcile(config: Path) -> tuple[Measured, dict[str, Any]]:
    """`syncd reconcile -c config --json` in a fresh interpreter, as cron would run it: how it
    went, and its summary. Fails unless it exits 0."""
    done = run_measured([sys.executable, "-m", "syncd", "reconcile", "-c", str(config), "--json"])
    if done.returncode != 0:
        raise RuntimeError(f"syncd reconcile exited {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}")
    return done, json.loads(done.stdout.strip().splitlines()[-1])


# -- curl -----------------------------------------------------------------------------------

#: What every curl command line starts with: quiet but for errors, failing on an HTTP error, as USER.
CURL_HEADER = ["-sS", "--fail-with-body", "-H", f"X-User-Id: {USER}"]


def curl_version(curl: str | None) -> str | None:
    """`curl 7.88.1` for the curl at `curl`; None without one."""
    if curl is None:
        return None
    out = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False)
    return " ".join(out.stdout.split()[:2]) or None


def curl_checked(argv: list[str]) -> Measured:
    """`run_measured(argv)` of a curl command line; fails unless it exits 0."""
    done = run_measured(argv)
    if done.returncode != 0:
        raise RuntimeError(f"curl exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def curl_upload(curl: str, url: str, src: Path, chat_id: str) -> tuple[Measured, int]:
    """`curl -F` of `src` to `/uploadSimpleFile` with the `params` JSON (filename, biz, biz_params,
    size; no hashcode, the server computes it): how the curl process went and the new file's id."""
    params = {"filename": src.name, "biz": "chat", "biz_params": {"chat_id": chat_id}, "size": src.stat().st_size}
    done = curl_checked([
        curl, *CURL_HEADER, "--form-string", f"params={json.dumps(params)}",
        "-F", f"file=@{src};type=application/octet-stream", f"{url}/uploadSimpleFile",
    ])
    answer = json.loads(done.stdout)
    if answer.get("code") != 0:
        raise RuntimeError(f"curl upload refused: {answer}")
    return done, int(answer["data"])


def curl_download(curl: str, url: str, file_id: int, dst: Path) -> Measured:
    """`curl -o dst` from `/downloadFile`: how the curl process went."""
    return curl_checked([curl, *CURL_HEADER, "-o", str(dst), f"{url}/downloadFile?file_id={file_id}"])


def list_chat(url: str, chat_id: str) -> list[dict[str, Any]]:
    """Every item of the chat's file list, page by page."""
    items: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, timeout=60) as client:
        offset = 0
        while True:
            r = client.get("/listChatFiles", params={"chat_id": chat_id, "offset": offset, "limit": PAGE})
            r.raise_for_status()
            data = r.json()["data"]
            items.extend(data["items"])
            offset += len(data["items"])
            if not data["items"] or offset >= data["total"]:
                return items


def make_files(folder: Path, count: int, size: int, prefix: str = "f") -> None:
    """`count` files of `size` random bytes, named PREFIX000000.bin and up."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}{i:06d}.bin").write_bytes(os.urandom(size))


def make_big_file(path: Path, size: int) -> None:
    """`size` random-looking bytes in 4 MiB blocks, each followed by 16 fresh bytes (no two blocks alike)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(4 * 1024 * 1024)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            tail = min(16, size - written - n)
            f.write(block[:n])
            f.write(os.urandom(16)[:tail])
            written += n + tail


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def parse_size(text: str) -> int:
    """`1G`, `32M`, `512K` or a plain number of bytes (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


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


@dataclass(frozen=True)
class Row:
    """One figure against its target: `met` is None when it could not be measured."""

    figure: str
    value: str
    target: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return "n/a" if self.met is None else "MET" if self.met else "MISSED"


def print_rows(rows: list[Row]) -> None:
    width = max(len(row.figure) for row in rows) + 2
    print(f"{'target':<{width}}{'value':>18}  {'wanted':<12}  result")
    for row in rows:
        print(f"{row.figure:<{width}}{row.value:>18}  {row.target:<12}  {row.verdict}")


def write_results(figures: dict[str, Any], out: str) -> None:
    Path(out).write_text(json.dumps(figures, indent=2))
