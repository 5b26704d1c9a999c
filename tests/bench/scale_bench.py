"""syncd at scale: folders of 10,000 and 100,000 files, against one `syncd serve`, and in-process.

Run:  .venv/bin/python tests/bench/scale_bench.py [--files 10000,100000] [--quick] [--repeat 3]
          [--idle-seconds 60] [--skip-daemon] [--skip-tree] [--url URL] [--keep DIR] [--out FILE]

Without --url it starts its own `syncd serve` on loopback. `--quick` measures 2,000 files and a
20 s idle window. For each size N:

1. BDD, a flat folder of N tiny files (32 bytes each; the figures are about counts, not bytes):
   * first sync: `syncd reconcile` uploading all N (wall time, peak RSS of the process);
   * no-op pass: `syncd reconcile` again, median of --repeat (wall time, peak RSS), beside the
     baseline, a subprocess that lists the chat (every page, one pooled httpx client) and stats
     every file of the folder (median of --repeat); both are subprocess wall times, interpreter
     start included; the ratio is of the medians;
   * the daemon (`syncd run`, `poll_interval = 30`, the folder synced by the step above): once it
     logged `watching` and its CPU time stopped climbing, one file is rewritten with new content;
     the time from its close() until the server's listing shows that content (polled, waited on)
     is "one changed file found"; then the daemon's CPU time (user + system) over --idle-seconds,
     as percent of one core, and its RSS at the end.
2. a tree on the memory remote: a config cannot name the memory remote as a folder's kind (only
   `embedded` and `bdd` are registered), so this row runs the core in-process, in a child process
   of this script (for its own peak RSS): `MemoryRemote` with TREE, a recursive folder of N files
   in directories of 1,000; first sync (one pass plus draining the queue), then the no-op pass,
   median of --repeat, with its parts timed apart (journal read, local scan, planning).

Every `syncd` and baseline subprocess runs with its compiled bytecode kept (PYTHONDONTWRITEBYTECODE
is dropped, PYTHONPYCACHEPREFIX points into the work directory unless set), as an installed
syncd has it: otherwise each run would compile every module it imports again.

Prints a table of the figures against their targets and writes them as JSON (default
`bench-results-scale.json`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from benchkit import (
    PAGE,
    USER,
    WORKERS,
    Row,
    print_rows,
    reconcile,
    run_measured,
    workdir,
    write_config,
    write_results,
)
from daemon_bench import (
    IDLE_GRACE,
    QUIET_MAX_CPU_S,
    QUIET_TIMEOUT,
    QUIET_WINDOW,
    START_TIMEOUT,
    Procs,
    check_alive,
    cpu_seconds,
    log_has_event,
    read_log,
    running,
    start_daemon,
    start_server,
    tail,
)
from reconcile_bench import BASELINE

FILE_SIZE = 32
QUICK_FILES = 2000
#: Files per directory of the tree on the memory remote.
TREE_FANOUT = 1000
#: How often the chat listing is polled while the changed file is awaited.
POLL_EVERY = 0.05
CHANGE_TIMEOUT = 120.0

TARGETS = {
    "noop_vs_baseline_max": 1.3,  # at 10,000 files
    "noop_100k_max_s": 3.0,
    "noop_100k_rss_max_mib": 150.0,
    "idle_cpu_10k_max_percent": 0.5,
    "idle_cpu_100k_max_percent": 1.0,
}

MiB = 1 << 20


# -- BDD: first sync and no-op pass ---------------------------------------------------------------


def make_tiny_files(folder: Path, count: int, size: int = FILE_SIZE, prefix: str = "f") -> None:
    """`count` files of `size` distinct bytes (the number, padded), named PREFIX000000.bin and up."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}{i:06d}.bin").write_bytes(f"{i:0{size}d}".encode()[:size])


def baseline(url: str, chat: str, folder: Path) -> tuple[float, dict[str, Any]]:
    """The floor of a no-op pass, as a subprocess: every listing page plus a stat of every file."""
    done = run_measured([sys.executable, "-c", BASELINE, url, USER, chat, str(folder)])
    if done.returncode != 0:
        raise RuntimeError(f"baseline exited {done.returncode}: {done.stderr[-2000:]}")
    return done.seconds, json.loads(done.stdout)


def listing(url: str, chat: str) -> dict[str, dict[str, Any]]:
    """filename -> the newest `ok` item of the chat."""
    found: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, timeout=60) as client:
        offset = 0
        while True:
            r = client.get("/listChatFiles", params={"chat_id": chat, "offset": offset, "limit": PAGE})
            r.raise_for_status()
            data = r.json()["data"]
            for item in data["items"]:
                if item.get("status") == "ok":
                    found[str(item["filename"])] = item
            offset += len(data["items"])
            if not data["items"] or offset >= data["total"]:
                return found


