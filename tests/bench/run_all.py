"""Every syncd benchmark against one `syncd serve` on loopback, in one run, with their targets.

Prints a table of medians, then one of ratios and targets (each MET, MISSED or n/a), and writes
everything as JSON.

Run:
    .venv/bin/python tests/bench/run_all.py                 # full size (about 10 minutes on 2 cores)
    .venv/bin/python tests/bench/run_all.py --quick         # smoke size (about a minute)
    .venv/bin/python tests/bench/run_all.py --files 500 --big-size 256M --idle-seconds 20 --out my.json

Flags: --files (4 KiB files per transfer, 2000), --noop-files (10000), --repeat (runs per median, 3),
--big-size (1G; K/M/G suffixes), --big-repeat (1), --samples (drop-in files, 30), --idle-files (10000),
--idle-seconds (60), --out (bench-results.json), --keep DIR (work there and keep it), --quick (100 files,
500 no-op files, a 32M big file, 3 samples, 500 idle files, 3 s idle, one run each; explicit flags
still win), --wan (also the WAN rows of wan_bench.py, at --files, --repeat and --big-size, with its
--rtt, --handshake-rtts, --bandwidth, --changed and --jobs: by default every job at 0, 20 and 80 ms,
the big file each way against curl too, with MB/s, peak RSS and syncd/curl, and their targets).

One `syncd serve --data WORKDIR/data` is started on a free loopback port and every contender talks
to it over HTTP. All syncd figures are subprocess wall times of the real command (`python -m syncd`,
interpreter start included); the SDK and the bare loops run in this process. The figures:

upload N x 4 KiB (reconcile_bench.py)
    `syncd reconcile` of a fresh folder (fresh state dir and chat each run) vs the published SDK's
    `sync_chat_files_to_remote` vs a bare pooled httpx loop with syncd's 4 workers (the floor).
    Targets: SDK time / syncd time >= 2, syncd time / bare time <= 1.3.
download N x 4 KiB (reconcile_bench.py)
    the same files into an empty folder: `syncd reconcile` vs `sync_chat_files_to_local` vs the bare
    loop (one listing, 4 threads streaming). Same targets.
no-op over M files (reconcile_bench.py)
    `syncd reconcile` over M already-synced files vs the least any tool must do: one remote listing
    (pages of 1000) plus an `os.stat` of every local file, in a fresh interpreter too.
    Targets: syncd / baseline <= 1.5, syncd < 2 s.
upload / download of one big file (big_file.py, `versus_curl`)
    syncd as users run it (`syncd reconcile` on a folder holding only the file, then a fresh state
    dir on an empty folder) vs curl (`curl -F` to /uploadSimpleFile, `curl -o` from /downloadFile).
    MB/s = 10^6 bytes per second of wall time. Targets: syncd MB/s / curl MB/s >= 0.70 each way;
    peak RSS of the `syncd reconcile` process (its VmHWM, the larger of the two passes)
    <= 100 MB; every copy byte-identical (sha256). Without curl the curl figures read "unavailable".
drop-in latency (daemon_bench.py)
    `syncd run` on an upload-mode folder with settle = 1.0 s: from close() of a dropped 4 KiB file
    until the server lists it. Targets: p50 <= 1.3 s, p95 <= 2.0 s, every sample arrived.
idle CPU (daemon_bench.py)
    `syncd run` watching a synced two-way folder of --idle-files files, once its start-up pass is
    over: CPU time over --idle-seconds as percent of one core. Target <= 0.5 %.

The JSON holds the settings, every module's raw figures, the server's start-up time and peak RSS,
a summary of the server's log and the target table (`targets`, with `met`: true, false or null
when a figure could not be measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import big_file
import daemon_bench
import reconcile_bench
import wan_bench
from benchkit import WORKERS, Row, parse_size, peak_rss, print_rows, serve, workdir, write_results

SETTLE = 1.0


@dataclass(frozen=True)
class Settings:
    files: int
    noop_files: int
    repeat: int
    big_size: int
    big_repeat: int
    samples: int
    idle_files: int
    idle_seconds: float


FULL = Settings(files=2000, noop_files=10000, repeat=3, big_size=1 << 30, big_repeat=1, samples=30, idle_files=10000,
                idle_seconds=60.0)
QUICK = Settings(files=100, noop_files=500, repeat=1, big_size=32 << 20, big_repeat=1, samples=3, idle_files=500,
                 idle_seconds=3.0)


def run(settings: Settings, work: Path, wan: wan_bench.Settings | None = None) -> dict[str, Any]:
    """Every figure against one `syncd serve` whose data and log live under `work` (with `wan`,
    also the WAN rows)."""
    s = settings
    work.mkdir(parents=True, exist_ok=True)
    log = work / "serve.log"
    with log.open("wb") as server_log, serve(work / "data", stderr=server_log) as server:
        reconcile = reconcile_bench.run(s.files, s.noop_files, s.repeat, work / "reconcile", url=server.url)
        big = big_file.versus_curl(s.big_size, work / "big", server.url, s.big_repeat)
        daemon = daemon_bench.run(s.samples, s.idle_files, s.idle_seconds, SETTLE, work / "daemon", url=server.url)
        wan_figures = None if wan is None else wan_bench.run(wan, work / "wan", server.url)
        served = {"url": server.url, "startup_s": server.startup_s, "peak_rss": peak_rss(server.proc.pid)}
    rows = [*reconcile_bench.target_rows(reconcile), *big_file.target_rows(big), *daemon_bench.target_rows(daemon)]
    if wan_figures is not None:
        rows += wan_bench.target_rows(wan_figures)
    return {
        "settings": dataclasses.asdict(s),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "workers": WORKERS,
        "server": {**served, "log": dataclasses.asdict(daemon_bench.read_log(log))},
        "reconcile": reconcile,
        "big_file": big,
        "daemon": daemon,
        **({} if wan_figures is None else {"wan": wan_figures}),
        "targets": [{**dataclasses.asdict(row), "verdict": row.verdict} for row in rows],
        "all_met": all(row.met for row in rows),
    }


# -- the table -----------------------------------------------------------------------------

COLUMNS = ("syncd", "SDK", "bare", "curl", "baseline")


def _s(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.2f} s"


def _mbps(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.1f} MB/s"


def median_rows(figures: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(figure, contender -> median) for the table of medians."""
    rec, big, daemon = figures["reconcile"]["medians"], figures["big_file"], figures["daemon"]
    n, k = figures["settings"]["files"], figures["settings"]["noop_files"]
    label = big_file.size_label(big["size"])
    rows = [
        (f"{phase} {n} x 4 KiB", {name: _s(rec[f"{phase}_{key}_s"]) for name, key in
                                  (("syncd", "syncd"), ("SDK", "sdk"), ("bare", "bare"))})
        for phase in ("upload", "download")
    ]
    rows.append((f"no-op over {k} files", {"syncd": _s(rec["noop_syncd_s"]),
                                           "baseline": _s(rec["noop_baseline_subprocess_s"])}))
    for d in ("upload", "download"):
        rows.append((f"{d} {label}", {c: _s(big["medians"][f"{d}_{c}_s"]) for c in ("syncd", "curl")}))
        rows.append((f"{d} {label} throughput", {c: _mbps(big["MBps"][f"{d}_{c}"]) for c in ("syncd", "curl")}))
    latency = daemon["latency"]
    rows.append(("drop-in latency p50 / p95", {"syncd": f"{_s(latency['p50_s'])} / {_s(latency['p95_s'])}"}))
    rows.append(("idle CPU", {"syncd": f"{daemon['idle']['cpu_percent']:.3f} %"}))
    return rows


