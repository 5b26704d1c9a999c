"""An upload in parts killed half-way finishes without starting over (SPEC, "Resumable uploads").

`syncd reconcile` uploads one big file (above the 64 MiB multipart threshold, in 16 MiB parts)
to `syncd serve` through a recording proxy; once about half the parts have reached the proxy the
command is SIGKILLed, then run again to completion. Every request body the proxy received, in
both runs, counts as sent: the total must stay within 1.2 x the file (starting over costs about
1.5 x), the chat must hold exactly one copy (no abandoned upload either), and its content must
be the file's.

The default run uses 100 MiB (seven parts); `-m slow` runs the 320 MiB case as well. Each prints
its figures (`-s` shows them):

    python -m pytest -m slow tests/e2e/test_resume_upload.py -s
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import httpx
import pytest

from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.client import BddClient
from tests.support.daemon import wait_for
from tests.support.faultproxy import FaultProxy
from tests.support.syncd_cli import write_config

MiB = 1024 * 1024
PART = 16 * MiB  # what syncd sends a multipart upload in (above 64 MiB)
CHAT = "big-uploads"
BOUND = 1.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`syncd serve` in a subprocess on loopback; its URL."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "serve", "--data", str(tmp_path / "server"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, what="syncd serve to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def write_random(path: Path, size: int) -> str:
    """A file of `size` random bytes; its sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for start in range(0, size, 4 * MiB):
            chunk = os.urandom(min(4 * MiB, size - start))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


class Hashing:
    """A download target that only hashes what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False


def kill_half_way_then_finish(tmp_path: Path, url: str, size: int) -> dict[str, float]:
    folder = tmp_path / "f"
    folder.mkdir()
    sha = write_random(folder / "big.bin", size)
    parts = math.ceil(size / PART)
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
    with FaultProxy(url, keep_body=4096) as proxy:
        config = write_config(
            tmp_path / "syncd.toml", state_dir=tmp_path / "state", url=proxy.url, settle=0, timeout=60,
            folders=[{"name": "f", "path": folder, "chat_id": CHAT}],
        )
        argv = [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(config)]
        with (tmp_path / "run1.log").open("wb") as log:
            first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
            try:
                wait_for(lambda: proxy.count("/uploadFilePart") >= parts // 2 or first.poll() is not None,
                         timeout=240, what="half the parts at the proxy")
                assert first.poll() is None, "reconcile ended before it could be killed half-way"
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=30)
            finally:
                if first.poll() is None:
                    first.kill()
                    first.wait()
        sent_first, parts_first = proxy.received(), proxy.count("/uploadFilePart")
        with (tmp_path / "run2.log").open("wb") as log:
            second = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, env=env, timeout=240, check=False)
        assert second.returncode == 0, (tmp_path / "run2.log").read_text()[-3000:]
        sent_total, parts_total = proxy.received(), proxy.count("/uploadFilePart")
        inits = proxy.count("/initMultipartUploadFile")

    figures = {
        "size_MiB": size / MiB,
        "parts": parts,
        "parts_sent_run1": parts_first,
        "parts_sent_run2": parts_total - parts_first,
        "MiB_sent_run1": sent_first / MiB,
        "MiB_sent_run2": (sent_total - sent_first) / MiB,
        "ratio": sent_total / size,
    }
    print("\nresumed upload:", ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in figures.items()))
    assert inits == 1  # the second run went on with the upload the first one started
    with BddClient(url, "u", timeout=60) as remote:
        listed = remote.list_chat(CHAT)
        assert [(f.filename, f.status, f.size) for f in listed] == [("big.bin", FileStatus.OK, size)]
        assert listed[0].hashcode == sha
        back = Hashing()
        remote.download(listed[0].id, cast(BinaryIO, back))
    assert (back.size, back.digest.hexdigest()) == (size, sha)

    return figures


def test_an_upload_killed_half_way_sends_little_more_than_the_file(
    tmp_path: Path, served: str, record_property: pytest.RecordProperty
) -> None:
    figures = kill_half_way_then_finish(tmp_path, served, 100 * MiB)
    record_property("resume_ratio_100MiB", figures["ratio"])
    assert figures["ratio"] <= BOUND, figures


@pytest.mark.slow
def test_a_320_mib_upload_killed_half_way_sends_little_more_than_the_file(
    tmp_path: Path, served: str, record_property: pytest.RecordProperty
) -> None:
    figures = kill_half_way_then_finish(tmp_path, served, 320 * MiB)
    record_property("resume_ratio_320MiB", figures["ratio"])
    assert figures["ratio"] <= BOUND, figures
