"""One big file up and down through `syncd serve`: byte-identical, peak memory, and syncd against curl.

Run:  .venv/bin/python tests/bench/big_file.py --size 1G              (round trip through syncd's client)
      .venv/bin/python tests/bench/big_file.py --size 1G --vs-curl    (`syncd reconcile` against curl)
      add --url URL to either to use a running `syncd serve` instead of starting one.

Round trip (`run`): the server runs as `syncd serve` in a subprocess; the client (syncd's
BddClient) runs in another, so each process's peak RSS (VmHWM) is its own.

Against curl (`versus_curl`), each timed as subprocess wall time, median over --repeat:
- syncd as users run it: `syncd reconcile` on a two-way folder holding only the big file (upload),
  then with a fresh state dir on an empty folder (download); its peak RSS is its VmHWM, sampled;
- curl: `curl -F` of the file to `/uploadSimpleFile` with the `params` JSON (filename, biz,
  biz_params, size; no hashcode, the server computes it), then `curl -o` from `/downloadFile`.
Every copy is checked by sha256: the server's hashcode of each upload, and each downloaded file.
Without curl on PATH its figures are reported as unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchkit import (
    WORKERS,
    Measured,
    Row,
    curl_download,
    curl_upload,
    curl_version,
    list_chat,
    make_big_file,
    parse_size,
    peak_rss,
    print_rows,
    reconcile,
    serve,
    server_url,
    sha256_file,
    workdir,
    write_config,
    write_results,
)

MB = 1_000_000
TARGETS = {"syncd_over_curl_min": 0.70, "syncd_peak_rss_max": 100 * MB}

CLIENT = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
from syncd.remote.bdd.client import BddClient
url, src, dst = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
size = src.stat().st_size
with BddClient(url, "bench", timeout=120) as remote:
    t0 = time.monotonic()
    file_id = remote.upload(src, chat_id="bench", filename=src.name, size=size)
    t1 = time.monotonic()
    with open(dst, "wb") as out:
        remote.download(file_id, out)
    t2 = time.monotonic()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"upload_s": t1 - t0, "download_s": t2 - t1, "client_peak_rss": rss}))
"""


# -- round trip through syncd's client -----------------------------------------------------


def round_trip(url: str, src: Path, dst: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CLIENT, url, str(src), str(dst)],
                         capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(out.stdout)
    return figures


def run(size: int, workdir: Path, url: str | None = None) -> dict[str, object]:
    """The round trip, against `url` (a running `syncd serve`) or a server of its own; the
    server's peak RSS only in the latter case."""
    src, dst = workdir / "big.bin", workdir / "back.bin"
    make_big_file(src, size)
    if url is None:
        with serve(workdir / "data") as server:
            figures = round_trip(server.url, src, dst)
            figures["server_peak_rss"] = peak_rss(server.proc.pid)
            figures["server_startup_s"] = server.startup_s
    else:
        figures = round_trip(url, src, dst)
    figures["size"] = size
    figures["identical"] = sha256_file(src) == sha256_file(dst)
    figures["upload_MBps"] = size / figures["upload_s"] / 1e6
    figures["download_MBps"] = size / figures["download_s"] / 1e6
    return figures


# -- syncd reconcile against curl ----------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One transfer of the big file by one contender in one direction."""

    seconds: float
    peak_rss: int
    identical: bool


def remote_sha256(url: str, chat_id: str, name: str) -> str | None:
    """The hashcode the server computed for `name` in the chat (None if it is not listed ok)."""
    for item in list_chat(url, chat_id):
        if item["filename"] == name and item["status"] == "ok":
            return str(item["hashcode"])
    return None


def digest_and_remove(path: Path) -> str:
    """sha256 of a downloaded copy, which is then deleted to spare the disk."""
    digest = sha256_file(path)
    path.unlink()
    return digest


