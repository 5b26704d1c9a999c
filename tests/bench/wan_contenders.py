"""The contenders of the WAN benchmark, each one pass of one job through the latency proxy, and
the direct (proxy-less) set-up they start from.

- `syncd`: `syncd reconcile -c CONFIG --json` in a fresh interpreter (interpreter start included),
  `WORKERS` workers, as cron would run it. Its CPU is the child's user + sys time.
- `SDK`: the published `bdd_file` client in this process (`sync_chat_files_to_remote` /
  `sync_chat_files_to_local`: a thread pool of its default size, a new connection per call).
- `bare`: one pooled httpx client at `BARE_CONNECTIONS` connections and as many threads in this
  process, a simple upload or a streamed download per file: the floor at that concurrency.
  Its mixed pass is told which names changed on which side (it only lists to find the remote ids).
- `curl` (the big-file jobs only, when `curl` is on the PATH): benchkit's `curl -F` to
  `/uploadSimpleFile` / `curl -o` from `/downloadFile`, one process and one connection per file,
  as big_file.py runs it. It is handed the file id (no listing), so it is the transfer alone.
  Its CPU is the child's user + sys time, as syncd's.

In-process contenders' CPU is this process's `time.process_time()` delta (the proxy runs in a
child process, so it is not in it). The child contenders' peak RSS is their VmHWM, sampled while
they run (benchkit.run_measured); the in-process ones have none of their own.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchkit
import httpx
from benchkit import USER, WORKERS, Measured, curl_download, curl_upload, list_chat, write_config
from reconcile_bench import digests, download_sdk, upload_sdk

#: Connections (and threads) of the bare loop.
BARE_CONNECTIONS = 16
#: The remote's request timeout in syncd's configs, seconds (a 1 GiB file over a slow link).
TIMEOUT = 300.0

SYNCD, SDK, BARE, CURL = "syncd", "SDK", "bare", "curl"
#: The contenders of every job; the big-file jobs add curl.
CONTENDERS = (SYNCD, SDK, BARE)
#: Every contender, in the table's order.
COLUMNS = (*CONTENDERS, CURL)
#: curl on the PATH, or None (then its figures are unavailable).
CURL_PATH = shutil.which("curl")


@dataclass(frozen=True)
class Sample:
    """One timed pass: wall seconds, the client's CPU seconds, connections the proxy accepted,
    the client process's peak RSS in bytes (None for an in-process contender) and the sha256 of
    the copy its check found identical (None where a pass moves many files)."""

    seconds: float
    cpu_s: float
    connections: int
    peak_rss: int | None = None
    sha256: str | None = None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(job: Callable[[], object], connections: Callable[[], int], *, child: bool) -> Sample:
    """Run `job`; its wall time, its CPU (reaped children's when `child`, else this process's),
    the connections opened meanwhile, and the peak RSS of the process it ran when it returns
    that process's `Measured`."""
    c0, k0, p0, t0 = connections(), children_cpu(), time.process_time(), time.monotonic()
    done = job()
    elapsed = time.monotonic() - t0
    cpu = children_cpu() - k0 if child else time.process_time() - p0
    rss = done.peak_rss if isinstance(done, Measured) else None
    return Sample(elapsed, cpu, connections() - c0, rss)


# -- syncd -----------------------------------------------------------------------------------


def syncd_config(path: Path, url: str, folder: Path, chat_id: str, state: Path) -> Path:
    """A config at `path` with one two-way folder on `chat_id`, its state in `state`."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(
        path, state_dir=state, url=url, workers=WORKERS, timeout=TIMEOUT,
        folders=[{"name": "f", "path": folder, "chat_id": chat_id}],
    )


def syncd_run(config: Path) -> tuple[Measured, dict[str, Any]]:
    """One `syncd reconcile`: how the process went (wall time, peak RSS) and the folder's report.
    Fails unless it ends ok."""
    done, summary = benchkit.reconcile(config)
    if not summary.get("ok"):
        raise RuntimeError(f"syncd reconcile not ok: {summary}")
    return done, dict(summary["folders"][0])


def syncd_pass(config: Path) -> dict[str, Any]:
    """One `syncd reconcile`; the folder's report. Fails unless it ends ok."""
    return syncd_run(config)[1]


def syncd_measured(config: Path) -> Measured:
    """One `syncd reconcile`, for `measure`: how the process went. Fails unless it ends ok."""
    return syncd_run(config)[0]


# -- bare ------------------------------------------------------------------------------------


def pooled(url: str, connections: int = BARE_CONNECTIONS) -> httpx.Client:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(base_url=url, headers={"X-User-Id": USER}, limits=limits, timeout=TIMEOUT)


