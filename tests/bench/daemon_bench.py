"""`syncd run` as a service: drop-in upload latency and idle CPU, against one `syncd serve`.

Run:
    .venv/bin/python tests/bench/daemon_bench.py [--samples 30] [--idle-files 10000] [--idle-seconds 60] [--settle 1.0]
        [--url URL]

Without --url it starts its own `syncd serve` (and summarises its log); `run(..., url=URL)`
measures against one already running (tests/bench/run_all.py does that).

Two figures:

1. drop-in latency: a daemon watches one folder in `upload` mode (`after_upload = "keep"`,
   `settle = --settle`, `poll_interval = 30`, `workers = 4`). One at a time, ~0.5 s apart, a
   4 KiB file with a fresh name is written (open/write/close); the clock starts right after
   `close()` and stops when the server's chat listing (polled every 15 ms) shows the name with
   status `ok`. A first probe file proves the daemon is up and is not counted. p50/p95/max.
2. idle CPU: a fresh state dir and a two-way folder of --idle-files 64-byte files, synced once
   by `syncd reconcile`; then a daemon with the default `poll_interval` (30 s) and
   `rescan_interval` (3600 s). Once it logged `watching`, its start-up pass is over and its CPU
   time has stopped climbing, its CPU time (user + system, children included) is measured over
   --idle-seconds and reported as percent of one core, with its RSS.

Everything runs in subprocesses (`python -m syncd ...`), whose stderr goes to files in the work
directory; warnings, errors and non-JSON lines from the daemons are summarised in the output.
Results are printed as a table and written as JSON (default `bench-results-daemon.json`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
from benchkit import (
    PAGE,
    USER,
    WORKERS,
    Row,
    free_port,
    make_files,
    print_rows,
    reconcile,
    serve_argv,
    syncd_env,
    wait_healthy,
    workdir,
    write_config,
    write_results,
)

DROP_SIZE = 4 * 1024
IDLE_FILE_SIZE = 64
#: How often the chat listing is polled while a dropped file is awaited.
POLL_EVERY = 0.015
#: Pause between one sample's arrival and the next drop.
SPACING = 0.5
#: How long one dropped file may take to appear before it counts as lost.
ARRIVAL_TIMEOUT = 30.0
#: How long the daemon may take to start (marker dir, first probe, `watching`).
START_TIMEOUT = 300.0
#: Extra wait after `watching` before the idle measurement, for the start-up pass to finish.
IDLE_GRACE = 5.0
#: The daemon counts as quiet when its CPU time grows by at most this much over QUIET_WINDOW.
QUIET_WINDOW = 2.0
QUIET_MAX_CPU_S = 0.01
QUIET_TIMEOUT = 120.0
#: SIGTERM, then SIGKILL after this long (the daemon itself allows 10 s for transfers in flight).
STOP_TIMEOUT = 20.0

#: Latency targets are relative to the configured settle time.
TARGETS = {
    "latency_p50_over_settle_max_s": 0.3,
    "latency_p95_over_settle_max_s": 1.0,
    "idle_cpu_percent_max": 0.5,
}


# -- processes -----------------------------------------------------------------------------


class Procs:
    """Every subprocess this benchmark starts, so that all of them are stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.exit_codes: dict[str, int | None] = {}
        self._names: dict[int, str] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        self._logs.append(out)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out, env=syncd_env())
        self.procs.append(proc)
        self._names[proc.pid] = name
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int | None:
        """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; the exit code (negative: killed by signal)."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self.exit_codes[self._names[proc.pid]] = proc.returncode
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)
        for out in self._logs:
            out.close()


@contextlib.contextmanager
def running() -> Iterator[Procs]:
    procs = Procs()
    try:
        yield procs
    finally:
        procs.stop_all()


def start_server(procs: Procs, work: Path) -> str:
    """`syncd serve` on a free loopback port; its URL once `/health` answers."""
    port = free_port()
    server = procs.start("serve", [*serve_argv(work / "data", port), "--log-format", "json"], work / "serve.log")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, server, why=lambda: tail(work / "serve.log"))
    return url


def start_daemon(procs: Procs, config: Path, log: Path, name: str) -> subprocess.Popen[bytes]:
    return procs.start(name, [sys.executable, "-m", "syncd", "run", "-c", str(config)], log)


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"syncd run exited {proc.returncode} early; last log lines:\n{tail(log)}")


# -- config and files ----------------------------------------------------------------------


def drop(folder: Path, name: str, size: int = DROP_SIZE) -> float:
    """Write one file with open/write/close; the monotonic time right after close()."""
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, os.urandom(size))
    finally:
        os.close(fd)
    return time.monotonic()


def listed_ok(client: httpx.Client, chat_id: str, name: str) -> bool:
    """Whether the chat's listing holds `name` in status `ok` (pages through all of it)."""
    offset = 0
    while True:
        r = client.get("/listChatFiles", params={"chat_id": chat_id, "offset": offset, "limit": PAGE})
        r.raise_for_status()
        data = r.json()["data"]
        items: list[dict[str, Any]] = data["items"]
        if any(item.get("filename") == name and item.get("status") == "ok" for item in items):
            return True
        offset += len(items)
        if not items or offset >= int(data["total"]):
            return False