def syncd_pass(url: str, folder: Path, chat_id: str, expect: str) -> Measured:
    """`syncd reconcile` of `folder` (two-way, fresh state dir) on `chat_id`; it must have done
    exactly one `expect` (uploaded / downloaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(
        folder.parent / f"{folder.name}.toml", state_dir=folder.parent / f"state-{folder.name}", url=url,
        workers=WORKERS, folders=[{"name": "big", "path": folder, "chat_id": chat_id}],
    )
    done, summary = reconcile(config)
    report = summary["folders"][0]
    if not summary.get("ok") or report[expect] != 1:
        raise RuntimeError(f"syncd reconcile did not do one {expect}: {summary}")
    return done


def syncd_round_trip(url: str, src: Path, want: str, work: Path) -> tuple[Leg, Leg]:
    chat = f"bench-big-syncd-{work.name}"
    (work / "up").mkdir(parents=True)
    os.link(src, work / "up" / src.name)  # the folder holds only the big file
    up = syncd_pass(url, work / "up", chat, "uploaded")
    down = syncd_pass(url, work / "down", chat, "downloaded")
    return (
        Leg(up.seconds, up.peak_rss, remote_sha256(url, chat, src.name) == want),
        Leg(down.seconds, down.peak_rss, digest_and_remove(work / "down" / src.name) == want),
    )


def curl_round_trip(curl: str, url: str, src: Path, want: str, work: Path) -> tuple[Leg, Leg]:
    chat = f"bench-big-curl-{work.name}"
    up, file_id = curl_upload(curl, url, src, chat)
    dst = work / "curl-down.bin"
    down = curl_download(curl, url, file_id, dst)
    return (
        Leg(up.seconds, up.peak_rss, remote_sha256(url, chat, src.name) == want),
        Leg(down.seconds, down.peak_rss, digest_and_remove(dst) == want),
    )


def versus_curl(size: int, workdir: Path, url: str | None = None, repeat: int = 1) -> dict[str, Any]:
    """syncd reconcile against curl, one `size`-byte file up and down, `repeat` times."""
    src = workdir / "src" / "big.bin"
    make_big_file(src, size)
    want = sha256_file(src)
    curl = shutil.which("curl")
    legs: dict[str, list[tuple[Leg, Leg]]] = {"syncd": [], "curl": []}
    with server_url(url, workdir / "data") as base:
        for i in range(repeat):
            work = workdir / f"run-{i}"
            legs["syncd"].append(syncd_round_trip(base, src, want, work))
            if curl is not None:
                legs["curl"].append(curl_round_trip(curl, base, src, want, work))
    return summarise(size, repeat, curl_version(curl), legs)


def summarise(size: int, repeat: int, curl: str | None, legs: dict[str, list[tuple[Leg, Leg]]]) -> dict[str, Any]:
    """Medians, MB/s, ratios and targets; curl's figures None when it did not run."""
    seconds: dict[str, dict[str, list[float]]] = {"upload": {}, "download": {}}
    medians: dict[str, float | None] = {}
    mbps: dict[str, float | None] = {}
    identical: dict[str, bool | None] = {}
    for name, runs in legs.items():
        for index, direction in enumerate(("upload", "download")):
            mine = [pair[index] for pair in runs]
            key = f"{direction}_{name}"
            seconds[direction][name] = [leg.seconds for leg in mine]
            medians[f"{key}_s"] = statistics.median(seconds[direction][name]) if mine else None
            mbps[key] = size / medians[f"{key}_s"] / MB if mine else None  # type: ignore[operator]
            identical[key] = all(leg.identical for leg in mine) if mine else None
    ratios = {
        f"{d}_syncd_over_curl": None if mbps[f"{d}_curl"] is None else mbps[f"{d}_syncd"] / mbps[f"{d}_curl"]  # type: ignore[operator]
        for d in ("upload", "download")
    }
    syncd_rss = max(leg.peak_rss for pair in legs["syncd"] for leg in pair)
    met = {
        **{f"{key}_min": None if r is None else r >= TARGETS["syncd_over_curl_min"] for key, r in ratios.items()},
        "syncd_peak_rss": syncd_rss <= TARGETS["syncd_peak_rss_max"],
        "identical": all(v is not False for v in identical.values()),
    }
    return {
        "size": size,
        "repeat": repeat,
        "curl": curl,
        "seconds": seconds,
        "medians": medians,
        "MBps": mbps,
        "ratios": ratios,
        "identical": identical,
        "syncd_peak_rss": syncd_rss,
        "curl_peak_rss": max((leg.peak_rss for pair in legs["curl"] for leg in pair), default=None),
        "targets": TARGETS,
        "targets_met": met,
    }


def size_label(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def target_rows(figures: dict[str, Any]) -> list[Row]:
    """The figure's targets, one row each."""
    label, ratios, met = size_label(figures["size"]), figures["ratios"], figures["targets_met"]
    rows = [
        Row(f"{label} {d}: syncd MB/s / curl MB/s", "curl unavailable" if ratios[f"{d}_syncd_over_curl"] is None
            else f"{ratios[f'{d}_syncd_over_curl']:.2f}x", f">= {TARGETS['syncd_over_curl_min']:.2f}x",
            met[f"{d}_syncd_over_curl_min"])
        for d in ("upload", "download")
    ]
    rows.append(Row(f"{label}: syncd reconcile peak RSS", f"{figures['syncd_peak_rss'] / MB:.1f} MB",
                    f"<= {TARGETS['syncd_peak_rss_max'] / MB:.0f} MB", met["syncd_peak_rss"]))
    rows.append(Row(f"{label}: every copy identical (sha256)", "yes" if met["identical"] else "NO", "yes",
                    met["identical"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1G")
    parser.add_argument("--vs-curl", action="store_true", help="`syncd reconcile` against curl instead")
    parser.add_argument("--repeat", type=int, default=1, help="with --vs-curl: runs to take the median of")
    parser.add_argument("--url", help="measure against this running `syncd serve` instead of starting one")
    parser.add_argument("--out", default="bench-results-big-file.json")
    args = parser.parse_args()
    with workdir(None) as work:
        if args.vs_curl:
            figures = versus_curl(parse_size(args.size), work, args.url, args.repeat)
        else:
            figures = run(parse_size(args.size), work, args.url)
    if args.vs_curl:
        print(json.dumps({k: figures[k] for k in ("medians", "MBps", "identical")}, indent=2))
        print_rows(target_rows(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value / 1e6:.1f} MB" if key.endswith("rss") else f"{key:>18}: {value}")
    write_results(figures, args.out)


if __name__ == "__main__":
    main()
