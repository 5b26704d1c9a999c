"""syncd against the published SDK and a bare pooled loop over a modelled network (issue 13).

Run:
    .venv/bin/python tests/bench/wan_bench.py                  # 2000 files, 0/20/80 ms, 1 GiB, 3 runs
    .venv/bin/python tests/bench/wan_bench.py --quick          # 100 files, 16 MiB, one run each
    .venv/bin/python tests/bench/wan_bench.py --files 300 --rtt 0,20 --repeat 3 --big-size 64M

Flags: --files (4 KiB files per job, 2000), --rtt (round-trip times in ms, 0,20,80),
--handshake-rtts (round trips per new connection, 2: TCP + TLS 1.3), --bandwidth (bytes/s per
direction, K/M/G suffixes; unlimited), --repeat (runs per median, 3), --big-size (1G),
--changed (share of the files changed on each side in the mixed pass, 0.1), --jobs (a subset of
upload,download,mixed,noop,big), --url (a running `syncd serve`), --out, --keep, --quick.

One `syncd serve` on loopback; for each RTT a latency proxy (latency_proxy.py, in a child
process) in front of it, through which every contender talks. Set-up and checks go to the
server directly. The jobs, each run by the contenders of wan_contenders.py in turn, their order
rotating from run to run, medians over --repeat:

- upload N x 4 KiB: a fresh folder into a fresh chat;
- download N x 4 KiB: a chat of N files into an empty folder;
- mixed N: a synced folder of N files, --changed of them rewritten locally and as many others
  replaced remotely; one two-way pass (syncd and the bare loop; the SDK has no two-way pass);
- no-op N: the same synced folder, nothing changed (the SDK's is `sync_chat_files_to_remote`,
  which lists and skips; the bare loop's one listing and a stat of every file);
- big up / big down: one --big-size file into a fresh chat / out of one into an empty folder;
  here curl runs too (`curl -F` / `curl -o`, benchkit's command lines, as big_file.py's; handed
  the file id, so no listing), when it is on the PATH; the bare loop uploads on a one-connection pool.

Every pass is checked (sha256 of every file on the side it went to; for the big file the digest
of each copy is kept with its sample). Beside each median time: the client's CPU seconds per
file of the job (syncd and curl: the child process's user + sys, from RUSAGE_CHILDREN;
in-process contenders: process_time) and the connections it opened (proxy's count). The syncd
figures include interpreter start and imports, in time and CPU. Beside the big-file rows: each
contender's MB/s (10^6 bytes per second of median wall time), the peak RSS of the syncd
`reconcile` and curl processes (VmHWM, sampled every 20 ms; the largest over the runs) and
syncd's MB/s over curl's (JSON: `big`, per RTT and job).

Targets (issue 13): at 20 ms, syncd >= 3x the SDK's speed and <= 1.3x the bare loop's time, up
and down; at 0 ms, syncd's CPU per file <= 1.5x the bare loop's; at 0 and 20 ms, syncd's MB/s
>= 0.8x curl's for the big file each way; syncd's peak RSS in the big-file jobs <= 100 MB (the
issue's figures are for 1 GiB: read them at --big-size 1G). Printed at the end, each MET, MISSED
or n/a (not run, or no curl).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import benchkit
import wan_contenders as c
from benchkit import (
    WORKERS,
    Row,
    make_big_file,
    make_files,
    parse_size,
    print_rows,
    server_url,
    sha256_file,
    workdir,
    write_results,
)
from latency_proxy import Network, ProxyProcess
from wan_contenders import BARE, COLUMNS, CONTENDERS, CURL, SDK, SYNCD, Sample

FILE_SIZE = 4 * 1024
MB = 1_000_000
JOBS = ("upload", "download", "mixed", "noop", "big_up", "big_down")
BIG_JOBS = ("big_up", "big_down")
TARGETS = {"sdk_speedup_min": 3.0, "bare_ratio_max": 1.3, "cpu_ratio_max": 1.5, "target_rtt_ms": 20.0,
           "curl_ratio_min": 0.8, "syncd_peak_rss_max": 100 * MB}
#: The RTTs at which syncd's big-file MB/s is held against curl's.
CURL_RTTS_MS = (0.0, 20.0)
#: The big-file jobs' contenders: curl too when it is installed.
BIG_CONTENDERS = CONTENDERS + ((CURL,) if c.CURL_PATH else ())


@dataclass(frozen=True)
class Settings:
    files: int
    rtts: tuple[float, ...]
    handshake_rtts: int
    bandwidth: float | None
    repeat: int
    big_size: int
    changed: float
    jobs: tuple[str, ...]


FULL = Settings(files=2000, rtts=(0.0, 20.0, 80.0), handshake_rtts=2, bandwidth=None, repeat=3, big_size=1 << 30,
                changed=0.1, jobs=JOBS)
QUICK = dataclasses.replace(FULL, files=100, repeat=1, big_size=16 << 20)


@dataclass
class Bench:
    """What every job of one RTT needs: the server (direct), the proxy, the data, fresh names."""

    direct: str
    proxy: ProxyProcess
    work: Path
    src: Path
    want: dict[str, str]
    big: Path
    big_sha: str
    source_chat: str
    big_chat: str
    settings: Settings
    big_id: int = 0
    n: int = 0

    def fresh(self, what: str) -> str:
        self.n += 1
        return f"wan-{int(self.proxy.network.rtt * 1000)}ms-{what}-{self.n}"

    def linked_src(self, what: str) -> Path:
        """A fresh folder of hard links to the source files (syncd keeps its state in the folders it syncs)."""
        folder = c.fresh_dir(self.work / what)
        for name in self.want:
            os.link(self.src / name, folder / name)
        return folder

    def config(self, folder: Path, chat: str, *, state: Path | None = None, direct: bool = False) -> Path:
        """A syncd config (a fresh state dir unless `state`) for `folder` on `chat` through the proxy."""
        name = self.fresh("cfg")
        state = state or self.work / f"state-{name}"
        return c.syncd_config(self.work / f"{name}.toml", self.direct if direct else self.proxy.url, folder, chat,
                              state)


#: A prepared pass: the timed job, whether it is a child process, the check run afterwards
#: (which fails on a wrong copy, and returns the sha256 it found when the pass moved one file).
Pass = tuple[Callable[[], object], bool, Callable[[], str | None]]


def rounds(b: Bench, contenders: tuple[str, ...], prepare: Callable[[str], Pass]) -> dict[str, list[Sample]]:
    """--repeat rounds of every contender, the order rotating each round; each pass checked."""
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    for i in range(b.settings.repeat):
        for name in contenders[i % len(contenders):] + contenders[:i % len(contenders)]:
            job, child, check = prepare(name)
            sample = c.measure(job, lambda: b.proxy.stats().connections, child=child)
            samples[name].append(dataclasses.replace(sample, sha256=check()))
    return samples


# -- the jobs --------------------------------------------------------------------------------


def job_upload(b: Bench) -> dict[str, list[Sample]]:
    def prepare(name: str) -> Pass:
        chat, src = b.fresh(f"up-{name}"), b.linked_src("up")
        paths = sorted(src.iterdir())
        config = b.config(src, chat)
        jobs: dict[str, Pass] = {
            SYNCD: (lambda: c.syncd_pass(config), True, lambda: None),
            SDK: (lambda: c.sdk_upload(b.proxy.url, src, chat), False, lambda: None),
            BARE: (lambda: c.bare_upload(b.proxy.url, paths, chat), False, lambda: None),
        }
        job, child, _ = jobs[name]

        def check() -> None:
            if c.remote_digests(b.direct, chat) != b.want:
                raise RuntimeError(f"upload by {name}: the chat does not hold the folder")

        return job, child, check

    return rounds(b, CONTENDERS, prepare)


def job_download(b: Bench) -> dict[str, list[Sample]]:
    def prepare(name: str) -> Pass:
        dst = c.fresh_dir(b.work / "down")
        config = b.config(dst, b.source_chat)
        jobs: dict[str, Pass] = {
            SYNCD: (lambda: c.syncd_pass(config), True, lambda: None),
            SDK: (lambda: c.sdk_download(b.proxy.url, b.source_chat, dst), False, lambda: None),
            BARE: (lambda: c.bare_download(b.proxy.url, b.source_chat, dst), False, lambda: None),
        }
        job, child, _ = jobs[name]
        return job, child, lambda: c.check_folder(dst, b.want, f"download by {name}")

    return rounds(b, CONTENDERS, prepare)


def synced_folder(b: Bench, name: str, syncd: bool) -> tuple[Path, str, Path]:
    """A folder holding the source files and a chat holding the same, synced by syncd (its state
    dir returned) or seeded by a direct bare upload."""
    folder, chat = c.fresh_dir(b.work / f"synced-{name}"), b.fresh(f"synced-{name}")
    state = b.work / f"state-{chat}"
    for name in b.want:
        shutil.copyfile(b.src / name, folder / name)
    if syncd:
        report = c.syncd_pass(b.config(folder, chat, state=state, direct=True))
        if report["uploaded"] != len(b.want):
            raise RuntimeError(f"set-up sync uploaded {report['uploaded']} of {len(b.want)}")
    else:
        c.bare_upload(b.direct, sorted(folder.iterdir()), chat)
    return folder, chat, state


def job_mixed(b: Bench) -> dict[str, list[Sample]]:
    names = sorted(b.want)
    k = max(1, int(len(names) * b.settings.changed))
    here, there = names[:k], set(names[k:2 * k])

    def prepare(name: str) -> Pass:
        folder, chat, state = synced_folder(b, "mixed", syncd=name == SYNCD)
        for n in here:
            (folder / n).write_bytes(os.urandom(FILE_SIZE))
        scratch = b.work / "replacement.bin"
        old = c.newest(c.list_chat(b.direct, chat))
        with c.pooled(b.direct) as client:
            for n in sorted(there):  # what another client does: upload the new version, delete the old
                scratch.write_bytes(os.urandom(FILE_SIZE))
                c.put_file(client, scratch, chat, n)
                client.delete("/deleteFile", params={"file_id": old[n]["id"]}).raise_for_status()
        expected = {**c.digests(folder), **{n: h for n, h in c.remote_digests(b.direct, chat).items() if n in there}}
        reports: list[dict[str, Any]] = []
        if name == SYNCD:
            config = b.config(folder, chat, state=state)
            job: Callable[[], object] = lambda: reports.append(c.syncd_pass(config))  # noqa: E731
        else:
            job = lambda: c.bare_mixed(b.proxy.url, folder, chat, here, there)  # noqa: E731

        def check() -> None:
            c.check_folder(folder, expected, f"mixed pass by {name}")
            if c.remote_digests(b.direct, chat) != expected:
                raise RuntimeError(f"mixed pass by {name}: the chat does not match the folder")
            if reports and (reports[0]["uploaded"], reports[0]["downloaded"]) != (k, k):
                raise RuntimeError(f"mixed pass by syncd: {reports[0]}")

        return job, name == SYNCD, check

    return rounds(b, (SYNCD, BARE), prepare)


def job_noop(b: Bench) -> dict[str, list[Sample]]:
    folder, chat, state = synced_folder(b, "noop", syncd=True)
    config = b.config(folder, chat, state=state)
    plain = b.linked_src("noop-plain")  # the same files without syncd's marker directory, for the SDK

    def prepare(name: str) -> Pass:
        reports: list[dict[str, Any]] = []
        jobs: dict[str, Pass] = {
            SYNCD: (lambda: reports.append(c.syncd_pass(config)), True, lambda: None),
            SDK: (lambda: c.sdk_upload(b.proxy.url, plain, chat), False, lambda: None),
            BARE: (lambda: c.bare_noop(b.proxy.url, chat, folder), False, lambda: None),
        }
        job, child, _ = jobs[name]

        def check() -> None:
            if reports and (reports[0]["uploaded"], reports[0]["downloaded"]) != (0, 0):
                raise RuntimeError(f"no-op pass by syncd transferred: {reports[0]}")
            if len(c.remote_digests(b.direct, chat)) != len(b.want):
                raise RuntimeError(f"no-op pass by {name} changed the chat")

        return job, child, check

    return rounds(b, CONTENDERS, prepare)


def job_big_up(b: Bench) -> dict[str, list[Sample]]:
    def prepare(name: str) -> Pass:
        folder, chat = c.fresh_dir(b.work / "big-up"), b.fresh(f"big-up-{name}")
        os.link(b.big, folder / b.big.name)

        def bare() -> None:
            with c.pooled(b.proxy.url, 1) as client:
                c.put_file(client, folder / b.big.name, chat)

        config = b.config(folder, chat)
        jobs: dict[str, Pass] = {
            SYNCD: (lambda: c.syncd_measured(config), True, lambda: None),
            SDK: (lambda: c.sdk_upload(b.proxy.url, folder, chat), False, lambda: None),
            BARE: (bare, False, lambda: None),
            CURL: (lambda: c.curl_put(b.proxy.url, folder / b.big.name, chat), True, lambda: None),
        }
        job, child, _ = jobs[name]

        def check() -> str:
            got = c.remote_digests(b.direct, chat)  # the server's sha256 of what it received
            if got != {b.big.name: b.big_sha}:
                raise RuntimeError(f"big upload by {name} did not arrive intact")
            c.delete_chat(b.direct, chat)
            return got[b.big.name]

        return job, child, check

    return rounds(b, BIG_CONTENDERS, prepare)


def job_big_down(b: Bench) -> dict[str, list[Sample]]:
    def prepare(name: str) -> Pass:
        dst = c.fresh_dir(b.work / "big-down")
        config = b.config(dst, b.big_chat)
        jobs: dict[str, Pass] = {
            SYNCD: (lambda: c.syncd_measured(config), True, lambda: None),
            SDK: (lambda: c.sdk_download(b.proxy.url, b.big_chat, dst), False, lambda: None),
            BARE: (lambda: c.bare_download(b.proxy.url, b.big_chat, dst), False, lambda: None),
            CURL: (lambda: c.curl_get(b.proxy.url, b.big_id, dst / b.big.name), True, lambda: None),
        }
        job, child, _ = jobs[name]

        def check() -> str:
            got = sha256_file(dst / b.big.name)
            if got != b.big_sha:
                raise RuntimeError(f"big download by {name} is not identical")
            shutil.rmtree(dst)
            return got

        return job, child, check

    return rounds(b, BIG_CONTENDERS, prepare)


RUNNERS: dict[str, Callable[[Bench], dict[str, list[Sample]]]] = {
    "upload": job_upload, "download": job_download, "mixed": job_mixed, "noop": job_noop,
    "big_up": job_big_up, "big_down": job_big_down,
}


# -- one run ---------------------------------------------------------------------------------


def summarise(samples: dict[str, list[Sample]], files: int, size: int | None = None) -> dict[str, Any]:
    """Each contender's medians; with `size` (a big-file job) also its MB/s and its process's
    largest peak RSS (None in process)."""
    med = statistics.median
    out: dict[str, Any] = {}
    for name, runs in samples.items():
        fig: dict[str, Any] = {
            "median_s": med(s.seconds for s in runs),
            "median_cpu_s": med(s.cpu_s for s in runs),
            "cpu_per_file_ms": med(s.cpu_s for s in runs) / files * 1000,
            "median_connections": med(s.connections for s in runs),
        }
        if size is not None:
            rss = [s.peak_rss for s in runs if s.peak_rss is not None]
            fig["MBps"] = size / fig["median_s"] / MB
            fig["peak_rss"] = max(rss) if rss else None
        out[name] = {**fig, "samples": [dataclasses.asdict(s) for s in runs]}
    return out


def big_summary(jobs: dict[str, Any]) -> dict[str, Any]:
    """Per big-file job of one RTT: syncd's and curl's MB/s and peak RSS, and syncd's MB/s over
    curl's (None without curl)."""
    out: dict[str, Any] = {}
    for job in BIG_JOBS:
        if job not in jobs:
            continue
        syncd, curl = jobs[job][SYNCD], jobs[job].get(CURL)
        out[job] = {
            "syncd_MBps": syncd["MBps"],
            "curl_MBps": None if curl is None else curl["MBps"],
            "syncd_over_curl": None if curl is None else syncd["MBps"] / curl["MBps"],
            "syncd_peak_rss": syncd["peak_rss"],
            "curl_peak_rss": None if curl is None else curl["peak_rss"],
        }
    return out