def remote_count(url: str, chat_id: str) -> int:
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, timeout=60) as client:
        r = client.get("/listChatFiles", params={"chat_id": chat_id, "offset": 0, "limit": 1})
        r.raise_for_status()
        return int(r.json()["data"]["total"])


def wait_listed(
    client: httpx.Client, chat_id: str, name: str, t0: float, timeout: float, check: Iterator[None] | None = None
) -> float | None:
    """Seconds from `t0` until `name` is listed with status ok; None after `timeout`."""
    while True:
        if listed_ok(client, chat_id, name):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        if check is not None:
            next(check)
        time.sleep(POLL_EVERY)


def _alive_forever(proc: subprocess.Popen[bytes], log: Path) -> Iterator[None]:
    while True:
        check_alive(proc, log)
        yield


# -- the daemon's log ----------------------------------------------------------------------


@dataclass
class LogSummary:
    """What a daemon wrote to stderr: events by name, and every line that was not routine."""

    lines: int = 0
    events: dict[str, int] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    notable: list[str] = field(default_factory=list)  # warnings, errors, non-JSON lines (first 30)


def read_log(log: Path, start: int = 0, end: int | None = None) -> LogSummary:
    """Summarise `log` from byte `start` to `end` (default: its current end)."""
    with log.open("rb") as f:
        f.seek(start)
        raw = f.read() if end is None else f.read(max(0, end - start))
    summary = LogSummary()
    events: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        summary.lines += 1
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            levels["non-json"] += 1
            if len(summary.notable) < 30:
                summary.notable.append(line[:500])
            continue
        level = str(doc.get("level", "?"))
        events[str(doc.get("event", "?"))] += 1
        levels[level] += 1
        if level not in ("info", "debug") and len(summary.notable) < 30:
            summary.notable.append(line[:500])
    summary.events, summary.levels = dict(events), dict(levels)
    return summary


def log_has_event(log: Path, event: str) -> bool:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            doc = json.loads(line)
            if isinstance(doc, dict) and doc.get("event") == event:
                return True
    return False


# -- 1. drop-in latency --------------------------------------------------------------------


@dataclass
class LatencyResult:
    samples: int
    settle: float
    latencies_s: list[float | None]
    arrived: int
    probe_s: float
    startup_s: float
    p50_s: float | None = None
    p95_s: float | None = None
    max_s: float | None = None
    daemon_exit_code: int | None = None
    log: LogSummary = field(default_factory=LogSummary)


