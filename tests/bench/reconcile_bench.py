"""`syncd reconcile` against the published SDK and a bare httpx loop, all through one `syncd serve`.

Run:  .venv/bin/python tests/bench/reconcile_bench.py [--files 2000] [--noop-files 10000] [--repeat 3] [--url URL]

Without --url it starts its own `syncd serve`; `run(..., url=URL)` measures against one already running
(tests/bench/run_all.py does that).

Three figures, medians over --repeat:

1. initial upload of N small files: `syncd reconcile` (subprocess, fresh state and chat each time)
   vs the SDK's `sync_chat_files_to_remote` vs a pooled httpx loop at syncd's concurrency (the floor);
2. initial download of the same files into an empty folder, the same three ways;
3. a no-op `syncd reconcile` over M tracked files vs one remote listing (pages of 1000) plus an
   `os.stat` of every local file, both timed as subprocess wall time (interpreter start included);
   the baseline's in-process time is reported too.

The SDK and the bare loops run in this process, so they pay no interpreter start; syncd does
(`python_startup_s` and `syncd_import_s` say how much that is).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import benchkit
import httpx
from benchkit import USER, WORKERS, Row, list_chat, make_files, server_url, workdir, write_config, write_results

FILE_SIZE = 4 * 1024

TARGETS = {
    "noop_max_s": 2.0,
    "noop_vs_baseline_max": 1.5,
    "sdk_speedup_min": 2.0,
    "bare_ratio_max": 1.3,
}

# The no-op baseline, run in a fresh interpreter: one full listing plus a stat of every file.
BASELINE = r"""
import json, os, sys, time
t0 = time.monotonic()
import httpx
url, user, chat, folder = sys.argv[1:5]
remote = 0
with httpx.Client(base_url=url, headers={"X-User-Id": user}) as client:
    offset = 0
    while True:
        r = client.get("/listChatFiles", params={"chat_id": chat, "offset": offset, "limit": 1000})
        r.raise_for_status()
        data = r.json()["data"]
        remote += len(data["items"])
        offset += len(data["items"])
        if not data["items"] or offset >= data["total"]:
            break
local = 0
for root, _dirs, names in os.walk(folder):
    for name in names:
        os.stat(os.path.join(root, name))
        local += 1
print(json.dumps({"in_process_s": time.monotonic() - t0, "remote": remote, "local": local}))
"""


# -- helpers -------------------------------------------------------------------------------


def digests(folder: Path) -> dict[str, str]:
    """name -> sha256 of every regular file directly in `folder` (hidden files skipped)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    }


def remote_names(url: str, chat_id: str) -> set[str]:
    return {str(item["filename"]) for item in list_chat(url, chat_id) if item.get("status", "ok") == "ok"}


def folder_config(path: Path, url: str, state_dir: Path, folder: Path, chat_id: str) -> Path:
    """One two-way folder `f` on `chat_id`, `WORKERS` workers, no settle wait."""
    return write_config(
        path, state_dir=state_dir, url=url, workers=WORKERS, folders=[{"name": "f", "path": folder, "chat_id": chat_id}]
    )


def reconcile(config: Path) -> tuple[float, dict[str, object]]:
    """Wall time of `syncd reconcile -c config --json` in a fresh interpreter, and its summary."""
    done, summary = benchkit.reconcile(config)
    return done.seconds, summary


def timed(func: Callable[[], object]) -> float:
    t0 = time.monotonic()
    func()
    return time.monotonic() - t0


class Counter:
    """Hands out fresh chat ids and scratch directories."""

    def __init__(self, root: Path, tag: str) -> None:
        self.root, self.tag, self.n = root, tag, 0

    def chat(self, what: str) -> str:
        self.n += 1
        return f"bench-{self.tag}-{what}-{self.n}"

    def dir(self, what: str) -> Path:
        self.n += 1
        path = self.root / f"{what}-{self.n}"
        path.mkdir(parents=True)
        return path


# -- the contenders ------------------------------------------------------------------------


def sdk_client(url: str):  # type: ignore[no-untyped-def]
    from bdd_file import BDD_FILE_PROFILES, BddFileClient

    BDD_FILE_PROFILES["bench"] = url
    return BddFileClient(profile="bench", default_user_id=USER, default_biz="chat")


