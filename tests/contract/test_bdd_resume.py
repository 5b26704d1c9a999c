"""Resumable multipart uploads (SPEC, "Resumable uploads"): `BddClient.upload` with a resume token,
against the reference service over real HTTP on loopback, through a proxy that records what the
client sent.

An upload in parts reports its token before its first part; given back, the token makes the next
upload of the same content send only the parts the service lacks. A token that cannot be used
(its upload is gone, completed, for other content, not ours, not a token) never fails an upload
and never harms a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.remote.base import OnResume, Progress
from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.client import BddClient, MultipartToken, MultipartUploadInterrupted
from tests.support.daemon import wait_for
from tests.support.faultproxy import FaultProxy, Reset, Seen
from tests.support.leaks import no_new_threads

CHAT = "chat-resume"
KiB = 1024
PART = 256 * KiB
DATA_SIZE = 5 * PART - 1000  # five parts, the last one short


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    with no_new_threads():
        yield


@pytest.fixture
def remote(proxy: FaultProxy) -> Iterator[BddClient]:
    """Multipart above 512 KiB in 256 KiB parts, one at a time (the tests follow their order); a
    few quick retries."""
    with BddClient(
        proxy.url, "alice", multipart_threshold=2 * PART, part_size=PART,
        retry_attempts=3, retry_backoff=0.01, max_wait=0.05, timeout=10.0, parts_in_flight=1,
    ) as client:
        yield client


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(DATA_SIZE))
    return path


class Crash(Exception):
    """Stands for the process dying mid-upload: nothing in the client catches it."""


def crashing_at(byte: int) -> Progress:
    def progress(moved: int) -> None:
        if moved >= byte:
            raise Crash(f"died after {moved} bytes")

    return progress


def part_number(seen: Seen) -> int | None:
    match = re.search(rb'"part_number": (\d+)', seen.body)
    return int(match.group(1)) if match else None


def parts_sent(proxy: FaultProxy, since: int = 0) -> list[int | None]:
    return [part_number(s) for s in proxy.seen("/uploadFilePart")[since:]]


def upload(
    remote: BddClient,
    src: Path,
    *,
    hashed: bool = True,
    progress: Progress | None = None,
    resume: str | None = None,
    on_resume: OnResume | None = None,
) -> int:
    data = src.read_bytes()
    return remote.upload(
        src, chat_id=CHAT, filename="big.bin", size=len(data), sha256=sha(data) if hashed else None,
        progress=progress, resume=resume, on_resume=on_resume,
    )


def fetch(remote: BddClient, file_id: int) -> bytes:
    out = io.BytesIO()
    remote.download(file_id, out)
    return out.getvalue()


def test_an_upload_killed_mid_part_resumes_with_only_the_parts_the_service_lacks(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    reported: list[tuple[str, int]] = []  # each token, and how many parts had been sent when it came
    with pytest.raises(Crash):
        upload(remote, src, progress=crashing_at(2 * PART + PART // 2),
               on_resume=lambda token: reported.append((token, proxy.count("/uploadFilePart"))))
    [(token, parts_before)] = reported
    wait_for(lambda: proxy.count("/uploadFilePart") == 3, what="the cut-off part 3 at the proxy")
    assert parts_before == 0  # the token came before the first part: a kill at any later moment can resume
    parsed = MultipartToken.loads(token)
    assert parsed == MultipartToken(parsed.file_id, PART, "alice", CHAT, "big.bin", DATA_SIZE, sha(src.read_bytes()))
    status = remote.multipart_status(parsed.file_id)
    assert (status.uploaded_parts, status.remaining_parts) == ((1, 2), (3, 4, 5))  # part 3 was cut off

    sent_before, bytes_before = proxy.count("/uploadFilePart"), proxy.received("/uploadFilePart")
    again: list[str] = []
    file_id = upload(remote, src, resume=token, on_resume=again.append)

    assert file_id == parsed.file_id
    assert parts_sent(proxy, sent_before) == [3, 4, 5]
    assert proxy.count("/initMultipartUploadFile") == 1  # no second upload was started
    resent = proxy.received("/uploadFilePart") - bytes_before
    assert DATA_SIZE - 2 * PART <= resent < DATA_SIZE - 2 * PART + 3 * KiB  # the missing bytes, plus form framing
    assert again == []  # nothing new to remember
    assert fetch(remote, file_id) == src.read_bytes()
    [info] = remote.list_chat(CHAT)
    assert (info.id, info.status, info.size) == (file_id, FileStatus.OK, DATA_SIZE)
    assert info.hashcode == sha(src.read_bytes())


def test_a_part_that_keeps_failing_hands_back_the_token_and_the_next_upload_resumes(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    proxy.rule = lambda seen: Reset() if part_number(seen) == 4 else None
    reported: list[str] = []
    with pytest.raises(MultipartUploadInterrupted) as caught:
        upload(remote, src, on_resume=reported.append)
    assert caught.value.resume is not None
    assert reported == [caught.value.resume, caught.value.resume]  # at the start, and again on the way out
    assert parts_sent(proxy) == [1, 2, 3, 4, 4, 4]

    proxy.rule = None
    file_id = upload(remote, src, resume=caught.value.resume)
    assert file_id == caught.value.multipart_file_id
    assert parts_sent(proxy)[6:] == [4, 5]
    assert fetch(remote, file_id) == src.read_bytes()


def test_a_token_of_an_upload_completed_after_all_gives_its_file_and_sends_nothing(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    proxy.plan("/completeMultipartUpload", *[Reset(forward_first=True)] * 3)  # completed; every answer lost
    with pytest.raises(MultipartUploadInterrupted) as caught:
        upload(remote, src)
    assert caught.value.resume is not None
    requests = proxy.count()
    assert upload(remote, src, resume=caught.value.resume) == caught.value.multipart_file_id
    assert [s.path for s in proxy.seen()[requests:]] == ["/getMultipartUploadFileStatus"]
    assert len(remote.list_chat(CHAT)) == 1


def interrupted(proxy: FaultProxy, remote: BddClient, src: Path, *, hashed: bool = True) -> str:
    """Start an upload of `src` and cut it short in its third part; its token."""
    reported: list[str] = []
    with pytest.raises(Crash):
        upload(remote, src, hashed=hashed, progress=crashing_at(2 * PART + 1), on_resume=reported.append)
    wait_for(lambda: proxy.count("/uploadFilePart") == 3, what="the cut-off part 3 at the proxy")
    [token] = reported
    return token


def test_a_token_for_other_content_aborts_its_upload_and_starts_afresh(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    token = interrupted(proxy, remote, src)
    stale = MultipartToken.loads(token)
    assert stale is not None
    src.write_bytes(os.urandom(DATA_SIZE))  # edited meanwhile: same name, same size, other bytes
    requests, sent_before = proxy.count(), proxy.count("/uploadFilePart")
    reported: list[str] = []
    file_id = upload(remote, src, resume=token, on_resume=reported.append)
    paths = [s.path for s in proxy.seen()[requests:]]
    assert paths.index("/abortMultipartUpload") < paths.index("/initMultipartUploadFile")  # stale one gone first
    assert [json.loads(s.body) for s in proxy.seen("/abortMultipartUpload")] == [{"file_id": stale.file_id}]
    assert parts_sent(proxy, sent_before) == [1, 2, 3, 4, 5]
    assert [MultipartToken.loads(t) for t in reported] == [
        MultipartToken(file_id, PART, "alice", CHAT, "big.bin", DATA_SIZE, sha(src.read_bytes()))
    ]
    [info] = remote.list_chat(CHAT)  # the stale upload was not left behind
    assert (info.id, info.status, info.hashcode) == (file_id, FileStatus.OK, sha(src.read_bytes()))
    assert fetch(remote, file_id) == src.read_bytes()


def test_a_token_the_service_no_longer_knows_starts_afresh(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    token = interrupted(proxy, remote, src)
    stale = MultipartToken.loads(token)
    assert stale is not None
    remote.abort_multipart(stale.file_id)  # as a service expiring abandoned uploads would
    sent_before = proxy.count("/uploadFilePart")
    file_id = upload(remote, src, resume=token)
    assert parts_sent(proxy, sent_before) == [1, 2, 3, 4, 5]
    assert fetch(remote, file_id) == src.read_bytes()
    assert [f.id for f in remote.list_chat(CHAT)] == [file_id]


def test_an_upload_without_a_sha256_is_never_resumed_nor_left_behind(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    token = interrupted(proxy, remote, src, hashed=False)
    stale = MultipartToken.loads(token)
    assert stale is not None and stale.sha256 is None  # nothing says what content it was for
    sent_before = proxy.count("/uploadFilePart")
    file_id = upload(remote, src, resume=token, hashed=False)
    assert parts_sent(proxy, sent_before) == [1, 2, 3, 4, 5]
    assert [f.id for f in remote.list_chat(CHAT)] == [file_id]  # the stale upload was aborted


def test_a_stale_token_never_touches_a_file_its_upload_completed(
    proxy: FaultProxy, remote: BddClient, src: Path
) -> None:
    first: list[str] = []
    kept = upload(remote, src, on_resume=first.append)  # completed: the journal may record this one
    old = src.read_bytes()
    src.write_bytes(os.urandom(DATA_SIZE))
    new = upload(remote, src, resume=first[0])
    assert new != kept
    assert fetch(remote, kept) == old
    assert {f.id for f in remote.list_chat(CHAT)} == {kept, new}
    assert proxy.count("/abortMultipartUpload") == 0


@pytest.mark.parametrize(
    "token",
    [
        "not json",
        "[1, 2]",
        json.dumps({"bdd_multipart": {"file_id": "7"}}),
        json.dumps({"presigned_url": "https://example.com/put"}),  # another remote kind's
    ],
)
def test_a_token_that_is_not_one_is_ignored(proxy: FaultProxy, remote: BddClient, src: Path, token: str) -> None:
    file_id = upload(remote, src, resume=token)
    assert parts_sent(proxy) == [1, 2, 3, 4, 5]
    assert fetch(remote, file_id) == src.read_bytes()


def test_another_users_token_is_neither_resumed_nor_aborted(
    proxy: FaultProxy, server_url: str, remote: BddClient, src: Path
) -> None:
    token = interrupted(proxy, remote, src)
    stale = MultipartToken.loads(token)
    assert stale is not None
    with BddClient(proxy.url, "bob", multipart_threshold=2 * PART, part_size=PART, parts_in_flight=1) as bob:
        bob_id = upload(bob, src, resume=token)
        assert [f.id for f in bob.list_chat(CHAT)] == [bob_id]
    assert proxy.count("/abortMultipartUpload") == 0
    assert remote.multipart_status(stale.file_id).status is FileStatus.UPLOADING  # alice's, untouched