def percentile(values: list[float], pct: int) -> float:
    """Linear interpolation between closest ranks (`statistics.quantiles`, inclusive method)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def bench_latency(procs: Procs, url: str, work: Path, samples: int, settle: float) -> LatencyResult:
    folder = work / "drop"
    folder.mkdir(parents=True)
    state = work / "state-drop"
    chat = "bench-daemon-drop"
    config = write_config(
        work / "drop.toml", state_dir=state, url=url, workers=WORKERS, settle=settle, daemon={"poll_interval": 30},
        folders=[{"name": "drop", "path": folder, "chat_id": chat, "mode": "upload", "after_upload": "keep"}],
    )
    log = work / "daemon-drop.log"
    started = time.monotonic()
    daemon = start_daemon(procs, config, log, "run-drop")
    while not (folder / ".syncd").is_dir():
        check_alive(daemon, log)
        if time.monotonic() - started > START_TIMEOUT:
            raise RuntimeError(f"no {folder / '.syncd'} after {START_TIMEOUT:.0f} s; log:\n{tail(log)}")
        time.sleep(0.05)
    latencies: list[float | None] = []
    with httpx.Client(base_url=url, headers={"X-User-Id": USER}, timeout=30) as client:
        alive = _alive_forever(daemon, log)
        t0 = drop(folder, "probe-0000.bin")
        probe = wait_listed(client, chat, "probe-0000.bin", t0, START_TIMEOUT, alive)
        if probe is None:
            raise RuntimeError(f"the probe file never arrived within {START_TIMEOUT:.0f} s; log:\n{tail(log)}")
        startup = time.monotonic() - started
        for i in range(samples):
            time.sleep(SPACING)
            name = f"drop-{i:04d}-{os.getpid()}.bin"
            t0 = drop(folder, name)
            latencies.append(wait_listed(client, chat, name, t0, settle + ARRIVAL_TIMEOUT, alive))
    result = LatencyResult(
        samples=samples,
        settle=settle,
        latencies_s=latencies,
        arrived=sum(1 for x in latencies if x is not None),
        probe_s=probe,
        startup_s=startup,
    )
    got = sorted(x for x in latencies if x is not None)
    if got:
        result.p50_s, result.p95_s, result.max_s = percentile(got, 50), percentile(got, 95), got[-1]
    result.daemon_exit_code = procs.stop(daemon)
    result.log = read_log(log)
    return result


# -- 2. idle CPU ---------------------------------------------------------------------------


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU time of `proc`, its reaped children and its live descendants."""
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return float(total)


@dataclass
class IdleResult:
    files: int
    seconds: float
    reconcile_s: float
    synced: int
    watching_after_s: float
    quiet_after_s: float
    quiet: bool
    cpu_s: float
    wall_s: float
    cpu_percent: float
    rss_mib: float
    threads: int
    daemon_exit_code: int | None = None
    log_while_idle: LogSummary = field(default_factory=LogSummary)
    log: LogSummary = field(default_factory=LogSummary)


def bench_idle(procs: Procs, url: str, work: Path, files: int, seconds: float) -> IdleResult:
    folder = work / "idle"
    make_files(folder, files, IDLE_FILE_SIZE, prefix="idle")
    chat = "bench-daemon-idle"
    config = write_config(
        work / "idle.toml", state_dir=work / "state-idle", url=url, workers=WORKERS, settle=1.0,
        folders=[{"name": "idle", "path": folder, "chat_id": chat, "mode": "two-way"}],
    )
    done, summary = reconcile(config)
    if not summary.get("ok"):
        raise RuntimeError(f"syncd reconcile not ok: {done.stdout[-1000:]}")
    reconcile_s = done.seconds
    synced = remote_count(url, chat)

    log = work / "daemon-idle.log"
    started = time.monotonic()
    daemon = start_daemon(procs, config, log, "run-idle")
    proc = psutil.Process(daemon.pid)
    while not log_has_event(log, "watching"):
        check_alive(daemon, log)
        if time.monotonic() - started > START_TIMEOUT:
            raise RuntimeError(f"no 'watching' after {START_TIMEOUT:.0f} s; log:\n{tail(log)}")
        time.sleep(0.1)
    watching_after = time.monotonic() - started
    time.sleep(IDLE_GRACE)
    quiet = False
    quiet_from = time.monotonic()
    while time.monotonic() - quiet_from < QUIET_TIMEOUT:
        check_alive(daemon, log)
        before = cpu_seconds(proc)
        time.sleep(QUIET_WINDOW)
        if cpu_seconds(proc) - before <= QUIET_MAX_CPU_S:
            quiet = True
            break
    quiet_after = time.monotonic() - started

    log_start = log.stat().st_size
    cpu0, wall0 = cpu_seconds(proc), time.monotonic()
    time.sleep(seconds)
    check_alive(daemon, log)
    cpu1, wall1 = cpu_seconds(proc), time.monotonic()
    log_end = log.stat().st_size
    rss = proc.memory_info().rss
    threads = proc.num_threads()
    result = IdleResult(
        files=files,
        seconds=seconds,
        reconcile_s=reconcile_s,
        synced=synced,
        watching_after_s=watching_after,
        quiet_after_s=quiet_after,
        quiet=quiet,
        cpu_s=cpu1 - cpu0,
        wall_s=wall1 - wall0,
        cpu_percent=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        rss_mib=rss / 2**20,
        threads=threads,
    )
    result.daemon_exit_code = procs.stop(daemon)
    result.log_while_idle = read_log(log, log_start, log_end)
    result.log = read_log(log)
    return result


# -- the whole run -------------------------------------------------------------------------