def run(settings: Settings, work: Path, url: str | None = None) -> dict[str, Any]:
    """Every job at every RTT against `url` (a running `syncd serve`) or a server of its own."""
    s = settings
    work.mkdir(parents=True, exist_ok=True)
    src, big = work / "src", work / "big" / "big.bin"
    make_files(src, s.files, FILE_SIZE)
    want = c.digests(src)
    if "big_up" in s.jobs or "big_down" in s.jobs:
        make_big_file(big, s.big_size)
    by_rtt: dict[str, Any] = {}
    with server_url(url, work / "data") as base:
        source_chat, big_chat = "wan-source", "wan-big-source"
        c.bare_upload(base, sorted(src.iterdir()), source_chat)
        big_sha, big_id = "", 0
        if big.exists():
            big_sha = sha256_file(big)
            with c.pooled(base, 1) as client:
                big_id = c.put_file(client, big, big_chat)
        host, port = urlsplit(base).hostname or "127.0.0.1", urlsplit(base).port or 80
        for rtt in s.rtts:
            with ProxyProcess(host, port, Network(rtt / 1000, s.handshake_rtts, s.bandwidth)) as proxy:
                bench = Bench(base, proxy, work / f"rtt-{rtt:g}", src, want, big, big_sha, source_chat, big_chat, s,
                              big_id)
                bench.work.mkdir()
                jobs = {}
                for job in s.jobs:
                    big_job = job in BIG_JOBS
                    jobs[job] = summarise(RUNNERS[job](bench), 1 if big_job else s.files,
                                          s.big_size if big_job else None)
                    print(f"  {rtt:g} ms {job}: " + ", ".join(
                        f"{n} {v['median_s']:.2f} s" for n, v in jobs[job].items()), file=sys.stderr, flush=True)
                by_rtt[f"{rtt:g}"] = jobs
    figures: dict[str, Any] = {
        "settings": dataclasses.asdict(s),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "workers": WORKERS,
        "bare_connections": c.BARE_CONNECTIONS,
        "curl": benchkit.curl_version(c.CURL_PATH),
        "big_sha256": big_sha or None,
        "rtt": by_rtt,
        "big": {rtt: big_summary(jobs) for rtt, jobs in by_rtt.items() if any(j in jobs for j in BIG_JOBS)},
    }
    rows = target_rows(figures)
    figures["targets"] = [{**dataclasses.asdict(row), "verdict": row.verdict} for row in rows]
    return figures