def print_medians(figures: dict[str, Any]) -> None:
    rows = median_rows(figures)
    width = max(len(figure) for figure, _ in rows) + 2
    print(f"{'median':<{width}}" + "".join(f"{c:>16}" for c in COLUMNS))
    for figure, cells in rows:
        line = f"{figure:<{width}}" + "".join(f"{cells.get(c, '-'):>16}" for c in COLUMNS)
        print(line.rstrip())


def print_table(figures: dict[str, Any]) -> None:
    s, server, big = figures["settings"], figures["server"], figures["big_file"]
    rec, daemon = figures["reconcile"], figures["daemon"]
    print(
        f"\nsyncd benchmarks against one syncd serve ({server['url']}), {figures['cpus']} CPUs, "
        f"Python {figures['python']}, workers = {figures['workers']}, settle = {SETTLE} s; "
        f"medians over {s['repeat']} runs ({s['big_repeat']} for the big file)\n"
    )
    print_medians(figures)
    print()
    print_rows([Row(**{k: v for k, v in row.items() if k != "verdict"}) for row in figures["targets"]])
    rss = "unavailable" if big["curl_peak_rss"] is None else f"{big['curl_peak_rss'] / 1e6:.1f} MB"
    print(
        f"\ninterpreter start {rec['python_startup_s']:.3f} s, + import syncd/httpx {rec['syncd_import_s']:.3f} s "
        f"(in every syncd figure); curl: {big['curl'] or 'not installed'}, peak RSS {rss}; "
        f"server start {server['startup_s']:.2f} s, peak RSS {server['peak_rss'] / 1e6:.1f} MB, "
        f"log levels {server['log']['levels']}; daemon exit codes {daemon['exit_codes']}"
    )
    if "wan" in figures:
        wan_bench.print_table(figures["wan"])
    print(f"all targets met: {'yes' if figures['all_met'] else 'NO'}")