def upload_syncd(url: str, src: Path, chat_id: str, scratch: Counter) -> float:
    state = scratch.dir("state")
    config = folder_config(state.parent / f"{state.name}.toml", url, state, src, chat_id)
    elapsed, summary = reconcile(config)
    if not summary.get("ok"):
        raise RuntimeError(f"syncd reconcile not ok: {summary}")
    return elapsed


def upload_sdk(url: str, src: Path, chat_id: str) -> float:
    client = sdk_client(url)
    t0 = time.monotonic()
    results = client.sync_chat_files_to_remote(chat_id=chat_id, local_dir=src, user_id=USER)
    elapsed = time.monotonic() - t0
    failed = [str(p) for p, r in results.items() if r.status.value == "failed"]
    if failed:
        raise RuntimeError(f"SDK failed {len(failed)} uploads, e.g. {results[Path(failed[0])]}")
    return elapsed


def upload_bare(url: str, src: Path, chat_id: str, workers: int = WORKERS) -> float:
    """The floor: one pooled httpx client, `workers` threads, a simple upload per file."""
    t0 = time.monotonic()
    paths = [p for p in src.iterdir() if p.is_file()]
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, limits=limits, timeout=60) as client:

        def one(path: Path) -> int:
            size = path.stat().st_size
            params = json.dumps(
                {"filename": path.name, "biz": "chat", "biz_params": {"chat_id": chat_id}, "size": size}
            )
            with path.open("rb") as f:
                r = client.post(
                    "/uploadSimpleFile",
                    files={"file": (path.name, f, "application/octet-stream")},
                    data={"params": params},
                )
            r.raise_for_status()
            return int(r.json()["data"])

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, paths))
    return time.monotonic() - t0


def download_syncd(url: str, chat_id: str, dst: Path, scratch: Counter) -> float:
    return upload_syncd(url, dst, chat_id, scratch)  # two-way reconcile into an empty folder


def download_sdk(url: str, chat_id: str, dst: Path) -> float:
    client = sdk_client(url)
    t0 = time.monotonic()
    results = client.sync_chat_files_to_local(chat_id=chat_id, local_dir=dst, user_id=USER)
    elapsed = time.monotonic() - t0
    failed = [r for r in results.values() if not r.is_success]
    if failed:
        raise RuntimeError(f"SDK failed {len(failed)} downloads, e.g. {failed[0]}")
    return elapsed


def download_bare(url: str, chat_id: str, dst: Path, workers: int = WORKERS) -> float:
    """The floor: one listing walk, then `workers` threads streaming each file to disk."""
    t0 = time.monotonic()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    items = list_chat(url, chat_id)
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, limits=limits, timeout=60) as client:

        def one(item: dict[str, Any]) -> None:
            with client.stream("GET", "/downloadFile", params={"file_id": item["id"]}) as r:
                r.raise_for_status()
                with open(dst / str(item["filename"]), "wb") as f:
                    for chunk in r.iter_bytes(64 * 1024):
                        f.write(chunk)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, items))
    return time.monotonic() - t0


def noop_baseline(url: str, chat_id: str, folder: Path) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, url, USER, chat_id, str(folder)], capture_output=True, text=True, check=True
    )
    return time.monotonic() - t0, json.loads(out.stdout)


def interpreter_costs() -> dict[str, float]:
    def wall(*argv: str) -> float:
        t0 = time.monotonic()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True)
        return time.monotonic() - t0

    return {
        "python_startup_s": min(wall("-c", "pass") for _ in range(3)),
        "syncd_import_s": min(wall("-c", "import syncd.cli.main, httpx") for _ in range(3)),
    }


# -- the three measurements ----------------------------------------------------------------


