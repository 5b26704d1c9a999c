"""A multipart upload sends its parts several at a time, and stays exact doing so.

Through a `FaultProxy` in front of the test's `syncd serve`: the parts really are in flight
together (the proxy holds each until four have arrived), the service's copy is byte-identical,
progress adds up, and a part that fails stops the upload in a state the token resumes from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import ItemError
from syncd.remote.bdd.client import BddClient, MultipartUploadInterrupted
from tests.support.faultproxy import Fault, FaultProxy, Forward, Reset, Respond, Seen

KiB = 1024
PART = 256 * KiB
IN_FLIGHT = 4


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[BddClient]:
    with BddClient(
        proxy.url, "alice", multipart_threshold=2 * PART, part_size=PART, parts_in_flight=IN_FLIGHT,
        retry_attempts=2, retry_backoff=0.01, max_wait=0.05, timeout=10.0,
    ) as made:
        yield made


def big(tmp_path: Path, parts: int) -> tuple[Path, bytes]:
    data = os.urandom(parts * PART - 777)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def listed(client: BddClient, chat: str) -> dict[str, str]:
    return {f.filename: f.hashcode for f in client.list_chat(chat)}


def test_parts_go_several_at_once_and_the_copy_is_exact(client: BddClient, proxy: FaultProxy, tmp_path: Path) -> None:
    path, data = big(tmp_path, 9)
    met = threading.Event()
    together = threading.Barrier(IN_FLIGHT, action=met.set, timeout=20)

    def rule(seen: Seen) -> Fault | None:
        if seen.path == "/uploadFilePart" and not met.is_set():
            # Forwarded only once four parts are in flight at the same time; a broken barrier is a
            # timeout (`met` stays unset: the test fails) or the one put away below.
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait()
            together.abort()  # once is proof enough: later parts pass at once
        return None

    proxy.rule = rule
    seen: list[int] = []
    client.upload(path, chat_id="parts", filename="big.bin", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                  progress=seen.append)
    assert met.is_set()  # four parts were in flight at the same time
    assert listed(client, "parts") == {"big.bin": hashlib.sha256(data).hexdigest()}
    assert seen[-1] == len(data) and max(seen) <= len(data)
    assert proxy.count("/uploadFilePart") == 9


def test_a_part_refused_for_good_fails_the_upload_and_leaves_nothing(
    client: BddClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    path, data = big(tmp_path, 6)
    proxy.plan("/uploadFilePart", Forward(), Respond(status=400, body=b'{"code":400,"message":"no"}'))
    with pytest.raises(ItemError):
        client.upload(path, chat_id="refused", filename="big.bin", size=len(data),
                      sha256=hashlib.sha256(data).hexdigest())
    assert listed(client, "refused") == {}  # aborted: never listed


def test_a_part_that_keeps_failing_interrupts_and_the_token_finishes_it(
    client: BddClient, proxy: FaultProxy, tmp_path: Path
) -> None:
    path, data = big(tmp_path, 8)
    digest = hashlib.sha256(data).hexdigest()
    tokens: list[str] = []
    # Part 3 fails both its tries, whichever parts are in flight beside it.
    proxy.rule = lambda seen: Reset() if b'"part_number": 3' in seen.body else None
    with pytest.raises(MultipartUploadInterrupted):
        client.upload(path, chat_id="resume", filename="big.bin", size=len(data), sha256=digest,
                      on_resume=tokens.append)
    proxy.rule = None
    sent_before = proxy.count("/uploadFilePart")
    file_id = client.upload(path, chat_id="resume", filename="big.bin", size=len(data), sha256=digest,
                            resume=tokens[-1])
    assert listed(client, "resume") == {"big.bin": digest}
    assert [f.id for f in client.list_chat("resume")] == [file_id]
    assert proxy.count("/uploadFilePart") - sent_before < 8  # only what the service lacked
