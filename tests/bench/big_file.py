"""One big file up and down through `syncd serve`: byte-identical, and peak memory of both sides.

Run:  .venv/bin/python tests/bench/big_file.py --size 1G   (prints and writes JSON)

The server runs as `syncd serve` in a subprocess; the client (syncd's BddRemote)
runs in another, so each process's peak RSS (VmHWM) is its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from benchkit import serve, workdir, write_results

CLIENT = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
from syncd.remote.bdd import BddRemote
url, src, dst = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
size = src.stat().st_size
with BddRemote(url, "bench", timeout=120) as remote:
    t0 = time.monotonic()
    file_id = remote.upload(src, chat_id="bench", filename=src.name, size=size)
    t1 = time.monotonic()
    with open(dst, "wb") as out:
        remote.download(file_id, out)
    t2 = time.monotonic()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"upload_s": t1 - t0, "download_s": t2 - t1, "client_peak_rss": rss}))
"""


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def run(size: int, workdir: Path) -> dict[str, object]:
    src, dst = workdir / "big.bin", workdir / "back.bin"
    with open(src, "wb") as f:
        block = os.urandom(4 * 1024 * 1024)
        written = 0
        while written < size:
            n = min(len(block), size - written)
            f.write(block[:n])
            f.write(os.urandom(16)[: max(0, min(16, size - written - n))])  # no two blocks alike
            written += n + max(0, min(16, size - written - n))
    with serve(workdir / "data") as server:
        out = subprocess.run([sys.executable, "-c", CLIENT, server.url, str(src), str(dst)],
                             capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout)
        figures["server_peak_rss"] = peak_rss(server.proc.pid)
        figures["server_startup_s"] = server.startup_s
    figures["size"] = size
    figures["identical"] = sha256_file(src) == sha256_file(dst)
    figures["upload_MBps"] = size / figures["upload_s"] / 1e6
    figures["download_MBps"] = size / figures["download_s"] / 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1G")
    parser.add_argument("--out", default="bench-results-big-file.json")
    args = parser.parse_args()
    with workdir(None) as work:
        figures = run(parse_size(args.size), work)
    for key, value in figures.items():
        print(f"{key:>18}: {value / 1e6:.1f} MB" if key.endswith("rss") else f"{key:>18}: {value}")
    write_results(figures, args.out)


if __name__ == "__main__":
    main()