# -- targets and the table -------------------------------------------------------------------


def target_rows(figures: dict[str, Any]) -> list[Row]:
    """Issue 13's targets as MET / MISSED, or n/a when the RTT or job was not run."""
    rtt, rows = figures["rtt"], []
    at20, at0 = rtt.get(f"{TARGETS['target_rtt_ms']:g}", {}), rtt.get("0", {})
    for job in ("upload", "download"):
        fig = at20.get(job)
        if fig is None:
            rows += [Row(f"20 ms {job}: SDK time / syncd time", "not measured", ">= 3.00x", None),
                     Row(f"20 ms {job}: syncd time / bare time", "not measured", "<= 1.30x", None)]
        else:
            speedup = fig[SDK]["median_s"] / fig[SYNCD]["median_s"]
            ratio = fig[SYNCD]["median_s"] / fig[BARE]["median_s"]
            rows += [
                Row(f"20 ms {job}: SDK time / syncd time", f"{speedup:.2f}x", f">= {TARGETS['sdk_speedup_min']:.2f}x",
                    speedup >= TARGETS["sdk_speedup_min"]),
                Row(f"20 ms {job}: syncd time / bare time", f"{ratio:.2f}x", f"<= {TARGETS['bare_ratio_max']:.2f}x",
                    ratio <= TARGETS["bare_ratio_max"]),
            ]
    for job in ("upload", "download"):
        fig = at0.get(job)
        label = f"0 ms {job}: syncd CPU/file / bare CPU/file"
        if fig is None:
            rows.append(Row(label, "not measured", "<= 1.50x", None))
        else:
            ratio = fig[SYNCD]["median_cpu_s"] / fig[BARE]["median_cpu_s"]
            rows.append(Row(label, f"{ratio:.2f}x", f"<= {TARGETS['cpu_ratio_max']:.2f}x",
                            ratio <= TARGETS["cpu_ratio_max"]))
    return rows + big_target_rows(figures)


