"""Freshly copied files vs settled ones: what the settle wait costs a `syncd reconcile`.

Run:  .venv/bin/python tests/bench/settle_bench.py [--files 800] [--settle 1.0] [--repeat 3] [--url URL]

N files of 4 KiB are copied into an empty folder (fresh state dir, fresh chat), then:

* fresh: `syncd reconcile` starts at once, while every file is younger than `settle`;
* settled: `syncd reconcile` starts once the newest copy is older than `settle`.

Each run is the real command in a fresh interpreter against one `syncd serve` on loopback; its
wall time (spawn to exit) and CPU time (user + system of that process alone, from wait4) are
measured. Medians over --repeat runs, fresh and settled alternating. Targets: fresh time <=
settle + 1.2 x settled time (the settle deadline waited once, not polled), fresh CPU <= 1.2 x
settled CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchkit
from benchkit import WORKERS, Row, make_files, print_rows, server_url, workdir, write_config, write_results

FILE_SIZE = 4 * 1024
TIME_RATIO_MAX = 1.2
CPU_RATIO_MAX = 1.2


@dataclass(frozen=True)
class Run:
    """One `syncd reconcile`: wall seconds, CPU seconds, its summary."""

    seconds: float
    cpu_s: float
    summary: dict[str, Any]


def reconcile_cpu(config: Path) -> Run:
    """`syncd reconcile --json -c config` in a fresh interpreter; fails unless it exits 0."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=benchkit.syncd_env(),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"syncd reconcile exited {proc.returncode}: {stdout[-1000:]} {stderr[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return Run(elapsed, usage.ru_utime + usage.ru_stime, summary)


def copy_in(source: Path, folder: Path) -> float:
    """Copy every file of `source` into the new `folder`; the newest copy's ctime (s)."""
    folder.mkdir(parents=True)
    newest = 0.0
    for path in sorted(source.iterdir()):
        target = folder / path.name
        shutil.copyfile(path, target)
        newest = max(newest, target.stat().st_ctime)
    return newest


def until_settled(newest_ctime: float, settle: float) -> None:
    """Return once a file changed at `newest_ctime` has been quiet for `settle` (plus a margin)."""
    while (left := newest_ctime + settle + 0.2 - time.time()) > 0:
        time.sleep(left)


def one(url: str, source: Path, root: Path, tag: str, settle: float, fresh: bool) -> Run:
    folder, state = root / f"{tag}-folder", root / f"{tag}-state"
    config = write_config(
        root / f"{tag}.toml", state_dir=state, url=url, workers=WORKERS, settle=settle,
        folders=[{"name": "f", "path": folder, "chat_id": f"settle-{tag}"}],
    )
    newest = copy_in(source, folder)
    if not fresh:
        until_settled(newest, settle)
    run = reconcile_cpu(config)
    [report] = run.summary["folders"]
    expected = len(list(source.iterdir()))
    if not run.summary["ok"] or report["uploaded"] != expected:
        raise RuntimeError(f"{tag}: uploaded {report['uploaded']} of {expected}: {run.summary}")
    return run


def run(
    *, files: int = 800, settle: float = 1.0, repeat: int = 3, workdir: Path, url: str | None = None
) -> dict[str, Any]:
    """Measure; the figures as a JSON-ready dict."""
    source = workdir / "source"
    make_files(source, files, FILE_SIZE)
    raw: dict[str, list[dict[str, float]]] = {"fresh": [], "settled": []}
    with server_url(url, workdir / "data") as live:
        for i in range(repeat):
            for kind in ("fresh", "settled"):
                measured = one(live, source, workdir, f"{kind}-{i}", settle, fresh=kind == "fresh")
                raw[kind].append({"seconds": measured.seconds, "cpu_s": measured.cpu_s})
    medians = {
        f"{kind}_{figure}": statistics.median(r[figure] for r in runs)
        for kind, runs in raw.items() for figure in ("seconds", "cpu_s")
    }
    time_limit = settle + TIME_RATIO_MAX * medians["settled_seconds"]
    cpu_limit = CPU_RATIO_MAX * medians["settled_cpu_s"]
    return {
        "settings": {"files": files, "settle": settle, "repeat": repeat, "workers": WORKERS},
        "raw": raw,
        "medians": medians,
        "targets": {
            "fresh_time_max_s": time_limit,
            "fresh_time_met": medians["fresh_seconds"] <= time_limit,
            "fresh_cpu_max_s": cpu_limit,
            "fresh_cpu_met": medians["fresh_cpu_s"] <= cpu_limit,
        },
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    m, t, settle = figures["medians"], figures["targets"], figures["settings"]["settle"]
    return [
        Row("fresh reconcile time", f"{m['fresh_seconds']:.2f} s", f"<= {t['fresh_time_max_s']:.2f} s",
            t["fresh_time_met"]),
        Row("fresh reconcile CPU", f"{m['fresh_cpu_s']:.2f} s", f"<= {t['fresh_cpu_max_s']:.2f} s",
            t["fresh_cpu_met"]),
        Row("settled reconcile time", f"{m['settled_seconds']:.2f} s", f"(settle {settle:g} s)", None),
        Row("settled reconcile CPU", f"{m['settled_cpu_s']:.2f} s", "", None),
    ]


def print_table(figures: dict[str, Any]) -> None:
    s = figures["settings"]
    print(f"settle bench: {s['files']} x 4 KiB files, settle {s['settle']:g} s, median of {s['repeat']}")
    print_rows(rows(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=800)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="a running `syncd serve` (default: start one)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.add_argument("--out", default="settle-bench.json")
    args = parser.parse_args()
    with workdir(args.keep) as root:
        figures = run(files=args.files, settle=args.settle, repeat=args.repeat, workdir=root, url=args.url)
    print_table(figures)
    write_results(figures, args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