def bench_bdd(url: str, work: Path, files: int, repeat: int) -> dict[str, Any]:
    folder = work / "flat"
    make_tiny_files(folder, files)
    chat = f"bench-scale-{files}"
    config = write_config(
        work / "flat.toml", state_dir=work / "state", url=url, workers=WORKERS, settle=1.0,
        daemon={"poll_interval": 30}, folders=[{"name": "flat", "path": folder, "chat_id": chat}],
    )
    first, summary = reconcile(config)
    if not summary.get("ok"):
        raise RuntimeError(f"first sync not ok: {first.stdout[-1000:]}")
    synced = len(listing(url, chat))
    noop_s: list[float] = []
    noop_rss: list[int] = []
    base_s: list[float] = []
    unchanged = 0
    for _ in range(repeat):
        done, summary = reconcile(config)
        noop_s.append(done.seconds)
        noop_rss.append(done.peak_rss)
        folders = summary.get("folders") or [{}]
        unchanged = int(folders[0].get("unchanged", 0))
        planned = sum(int(folders[0].get(k, 0)) for k in ("uploaded", "downloaded", "deleted_local", "deleted_remote"))
        if planned:
            raise RuntimeError(f"the no-op pass did something: {summary}")
        wall, seen = baseline(url, chat, folder)
        base_s.append(wall)
        if seen["remote"] != files or seen["local"] < files:
            raise RuntimeError(f"baseline saw {seen}, expected {files}")
    med = statistics.median
    return {
        "files": files,
        "synced": synced,
        "first_sync_s": first.seconds,
        "first_sync_rss_mib": first.peak_rss / MiB,
        "noop_s": noop_s,
        "noop_rss_mib": max(noop_rss) / MiB,
        "noop_unchanged": unchanged,
        "baseline_s": base_s,
        "noop_median_s": med(noop_s),
        "baseline_median_s": med(base_s),
        "noop_over_baseline": med(noop_s) / med(base_s),
        "config": str(config),
        "folder": str(folder),
        "chat": chat,
    }


# -- BDD: the daemon --------------------------------------------------------------------------------