def big_target_rows(figures: dict[str, Any]) -> list[Row]:
    """The big file's targets: syncd's MB/s over curl's each way at 0 and 20 ms, and syncd's peak
    RSS over every big-file pass it made."""
    size, big, rows = size_label(figures["settings"]["big_size"]), figures.get("big", {}), []
    wanted = f">= {TARGETS['curl_ratio_min']:.2f}x"
    for rtt in CURL_RTTS_MS:
        for job in BIG_JOBS:
            label = f"{rtt:g} ms {job_label(job, figures['settings'])}: syncd MB/s / curl MB/s"
            fig = big.get(f"{rtt:g}", {}).get(job)
            if fig is None:
                rows.append(Row(label, "not measured", wanted, None))
            elif fig["syncd_over_curl"] is None:
                rows.append(Row(label, "curl unavailable", wanted, None))
            else:
                ratio = fig["syncd_over_curl"]
                rows.append(Row(label, f"{ratio:.2f}x", wanted, ratio >= TARGETS["curl_ratio_min"]))
    peaks = [fig["syncd_peak_rss"] for jobs in big.values() for fig in jobs.values()]
    label, wanted = f"{size} each way: syncd reconcile peak RSS", f"<= {TARGETS['syncd_peak_rss_max'] / MB:.0f} MB"
    if peaks:
        rows.append(Row(label, f"{max(peaks) / MB:.1f} MB", wanted, max(peaks) <= TARGETS["syncd_peak_rss_max"]))
    else:
        rows.append(Row(label, "not measured", wanted, None))
    return rows


