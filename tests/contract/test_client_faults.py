"""`BddClient` through a misbehaving proxy: what is retried, what is not, what the errors say."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.bdd.client import BddClient, MultipartUploadInterrupted
from tests.support.faultproxy import (
    Fault,
    FaultProxy,
    Reset,
    Respond,
    Stall,
    Truncate,
    envelope,
    error_after_forward,
    html_page,
    invalid_json,
    too_many_requests,
    unavailable,
)
from tests.support.leaks import no_new_threads

CHAT = "chat-1"
ATTEMPTS = 4
KiB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_remote(url: str, **options: object) -> BddClient:
    settings: dict[str, object] = {
        "retry_attempts": ATTEMPTS,
        "retry_backoff": 0.01,
        "max_wait": 0.05,
        "timeout": 5.0,
        "parts_in_flight": 1,  # the tests follow the parts' order
    }
    settings.update(options)
    return BddClient(url, "alice", **settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    with no_new_threads():
        yield


@pytest.fixture
def remote(proxy: FaultProxy) -> Iterator[BddClient]:
    with make_remote(proxy.url) as client:
        yield client


@pytest.fixture
def stored(server_url: str, tmp_path: Path) -> tuple[int, bytes]:
    """A file already on the service (uploaded around the proxy): its id and bytes."""
    data = os.urandom(200 * KiB)
    src = tmp_path / "stored.bin"
    src.write_bytes(data)
    with make_remote(server_url) as direct:
        return direct.upload(src, chat_id=CHAT, filename="stored.bin", size=len(data)), data


def upload(remote: BddClient, tmp_path: Path, data: bytes = b"hello", name: str = "a.txt") -> int:
    src = tmp_path / name
    src.write_bytes(data)
    return remote.upload(src, chat_id=CHAT, filename=name, size=len(data), sha256=sha(data))


def download(remote: BddClient, file_id: int) -> bytes:
    out = io.BytesIO()
    remote.download(file_id, out)
    return out.getvalue()


# -- retried, then successful ------------------------------------------------------------------


def test_503s_are_retried(proxy: FaultProxy, remote: BddClient, stored: tuple[int, bytes]) -> None:
    proxy.plan("/listChatFiles", unavailable(), unavailable())
    assert [f.id for f in remote.list_chat(CHAT)] == [stored[0]]
    assert proxy.count("/listChatFiles") == 3


def test_429_waits_at_least_retry_after(
    proxy: FaultProxy, server_url: str, stored: tuple[int, bytes]
) -> None:
    proxy.plan("/listChatFiles", too_many_requests(0.3), unavailable(retry_after="0.2"))
    with make_remote(proxy.url, max_wait=2.0) as remote:
        assert [f.id for f in remote.list_chat(CHAT)] == [stored[0]]
    first, second, third = (s.at for s in proxy.seen("/listChatFiles"))
    assert second - first >= 0.3
    assert third - second >= 0.2


def test_connection_reset_is_retried(proxy: FaultProxy, remote: BddClient, tmp_path: Path) -> None:
    proxy.plan("/uploadSimpleFile", Reset())
    file_id = upload(remote, tmp_path)
    assert proxy.count("/uploadSimpleFile") == 2
    assert [f.id for f in remote.list_chat(CHAT)] == [file_id]
    assert download(remote, file_id) == b"hello"


def test_a_stall_past_the_timeout_is_retried(proxy: FaultProxy, stored: tuple[int, bytes]) -> None:
    file_id, data = stored
    proxy.plan("/downloadFile", Stall(seconds=30))
    with make_remote(proxy.url, timeout=0.5) as remote:
        assert download(remote, file_id) == data
    assert proxy.count("/downloadFile") == 2


@pytest.mark.parametrize(
    "fault",
    [
        html_page(502),
        invalid_json(),
        envelope({"code": 0, "message": None}),  # no data
        envelope({"data": {"total": 1, "items": []}}),  # no code
        envelope({"code": 0, "data": {"items": []}, "message": None}),  # no total
        envelope({"code": 0, "data": {"total": 1, "items": [{"id": 1, "filename": "x"}]}, "message": None}),
        envelope({"code": 0, "data": {"total": 1, "items": [{"id": "1"}]}, "message": None}),
        envelope(["not", "an", "envelope"]),
    ],
    ids=["html-502", "invalid-json", "no-data", "no-code", "no-total", "short-item", "string-id", "list"],
)
def test_malformed_answers_are_retried(
    fault: Respond, proxy: FaultProxy, remote: BddClient, stored: tuple[int, bytes]
) -> None:
    proxy.plan("/listChatFiles", fault)
    assert [f.id for f in remote.list_chat(CHAT)] == [stored[0]]
    assert proxy.count("/listChatFiles") == 2


def test_malformed_upload_answer_is_retried(proxy: FaultProxy, remote: BddClient, tmp_path: Path) -> None:
    proxy.plan("/uploadSimpleFile", envelope({"code": 0, "data": "seven", "message": None}))
    file_id = upload(remote, tmp_path)
    assert proxy.count("/uploadSimpleFile") == 2
    assert [f.id for f in remote.list_chat(CHAT)] == [file_id]


def test_a_truncated_download_is_retried_from_the_start(
    proxy: FaultProxy, remote: BddClient, stored: tuple[int, bytes]
) -> None:
    file_id, data = stored
    proxy.plan("/downloadFile", Truncate(keep=1000), Truncate(keep=150 * KiB))
    out = io.BytesIO(b"prefix:")
    out.seek(0, os.SEEK_END)
    assert remote.download(file_id, out) == len(data)
    assert out.getvalue() == b"prefix:" + data  # what failed attempts wrote is gone
    assert proxy.count("/downloadFile") == 3


def test_a_failed_multipart_part_is_retried_alone(proxy: FaultProxy, tmp_path: Path) -> None:
    data = os.urandom(700 * KiB)
    proxy.plan("/uploadFilePart", Respond(200, b""), Reset(), unavailable())  # part 1 meets all three
    with make_remote(proxy.url, multipart_threshold=256 * KiB, part_size=256 * KiB) as remote:
        file_id = upload(remote, tmp_path, data, "big.bin")
        assert download(remote, file_id) == data
    numbers = [re.search(rb'"part_number": (\d)', s.body) for s in proxy.seen("/uploadFilePart")]
    assert [int(m.group(1)) for m in numbers if m] == [1, 1, 1, 1, 2, 3]


def test_deleting_after_an_ambiguous_failure_is_done(
    proxy: FaultProxy, remote: BddClient, stored: tuple[int, bytes]
) -> None:
    proxy.plan("/deleteFile", error_after_forward(500))
    remote.delete(stored[0])  # the retry meets a 404: already deleted
    assert proxy.count("/deleteFile") == 2
    assert remote.list_chat(CHAT) == []


@pytest.mark.parametrize(
    "fault",
    [error_after_forward(500), Reset(forward_first=True), Stall(seconds=30, forward_first=True)],
    ids=["500-after-forward", "reset-after-forward", "stall-after-forward"],
)
def test_an_ambiguous_upload_failure_leaves_no_duplicate(
    fault: Fault, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.plan("/uploadSimpleFile", fault)
    with make_remote(proxy.url, timeout=0.5) as remote:
        file_id = upload(remote, tmp_path)
        assert proxy.count("/uploadSimpleFile") == 1  # the retry found the copy the failed attempt made
        assert [f.id for f in remote.list_chat(CHAT)] == [file_id]


def test_requests_per_minute_spaces_requests(proxy: FaultProxy, stored: tuple[int, bytes]) -> None:
    with make_remote(proxy.url, requests_per_minute=600) as remote:  # one per 0.1 s
        remote.list_chat(CHAT)  # the first goes at once
        started = time.monotonic()
        for _ in range(2):
            remote.list_chat(CHAT)
        spent = time.monotonic() - started
    # Two more requests wait at least 0.1 s each, however late each one reaches the proxy (a
    # busy machine delays arrivals, never the limiter's waits). Unlimited, they take milliseconds.
    assert spent >= 0.19, spent
    assert proxy.count("/listChatFiles") == 3


# -- not retried ---------------------------------------------------------------------------------


def test_404_is_an_item_error_and_not_retried(proxy: FaultProxy, remote: BddClient) -> None:
    with pytest.raises(ItemError) as caught:
        download(remote, 987654)
    assert caught.value.status == 404
    message = str(caught.value)
    assert "download file 987654" in message and "HTTP 404" in message
    assert proxy.count("/downloadFile") == 1


def test_400_is_an_item_error_with_the_servers_message(
    proxy: FaultProxy, remote: BddClient, tmp_path: Path
) -> None:
    proxy.plan(
        "/uploadSimpleFile", envelope({"code": 400, "data": None, "message": "hashcode mismatch"}, 400)
    )
    with pytest.raises(ItemError) as caught:
        upload(remote, tmp_path, name="report.pdf")
    message = str(caught.value)
    assert "upload 'report.pdf'" in message and "hashcode mismatch" in message
    assert proxy.count("/uploadSimpleFile") == 1
    assert remote.list_chat(CHAT) == []


def test_an_envelope_error_code_is_an_item_error(proxy: FaultProxy, remote: BddClient) -> None:
    proxy.plan("/getFileDownloadUrl", envelope({"code": 1, "data": None, "message": "not allowed"}))
    with pytest.raises(ItemError, match="not allowed") as caught:
        remote.download_url(5)
    assert "file 5" in str(caught.value)
    assert proxy.count("/getFileDownloadUrl") == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_fatal_and_not_retried(status: int, proxy: FaultProxy, remote: BddClient) -> None:
    proxy.plan("/listChatFiles", envelope({"code": status, "data": None, "message": "no"}, status))
    with pytest.raises(FatalError, match="authentication failed for remote http://127.0.0.1") as caught:
        remote.list_chat(CHAT)
    assert caught.value.status == status
    assert proxy.count("/listChatFiles") == 1


# -- giving up -----------------------------------------------------------------------------------


def test_after_the_last_attempt_the_transient_error_names_call_and_file(
    proxy: FaultProxy, remote: BddClient, tmp_path: Path
) -> None:
    proxy.plan("/uploadSimpleFile", *[unavailable()] * ATTEMPTS)
    with pytest.raises(TransientError) as caught:
        upload(remote, tmp_path, name="notes.txt")
    assert not isinstance(caught.value, ItemError | FatalError)
    message = str(caught.value)
    assert "upload 'notes.txt' to chat 'chat-1'" in message and "HTTP 503" in message
    assert caught.value.status == 503
    assert proxy.count("/uploadSimpleFile") == ATTEMPTS


def test_a_dead_service_is_a_transient_error(tmp_path: Path) -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy:
        url = proxy.url  # a loopback port that was free a moment ago: now nobody listens
    with (
        make_remote(url, retry_attempts=2) as remote,
        pytest.raises(TransientError, match="could not connect"),
    ):
        remote.list_chat(CHAT)


def test_an_interrupted_multipart_upload_can_be_resumed_later(proxy: FaultProxy, tmp_path: Path) -> None:
    data = os.urandom(600 * KiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    proxy.plan("/completeMultipartUpload", *[Stall(seconds=30)] * ATTEMPTS)
    with make_remote(proxy.url, multipart_threshold=256 * KiB, part_size=256 * KiB, timeout=0.5) as remote:
        with pytest.raises(MultipartUploadInterrupted) as caught:
            remote.upload(src, chat_id=CHAT, filename="big.bin", size=len(data), sha256=sha(data))
        assert "timed out" in str(caught.value)
        file_id = caught.value.multipart_file_id
        parts_before = proxy.count("/uploadFilePart")
        assert remote.resume_multipart(file_id, src, size=len(data)) == file_id
        assert proxy.count("/uploadFilePart") == parts_before  # nothing left to send
        assert download(remote, file_id) == data