def wait_quiet(proc: psutil.Process, daemon: subprocess.Popen[bytes], log: Path) -> bool:
    """Wait until the daemon's CPU time stops climbing (its start-up pass is over)."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_TIMEOUT:
        check_alive(daemon, log)
        before = cpu_seconds(proc)
        time.sleep(QUIET_WINDOW)
        if cpu_seconds(proc) - before <= QUIET_MAX_CPU_S:
            return True
    return False


def wait_content(url: str, chat: str, name: str, sha256: str, t0: float, daemon: subprocess.Popen[bytes],
                 log: Path) -> float | None:
    """Seconds from `t0` until the chat lists `name` with this content; None after CHANGE_TIMEOUT."""
    while time.monotonic() - t0 < CHANGE_TIMEOUT:
        item = listing(url, chat).get(name)
        if item is not None and str(item.get("hashcode", "")).lower() == sha256:
            return time.monotonic() - t0
        check_alive(daemon, log)
        time.sleep(POLL_EVERY)
    return None


def bench_daemon(procs: Procs, url: str, work: Path, bdd: dict[str, Any], seconds: float) -> dict[str, Any]:
    log = work / "daemon.log"
    started = time.monotonic()
    daemon = start_daemon(procs, Path(bdd["config"]), log, f"run-{bdd['files']}")
    proc = psutil.Process(daemon.pid)
    while not log_has_event(log, "watching"):
        check_alive(daemon, log)
        if time.monotonic() - started > START_TIMEOUT:
            raise RuntimeError(f"no 'watching' after {START_TIMEOUT:.0f} s; log:\n{tail(log)}")
        time.sleep(0.1)
    watching_after = time.monotonic() - started
    time.sleep(IDLE_GRACE)
    quiet = wait_quiet(proc, daemon, log)

    name = "f000000.bin"
    data = os.urandom(48)
    with open(Path(bdd["folder"]) / name, "wb") as f:
        f.write(data)
    t0 = time.monotonic()
    change_s = wait_content(url, bdd["chat"], name, hashlib.sha256(data).hexdigest(), t0, daemon, log)
    wait_quiet(proc, daemon, log)

    log_start = log.stat().st_size
    cpu0, wall0 = cpu_seconds(proc), time.monotonic()
    time.sleep(seconds)
    check_alive(daemon, log)
    cpu1, wall1 = cpu_seconds(proc), time.monotonic()
    rss = proc.memory_info().rss
    threads = proc.num_threads()
    exit_code = procs.stop(daemon)
    return {
        "watching_after_s": watching_after,
        "quiet": quiet,
        "change_found_s": change_s,
        "idle_wall_s": wall1 - wall0,
        "idle_cpu_s": cpu1 - cpu0,
        "idle_cpu_percent": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        "rss_mib": rss / MiB,
        "threads": threads,
        "exit_code": exit_code,
        "log_while_idle": dataclasses.asdict(read_log(log, log_start)),
    }


# -- a tree on the memory remote, in-process (run in a child process by `bench_tree`) ------------


def tree_child(files: int, repeat: int, work: Path) -> dict[str, Any]:
    """First sync and no-op passes of a recursive folder of `files` files on a `MemoryRemote`
    with TREE; runs in this process (the parent measures its peak RSS)."""
    from syncd.app import open_app
    from syncd.config import load_config
    from syncd.local.scan import scan_folder
    from syncd.remote.base import Capability
    from syncd.remote.memory import BDD_LIKE, MemoryRemote
    from syncd.sync.outcome import bases
    from syncd.sync.passes import policy_of

    folder = work / "tree"
    for i in range(files):
        sub = folder / f"d{i // TREE_FANOUT:04d}"
        if i % TREE_FANOUT == 0:
            sub.mkdir(parents=True)
        (sub / f"f{i:06d}.bin").write_bytes(f"{i:0{FILE_SIZE}d}".encode())
    path = write_config(work / "tree.toml", state_dir=work / "state", url="http://unused.invalid", workers=WORKERS,
                        folders=[{"name": "tree", "path": folder, "chat_id": "tree"}])
    config = load_config(path)
    # The config refuses `recursive` for a flat remote kind; the memory remote has folders.
    tree = dataclasses.replace(config.folders[0], recursive=True)
    config = dataclasses.replace(config, folders=(tree,))
    remote = MemoryRemote(BDD_LIKE | Capability.TREE)
    with open_app(config, remotes={"r": remote}) as app:
        t0 = time.monotonic()
        app.engine.pass_folder(tree)
        app.engine.drain([tree.name], WORKERS)
        first = time.monotonic() - t0
        listed = len(remote.list("tree"))
        passes, journal_s, scan_s, plan_s = [], [], [], []
        unchanged = 0
        for _ in range(repeat):
            t0 = time.monotonic()
            report = app.engine.pass_folder(tree)
            passes.append(time.monotonic() - t0)
            if report.results:
                raise RuntimeError(f"the no-op pass planned {len(report.results)} actions")
            unchanged = report.unchanged
            t0 = time.monotonic()
            base = app.state.read_journal(tree.name, bases)
            t1 = time.monotonic()
            local = scan_folder(tree.path, tree.ignore, base, recursive=True)
            t2 = time.monotonic()
            from syncd.core.plan import plan

            plan(local.files, remote.list("tree"), base, policy_of(tree), marker_present=True)
            t3 = time.monotonic()
            journal_s.append(t1 - t0)
            scan_s.append(t2 - t1)
            plan_s.append(t3 - t2)
    med = statistics.median
    return {
        "files": files,
        "listed": listed,
        "first_sync_s": first,
        "noop_s": passes,
        "noop_median_s": med(passes),
        "noop_unchanged": unchanged,
        "journal_read_s": med(journal_s),
        "scan_s": med(scan_s),
        "plan_s": med(plan_s),
    }


def bench_tree(work: Path, files: int, repeat: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    done = run_measured([sys.executable, __file__, "--tree-child", str(files), "--repeat", str(repeat),
                         "--keep", str(work / "child")])
    if done.returncode != 0:
        raise RuntimeError(f"the tree run exited {done.returncode}: {done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["peak_rss_mib"] = done.peak_rss / MiB
    return figures


# -- the whole run ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (10_000, 100_000)
    repeat: int = 3
    idle_seconds: float = 60.0
    daemon: bool = True
    tree: bool = True


def run(settings: Settings, work: Path, url: str | None = None) -> dict[str, Any]:
    """Every row for every size, against `url` (a running `syncd serve`) or a server of its own."""
    results: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "targets": TARGETS,
                                "sizes": {}}
    with running() as procs:
        server = url or start_server(procs, work)
        for n in settings.sizes:
            here = work / f"n{n}"
            bdd = bench_bdd(server, here / "bdd", n, settings.repeat)
            row: dict[str, Any] = {"bdd": bdd}
            if settings.daemon:
                row["daemon"] = bench_daemon(procs, server, here / "bdd", bdd, settings.idle_seconds)
            if settings.tree:
                row["tree"] = bench_tree(here / "tree", n, settings.repeat)
            results["sizes"][str(n)] = row
    return results


def _fmt(value: float | None, unit: str = " s", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def target_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for size, row in figures["sizes"].items():
        n = int(size)
        bdd = row["bdd"]
        rows.append(Row(f"BDD first sync, {n} files", _fmt(bdd["first_sync_s"]), "-", None))
        rows.append(Row(f"BDD first sync peak RSS, {n} files", _fmt(bdd["first_sync_rss_mib"], " MiB", 0), "-", None))
        rows.append(Row(f"BDD no-op, {n} files", _fmt(bdd["noop_median_s"]),
                        "< 3 s" if n >= 100_000 else "-",
                        bdd["noop_median_s"] < TARGETS["noop_100k_max_s"] if n >= 100_000 else None))
        rows.append(Row(f"BDD no-op baseline, {n} files", _fmt(bdd["baseline_median_s"]), "-", None))
        rows.append(Row(f"BDD no-op / baseline, {n} files", _fmt(bdd["noop_over_baseline"], "x"),
                        f"<= {TARGETS['noop_vs_baseline_max']}x" if n <= 10_000 else "-",
                        bdd["noop_over_baseline"] <= TARGETS["noop_vs_baseline_max"] if n <= 10_000 else None))
        rows.append(Row(f"BDD no-op peak RSS, {n} files", _fmt(bdd["noop_rss_mib"], " MiB", 0),
                        "<= 150 MiB" if n >= 100_000 else "-",
                        bdd["noop_rss_mib"] <= TARGETS["noop_100k_rss_max_mib"] if n >= 100_000 else None))
        daemon = row.get("daemon")
        if daemon is not None:
            limit = TARGETS["idle_cpu_100k_max_percent"] if n >= 100_000 else TARGETS["idle_cpu_10k_max_percent"]
            rows.append(Row(f"daemon: one change found, {n} files", _fmt(daemon["change_found_s"]), "-",
                            None if daemon["change_found_s"] is not None else False))
            rows.append(Row(f"daemon idle CPU ({daemon['idle_wall_s']:.0f} s), {n} files",
                            _fmt(daemon["idle_cpu_percent"], " %", 3), f"<= {limit} %",
                            daemon["idle_cpu_percent"] <= limit))
            rows.append(Row(f"daemon RSS, {n} files", _fmt(daemon["rss_mib"], " MiB", 0), "-", None))
        tree = row.get("tree")
        if tree is not None:
            rows.append(Row(f"tree (memory) first sync, {n} files", _fmt(tree["first_sync_s"]), "-", None))
            rows.append(Row(f"tree (memory) no-op pass, {n} files", _fmt(tree["noop_median_s"]), "-", None))
            rows.append(Row(f"tree no-op: journal / scan / plan, {n}",
                            f"{tree['journal_read_s']:.2f}/{tree['scan_s']:.2f}/{tree['plan_s']:.2f} s", "-", None))
            rows.append(Row(f"tree (memory) peak RSS, {n} files", _fmt(tree["peak_rss_mib"], " MiB", 0), "-", None))
    return rows


def print_table(figures: dict[str, Any]) -> None:
    print(f"\nsyncd at scale, {figures['cpus']} CPUs, workers = {WORKERS}, Python {figures['python']}")
    print_rows(target_rows(figures))


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=parse_sizes, default=(10_000, 100_000), help="sizes, e.g. 10000,100000")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FILES} files, a 20 s idle window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, help="the idle window (default 60 s, 20 s with --quick)")
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--skip-tree", action="store_true")
    parser.add_argument("--out", default="bench-results-scale.json")
    parser.add_argument("--keep", help="work in this directory and keep it (for profiling afterwards)")
    parser.add_argument("--url", help="measure against this running `syncd serve` instead of starting one")
    parser.add_argument("--tree-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tree_child is not None:
        with workdir(args.keep) as work:
            print(json.dumps(tree_child(args.tree_child, args.repeat, work)))
        return
    settings = Settings(
        sizes=(QUICK_FILES,) if args.quick else args.files,
        repeat=args.repeat,
        idle_seconds=args.idle_seconds if args.idle_seconds is not None else 20.0 if args.quick else 60.0,
        daemon=not args.skip_daemon,
        tree=not args.skip_tree,
    )
    with workdir(args.keep) as work:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))
        figures = run(settings, work, url=args.url)
    print_table(figures)
    write_results(figures, args.out)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