def size_label(size: int) -> str:
    return f"{size >> 30} GiB" if size >= 1 << 30 and size % (1 << 30) == 0 else f"{size >> 20} MiB"


def job_label(job: str, s: dict[str, Any]) -> str:
    n, size = s["files"], size_label(s["big_size"])
    return {"upload": f"upload {n} x 4 KiB", "download": f"download {n} x 4 KiB",
            "mixed": f"mixed two-way, {n} files", "noop": f"no-op, {n} files",
            "big_up": f"upload 1 x {size}", "big_down": f"download 1 x {size}"}[job]


def big_lines(fig: dict[str, Any], big: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """The two lines under a big-file row: (label, a cell per contender, syncd/curl) for MB/s and peak RSS."""
    ratio = "-" if big["syncd_over_curl"] is None else f"{big['syncd_over_curl']:.2f}x"
    mbps = [f"{fig[n]['MBps']:.1f} MB/s" if n in fig else "-" for n in COLUMNS]
    rss = [f"{fig[n]['peak_rss'] / MB:.1f} MB" if n in fig and fig[n]["peak_rss"] is not None else "-"
           for n in COLUMNS]
    return [("  throughput", mbps, ratio), ("  peak RSS", rss, "")]


def print_table(figures: dict[str, Any]) -> None:
    s = figures["settings"]
    bw = "unlimited" if s["bandwidth"] is None else f"{s['bandwidth'] / 1e6:g} MB/s"
    print(f"\nWAN benchmark: {figures['cpus']} CPUs, Python {figures['python']}, syncd workers = {figures['workers']}, "
          f"bare loop {figures['bare_connections']} connections; curl: {figures['curl'] or 'not installed'}; "
          f"handshake {s['handshake_rtts']} RTT per new connection, bandwidth {bw}; medians over {s['repeat']} runs.\n"
          "Each cell: time / client CPU ms per file / connections opened. Under a big-file row: MB/s (10^6 bytes/s)\n"
          "with syncd's over curl's, and the client process's peak RSS (in-process contenders: -).")
    width, cell = 26, 26
    for rtt, jobs in figures["rtt"].items():
        print(f"\n{'RTT ' + rtt + ' ms':<{width}}" + "".join(f"{name:>{cell}}" for name in COLUMNS)
              + f"{'syncd/curl':>12}")
        for job, fig in jobs.items():
            cells = [
                f"{fig[n]['median_s']:.2f} s / {fig[n]['cpu_per_file_ms']:.2f} ms / {fig[n]['median_connections']:g}"
                if n in fig else "-"
                for n in COLUMNS
            ]
            print(f"{job_label(job, s):<{width}}" + "".join(f"{x:>{cell}}" for x in cells))
            if job in BIG_JOBS:
                for label, xs, ratio in big_lines(fig, figures["big"][rtt][job]):
                    print((f"{label:<{width}}" + "".join(f"{x:>{cell}}" for x in xs) + f"{ratio:>12}").rstrip())
    print()
    rows = [Row(**{k: v for k, v in row.items() if k != "verdict"}) for row in figures["targets"]]
    print_rows(rows)
    verdicts = [row.verdict for row in rows]
    print(f"targets: {verdicts.count('MET')} met, {verdicts.count('MISSED')} missed, "
          f"{verdicts.count('n/a')} not measured")


# -- the command -----------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser, *, sizes: bool = True) -> None:
    """The WAN flags (with `sizes`, also --files, --repeat, --big-size, which run_all.py owns)."""
    parser.add_argument("--rtt", help="round-trip times in ms, comma-separated (0,20,80)")
    parser.add_argument("--handshake-rtts", type=int, help="round trips per new connection (2)")
    parser.add_argument("--bandwidth", type=parse_size, help="bytes/s per direction, K/M/G suffixes (unlimited)")
    parser.add_argument("--changed", type=float, help="share of files changed each side in the mixed pass (0.1)")
    parser.add_argument("--jobs", help=f"comma-separated subset of {','.join(JOBS)} (big = big_up,big_down)")
    if sizes:
        parser.add_argument("--files", type=int, help="4 KiB files per job (2000)")
        parser.add_argument("--repeat", type=int, help="runs per median (3)")
        parser.add_argument("--big-size", type=parse_size, help="size of the big file (1G; K/M/G suffixes)")


def settings_from(args: argparse.Namespace, quick: bool) -> Settings:
    given: dict[str, Any] = {}
    for field in ("files", "repeat", "big_size", "handshake_rtts", "bandwidth", "changed"):
        if getattr(args, field, None) is not None:
            given[field] = getattr(args, field)
    if args.rtt:
        given["rtts"] = tuple(float(x) for x in args.rtt.split(","))
    if args.jobs:
        names = [j.strip() for j in args.jobs.split(",")]
        expanded = [x for j in names for x in (("big_up", "big_down") if j == "big" else (j,))]
        unknown = set(expanded) - set(JOBS)
        if unknown:
            raise SystemExit(f"unknown jobs: {sorted(unknown)}")
        given["jobs"] = tuple(j for j in JOBS if j in expanded)
    return dataclasses.replace(QUICK if quick else FULL, **given)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100 files, 16 MiB, one run (explicit flags win)")
    add_flags(parser)
    parser.add_argument("--url", help="measure against this running `syncd serve` instead of starting one")
    parser.add_argument("--out", default="bench-results-wan.json", help="JSON output (bench-results-wan.json)")
    parser.add_argument("--keep", help="work in this directory (must not exist) and keep it afterwards")
    args = parser.parse_args()
    settings = settings_from(args, args.quick)
    with workdir(args.keep) as work:
        figures = run(settings, work, args.url)
    print_table(figures)
    write_results(figures, args.out)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