def bench_transfer(url: str, work: Path, files: int, repeat: int) -> dict[str, object]:
    scratch = Counter(work, "t")
    src = work / "src"
    make_files(src, files, FILE_SIZE)
    want = digests(src)
    up: dict[str, list[float]] = {"syncd": [], "sdk": [], "bare": []}
    down: dict[str, list[float]] = {"syncd": [], "sdk": [], "bare": []}
    arrived: dict[str, bool] = {}
    source_chat = ""
    uploads: dict[str, Callable[[str], float]] = {
        "syncd": lambda chat: upload_syncd(url, src, chat, scratch),
        "sdk": lambda chat: upload_sdk(url, src, chat),
        "bare": lambda chat: upload_bare(url, src, chat),
    }
    downloads: dict[str, Callable[[str, Path], float]] = {
        "syncd": lambda chat, dst: download_syncd(url, chat, dst, scratch),
        "sdk": lambda chat, dst: download_sdk(url, chat, dst),
        "bare": lambda chat, dst: download_bare(url, chat, dst),
    }
    for _ in range(repeat):
        for name in ("syncd", "sdk", "bare"):
            chat = scratch.chat(f"up-{name}")
            up[name].append(uploads[name](chat))
            ok = remote_names(url, chat) == set(want)
            arrived[f"upload_{name}"] = arrived.get(f"upload_{name}", True) and ok
            source_chat = source_chat or chat
    for _ in range(repeat):
        for name in ("syncd", "sdk", "bare"):
            dst = scratch.dir(f"down-{name}")
            down[name].append(downloads[name](source_chat, dst))
            ok = digests(dst) == want
            arrived[f"download_{name}"] = arrived.get(f"download_{name}", True) and ok
    return {"upload": up, "download": down, "arrived": arrived}


def bench_noop(url: str, work: Path, files: int, repeat: int) -> dict[str, object]:
    scratch = Counter(work, "n")
    folder = work / "noop"
    make_files(folder, files, 64)
    chat = scratch.chat("noop")
    state = scratch.dir("state")
    config = folder_config(work / "noop.toml", url, state, folder, chat)
    first, summary = reconcile(config)
    if not summary.get("ok"):
        raise RuntimeError(f"first sync not ok: {summary}")
    synced = len(remote_names(url, chat))
    syncd_s: list[float] = []
    base_s: list[float] = []
    base_in: list[float] = []
    summaries = []
    for _ in range(repeat):
        elapsed, summary = reconcile(config)
        syncd_s.append(elapsed)
        summaries.append(summary)
        wall, figures = noop_baseline(url, chat, folder)
        base_s.append(wall)
        base_in.append(float(figures["in_process_s"]))  # type: ignore[arg-type]
        if figures["remote"] != files or figures["local"] != files:
            raise RuntimeError(f"baseline saw {figures}, expected {files}")
    return {
        "first_sync_s": first,
        "synced": synced,
        "syncd": syncd_s,
        "baseline_subprocess": base_s,
        "baseline_in_process": base_in,
        "last_summary": summaries[-1],
    }


def run(files: int, noop_files: int, repeat: int, workdir: Path, url: str | None = None) -> dict[str, object]:
    """All three figures, against `url` (a running `syncd serve`) or a server of their own."""
    with server_url(url, workdir / "data") as url:
        transfer = bench_transfer(url, workdir / "transfer", files, repeat)
        noop = bench_noop(url, workdir / "noop", noop_files, repeat)
    med = statistics.median
    up = cast(dict[str, list[float]], transfer["upload"])
    down = cast(dict[str, list[float]], transfer["download"])
    figures: dict[str, object] = {
        "files": files,
        "file_size": FILE_SIZE,
        "noop_files": noop_files,
        "repeat": repeat,
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        **interpreter_costs(),
        "raw": {"upload": up, "download": down, "noop": noop},
        "arrived": transfer["arrived"],
        "noop_synced": noop["synced"],
    }
    medians: dict[str, float] = {}
    for phase, runs in (("upload", up), ("download", down)):
        for name, times in runs.items():
            medians[f"{phase}_{name}_s"] = med(times)
    medians["noop_syncd_s"] = med(noop["syncd"])  # type: ignore[arg-type]
    medians["noop_baseline_subprocess_s"] = med(noop["baseline_subprocess"])  # type: ignore[arg-type]
    medians["noop_baseline_in_process_s"] = med(noop["baseline_in_process"])  # type: ignore[arg-type]
    ratios = {
        "upload_sdk_over_syncd": medians["upload_sdk_s"] / medians["upload_syncd_s"],
        "upload_syncd_over_bare": medians["upload_syncd_s"] / medians["upload_bare_s"],
        "download_sdk_over_syncd": medians["download_sdk_s"] / medians["download_syncd_s"],
        "download_syncd_over_bare": medians["download_syncd_s"] / medians["download_bare_s"],
        "noop_syncd_over_baseline": medians["noop_syncd_s"] / medians["noop_baseline_subprocess_s"],
    }
    met = {
        "noop_under_2s": medians["noop_syncd_s"] < TARGETS["noop_max_s"],
        "noop_within_1.5x_baseline": ratios["noop_syncd_over_baseline"] <= TARGETS["noop_vs_baseline_max"],
        "upload_2x_faster_than_sdk": ratios["upload_sdk_over_syncd"] >= TARGETS["sdk_speedup_min"],
        "upload_within_1.3x_bare": ratios["upload_syncd_over_bare"] <= TARGETS["bare_ratio_max"],
        "download_2x_faster_than_sdk": ratios["download_sdk_over_syncd"] >= TARGETS["sdk_speedup_min"],
        "download_within_1.3x_bare": ratios["download_syncd_over_bare"] <= TARGETS["bare_ratio_max"],
    }
    figures.update(medians=medians, ratios=ratios, targets_met=met)
    return figures