def put_file(client: httpx.Client, path: Path, chat_id: str, name: str | None = None) -> int:
    """A simple upload of `path` (as `name`) into the chat; the new file's id."""
    name = name or path.name
    params = json.dumps({"filename": name, "biz": "chat", "biz_params": {"chat_id": chat_id},
                         "size": path.stat().st_size})
    with path.open("rb") as f:
        r = client.post("/uploadSimpleFile", files={"file": (name, f, "application/octet-stream")},
                        data={"params": params})
    r.raise_for_status()
    body = r.json()
    if body.get("code") != 0:
        raise RuntimeError(f"upload refused: {body}")
    return int(body["data"])


def get_file(client: httpx.Client, file_id: int, dst: Path) -> None:
    with client.stream("GET", "/downloadFile", params={"file_id": file_id}) as r:
        r.raise_for_status()
        with open(dst, "wb") as f:
            for chunk in r.iter_bytes(256 * 1024):
                f.write(chunk)


def newest(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """filename -> the newest ok item of that name (the highest id)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if item.get("status", "ok") == "ok" and int(item["id"]) > int(out.get(item["filename"], {"id": -1})["id"]):
            out[str(item["filename"])] = item
    return out


def bare_upload(url: str, paths: list[Path], chat_id: str) -> None:
    with pooled(url) as client, ThreadPoolExecutor(BARE_CONNECTIONS) as pool:
        list(pool.map(lambda p: put_file(client, p, chat_id), paths))


def bare_download(url: str, chat_id: str, dst: Path, names: set[str] | None = None) -> None:
    """One listing, then every file (or only `names`) streamed into `dst` at BARE_CONNECTIONS."""
    items = newest(list_chat(url, chat_id)).values()
    wanted = [i for i in items if names is None or i["filename"] in names]
    with pooled(url) as client, ThreadPoolExecutor(BARE_CONNECTIONS) as pool:
        list(pool.map(lambda i: get_file(client, int(i["id"]), dst / str(i["filename"])), wanted))


def bare_mixed(url: str, folder: Path, chat_id: str, changed_here: list[str], changed_there: set[str]) -> None:
    """The floor of a two-way pass whose changes are known: a listing, the uploads and the
    downloads, all at BARE_CONNECTIONS."""
    items = newest(list_chat(url, chat_id))
    with pooled(url) as client, ThreadPoolExecutor(BARE_CONNECTIONS) as pool:
        ups = [pool.submit(put_file, client, folder / name, chat_id) for name in changed_here]
        downs = [pool.submit(get_file, client, int(items[n]["id"]), folder / n) for n in changed_there]
        for future in (*ups, *downs):
            future.result()


def bare_noop(url: str, chat_id: str, folder: Path) -> None:
    """The least a no-op pass must do: one listing (pages of 1000) and a stat of every file."""
    list_chat(url, chat_id)
    for entry in os.scandir(folder):
        entry.stat()


# -- curl ------------------------------------------------------------------------------------


def curl_put(url: str, path: Path, chat_id: str) -> Measured:
    """One `curl -F` of `path` into the chat (CURL_PATH must be set): how the process went."""
    assert CURL_PATH is not None
    return curl_upload(CURL_PATH, url, path, chat_id)[0]


def curl_get(url: str, file_id: int, dst: Path) -> Measured:
    """One `curl -o dst` of file `file_id` (CURL_PATH must be set): how the process went."""
    assert CURL_PATH is not None
    return curl_download(CURL_PATH, url, file_id, dst)


# -- the SDK ---------------------------------------------------------------------------------


def sdk_upload(url: str, folder: Path, chat_id: str) -> None:
    upload_sdk(url, folder, chat_id)


def sdk_download(url: str, chat_id: str, dst: Path) -> None:
    download_sdk(url, chat_id, dst)


# -- checks and clean-up, always direct ------------------------------------------------------


def remote_digests(url: str, chat_id: str) -> dict[str, str]:
    """filename -> hashcode (sha256) of the newest ok file of each name in the chat."""
    return {name: str(item["hashcode"]) for name, item in newest(list_chat(url, chat_id)).items()}


def delete_chat(url: str, chat_id: str) -> None:
    """Remove every file of the chat (spares the server's disk after big files)."""
    with pooled(url) as client:
        for item in list_chat(url, chat_id):
            client.delete("/deleteFile", params={"file_id": item["id"]}).raise_for_status()


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def check_folder(folder: Path, want: dict[str, str], what: str) -> None:
    got = digests(folder)
    if got != want:
        wrong = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
        raise RuntimeError(f"{what}: {len(wrong)} files differ, e.g. {wrong[:3]}")