# -- the command ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke size (explicit flags still win)")
    parser.add_argument("--files", type=int, help=f"4 KiB files per transfer ({FULL.files})")
    parser.add_argument("--noop-files", type=int, help=f"tracked files of the no-op pass ({FULL.noop_files})")
    parser.add_argument("--repeat", type=int, help=f"runs per median ({FULL.repeat})")
    parser.add_argument("--big-size", type=parse_size, help="size of the big file (1G; K/M/G suffixes)")
    parser.add_argument("--big-repeat", type=int, help=f"big-file runs per median ({FULL.big_repeat})")
    parser.add_argument("--samples", type=int, help=f"drop-in latency samples ({FULL.samples})")
    parser.add_argument("--idle-files", type=int, help=f"files the idle daemon watches ({FULL.idle_files})")
    parser.add_argument("--idle-seconds", type=float, help=f"idle measurement window ({FULL.idle_seconds:.0f})")
    parser.add_argument("--out", default="bench-results.json", help="JSON output (bench-results.json)")
    parser.add_argument("--keep", help="work in this directory (must not exist) and keep it afterwards")
    parser.add_argument("--wan", action="store_true", help="also the WAN rows (wan_bench.py)")
    wan_bench.add_flags(parser, sizes=False)
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if getattr(args, f.name) is not None}
    return dataclasses.replace(QUICK if args.quick else FULL, **given), args


def wan_settings(settings: Settings, args: argparse.Namespace) -> wan_bench.Settings:
    """The WAN rows' settings: this run's --files, --repeat and --big-size, and the WAN flags."""
    sizes = argparse.Namespace(**{**vars(args), "files": settings.files, "repeat": settings.repeat,
                                  "big_size": settings.big_size})
    return wan_bench.settings_from(sizes, args.quick)


def main() -> None:
    settings, args = parse_args()
    with workdir(args.keep) as work:
        figures = run(settings, work, wan_settings(settings, args) if args.wan else None)
    print_table(figures)
    write_results(figures, args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