def print_table(figures: dict[str, object]) -> None:
    m: dict[str, float] = figures["medians"]  # type: ignore[assignment]
    r: dict[str, float] = figures["ratios"]  # type: ignore[assignment]
    met: dict[str, bool] = figures["targets_met"]  # type: ignore[assignment]
    n, k = figures["files"], figures["noop_files"]
    print(f"\nmedians over {figures['repeat']} runs, {figures['cpus']} CPUs, workers={figures['workers']}")
    print(f"{'phase':<34}{'syncd':>9}{'SDK':>9}{'bare':>9}{'SDK/syncd':>11}{'syncd/bare':>12}")
    for phase in ("upload", "download"):
        print(
            f"{f'{phase} {n} x 4 KiB':<34}{m[f'{phase}_syncd_s']:>8.2f}s{m[f'{phase}_sdk_s']:>8.2f}s"
            f"{m[f'{phase}_bare_s']:>8.2f}s{r[f'{phase}_sdk_over_syncd']:>10.2f}x{r[f'{phase}_syncd_over_bare']:>11.2f}x"
        )
    print(
        f"{f'no-op over {k} files':<34}{m['noop_syncd_s']:>8.2f}s"
        f"   baseline {m['noop_baseline_subprocess_s']:.2f}s (subprocess), "
        f"{m['noop_baseline_in_process_s']:.2f}s (in-process); syncd/baseline {r['noop_syncd_over_baseline']:.2f}x"
    )
    print(
        f"interpreter start {figures['python_startup_s']:.3f}s, "
        f"+ import syncd.cli.main/httpx {figures['syncd_import_s']:.3f}s (paid by syncd and the baseline only)"
    )
    print(f"all files arrived: {figures['arrived']}")
    print("targets: " + ", ".join(f"{k} {'MET' if v else 'MISSED'}" for k, v in met.items()))


def target_rows(figures: dict[str, Any]) -> list[Row]:
    """The three figures' targets, one row each."""
    m, r, met = figures["medians"], figures["ratios"], figures["targets_met"]
    n, k = figures["files"], figures["noop_files"]
    rows: list[Row] = []
    for phase in ("upload", "download"):
        what = f"{phase} {n} x 4 KiB"
        rows += [
            Row(f"{what}: SDK time / syncd time", f"{r[f'{phase}_sdk_over_syncd']:.2f}x",
                f">= {TARGETS['sdk_speedup_min']:.1f}x", met[f"{phase}_2x_faster_than_sdk"]),
            Row(f"{what}: syncd time / bare time", f"{r[f'{phase}_syncd_over_bare']:.2f}x",
                f"<= {TARGETS['bare_ratio_max']:.1f}x", met[f"{phase}_within_1.3x_bare"]),
        ]
    arrived = all(figures["arrived"].values())
    return [
        *rows,
        Row(f"{n} files arrived intact, every way", "yes" if arrived else "NO", "yes", arrived),
        Row(f"no-op over {k} files: syncd / baseline", f"{r['noop_syncd_over_baseline']:.2f}x",
            f"<= {TARGETS['noop_vs_baseline_max']:.1f}x", met["noop_within_1.5x_baseline"]),
        Row(f"no-op over {k} files: syncd time", f"{m['noop_syncd_s']:.2f} s", f"< {TARGETS['noop_max_s']:.1f} s",
            met["noop_under_2s"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--noop-files", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="bench-results-reconcile.json")
    parser.add_argument("--keep", help="work in this directory and keep it (for profiling afterwards)")
    parser.add_argument("--url", help="measure against this running `syncd serve` instead of starting one")
    args = parser.parse_args()
    with workdir(args.keep) as work:
        figures = run(args.files, args.noop_files, args.repeat, work, url=args.url)
    print_table(figures)
    write_results(figures, args.out)

if __name__ == "__main__":
    main()