def run(
    samples: int, idle_files: int, idle_seconds: float, settle: float, workdir: Path, url: str | None = None
) -> dict[str, Any]:
    """Both figures, against `url` (a running `syncd serve`) or a server of their own."""
    with running() as procs:
        server = url or start_server(procs, workdir)
        latency = bench_latency(procs, server, workdir / "latency", samples, settle)
        idle = bench_idle(procs, server, workdir / "idle", idle_files, idle_seconds)
        procs.stop_all()
        server_log = LogSummary() if url else read_log(workdir / "serve.log")
        exit_codes = dict(procs.exit_codes)
    p50_max = settle + TARGETS["latency_p50_over_settle_max_s"]
    p95_max = settle + TARGETS["latency_p95_over_settle_max_s"]
    met = {
        "latency_p50": latency.p50_s is not None and latency.arrived == samples and latency.p50_s <= p50_max,
        "latency_p95": latency.p95_s is not None and latency.arrived == samples and latency.p95_s <= p95_max,
        "idle_cpu": idle.cpu_percent <= TARGETS["idle_cpu_percent_max"],
    }
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "targets": {"latency_p50_max_s": p50_max, "latency_p95_max_s": p95_max, **TARGETS},
        "latency": asdict(latency),
        "idle": asdict(idle),
        "server_log": asdict(server_log),
        "exit_codes": exit_codes,
        "targets_met": met,
    }


def _fmt(value: float | None, unit: str = " s", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def print_table(figures: dict[str, Any]) -> None:
    lat, idle = figures["latency"], figures["idle"]
    print(f"\nsyncd run, settle = {lat['settle']} s, {figures['cpus']} CPUs, workers = {WORKERS}")
    print_rows(target_rows(figures))
    print(f"drop-in latency max {_fmt(lat['max_s'])}; idle RSS {idle['rss_mib']:.1f} MiB")
    print(
        f"daemon start to first upload {lat['startup_s']:.2f} s (probe {lat['probe_s']:.2f} s); "
        f"idle: reconcile of {idle['files']} files {idle['reconcile_s']:.1f} s ({idle['synced']} listed), "
        f"'watching' after {idle['watching_after_s']:.1f} s, quiet after {idle['quiet_after_s']:.1f} s"
        f"{'' if idle['quiet'] else ' (NEVER QUIET: CPU still climbing)'}, "
        f"CPU {idle['cpu_s']:.3f} s, {idle['threads']} threads"
    )
    print(f"exit codes after SIGTERM: {figures['exit_codes']}")
    for title, summary in (
        ("drop-in daemon log", lat["log"]),
        ("idle daemon log, measured window only", idle["log_while_idle"]),
        ("idle daemon log", idle["log"]),
        ("server log", figures["server_log"]),
    ):
        print(f"{title}: {summary['lines']} lines, levels {summary['levels']}, events {summary['events']}")
        for line in summary["notable"][:10]:
            print(f"    {line}")


def target_rows(figures: dict[str, Any]) -> list[Row]:
    """The two figures' targets, one row each."""
    lat, idle, tgt, met = figures["latency"], figures["idle"], figures["targets"], figures["targets_met"]
    arrived = lat["arrived"] == lat["samples"]
    return [
        Row(f"drop-in latency p50 (settle {lat['settle']} s)", _fmt(lat["p50_s"]),
            f"<= {tgt['latency_p50_max_s']:.1f} s", met["latency_p50"]),
        Row(f"drop-in latency p95 (settle {lat['settle']} s)", _fmt(lat["p95_s"]),
            f"<= {tgt['latency_p95_max_s']:.1f} s", met["latency_p95"]),
        Row("drop-in samples arrived", f"{lat['arrived']}/{lat['samples']}", f"{lat['samples']}/{lat['samples']}",
            arrived),
        Row(f"idle CPU ({idle['files']} files, {idle['wall_s']:.0f} s)", f"{idle['cpu_percent']:.3f} %",
            f"<= {tgt['idle_cpu_percent_max']} %", met["idle_cpu"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--idle-files", type=int, default=10000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--out", default="bench-results-daemon.json")
    parser.add_argument("--keep", help="work in this directory and keep it (logs, state) for inspection afterwards")
    parser.add_argument("--url", help="measure against this running `syncd serve` instead of starting one")
    args = parser.parse_args()
    with workdir(args.keep) as work:
        figures = run(args.samples, args.idle_files, args.idle_seconds, args.settle, work, url=args.url)
    print_table(figures)
    write_results(figures, args.out)

if __name__ == "__main__":
    main()
