"""`BddClient` against the reference service (`syncd serve`) over real HTTP on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from syncd.errors import FatalError, ItemError
from syncd.remote.base import Remote
from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.client import BddClient, MultipartUploadInterrupted
from syncd.remote.bdd.remote import BddRemote
from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from tests.support.faultproxy import FaultProxy, Reset, Seen
from tests.support.leaks import no_new_threads

CHAT = "chat-1"
KiB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_remote(url: str, user: str = "alice", **options: object) -> BddClient:
    """A client with test-sized retries: a few quick attempts, no long waits."""
    settings: dict[str, object] = {
        "retry_attempts": 3,
        "retry_backoff": 0.01,
        "max_wait": 0.05,
        "timeout": 10.0,
        "parts_in_flight": 1,  # the tests follow the parts' order (parts at once: test_bdd_parts.py)
    }
    settings.update(options)
    return BddClient(url, user, **settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    with no_new_threads():
        yield


@pytest.fixture
def remote(server_url: str) -> Iterator[BddClient]:
    with make_remote(server_url) as client:
        yield client


def put(remote: BddClient, path: Path, data: bytes, *, name: str | None = None, chat: str = CHAT) -> int:
    path.write_bytes(data)
    return remote.upload(path, chat_id=chat, filename=name or path.name, size=len(data), sha256=sha(data))


def fetch(remote: BddClient, file_id: int) -> bytes:
    out = io.BytesIO()
    assert remote.download(file_id, out) == len(out.getvalue())
    return out.getvalue()


def test_bdd_remote_is_a_remote(remote: BddClient) -> None:
    wrapped: Remote = BddRemote(remote)  # checked by mypy; the Protocol is structural
    assert isinstance(wrapped, BddRemote) and wrapped.client is remote


def test_simple_upload_list_download(remote: BddClient, tmp_path: Path) -> None:
    data = os.urandom(300 * KiB)
    sent: list[int] = []
    src = tmp_path / "report.pdf"
    src.write_bytes(data)
    file_id = remote.upload(src, chat_id=CHAT, filename="report.pdf", size=len(data), progress=sent.append)
    assert sent[-1] == len(data)

    [info] = remote.list_chat(CHAT)
    assert (info.id, info.filename, info.size) == (file_id, "report.pdf", len(data))
    assert info.hashcode == sha(data)  # the service computes it when the client sends none
    assert info.status is FileStatus.OK
    assert info.upload_at.tzinfo is not None

    received: list[int] = []
    out = io.BytesIO()
    assert remote.download(file_id, out, progress=received.append) == len(data)
    assert out.getvalue() == data
    assert received[-1] == len(data)


def test_upload_sends_only_size_bytes_and_handles_empty_and_unicode_names(
    remote: BddClient, tmp_path: Path
) -> None:
    src = tmp_path / "growing.log"
    src.write_bytes(b"0123456789")
    first = remote.upload(src, chat_id=CHAT, filename="growing.log", size=4, sha256=sha(b"0123"))
    empty = put(remote, tmp_path / "empty", b"")
    uni = put(remote, tmp_path / "u", "日本語".encode(), name="résumé 日本.txt")
    assert fetch(remote, first) == b"0123"
    assert fetch(remote, empty) == b""
    names = {f.id: f.filename for f in remote.list_chat(CHAT)}
    assert names == {first: "growing.log", empty: "empty", uni: "résumé 日本.txt"}


def test_chats_are_separate_and_an_unknown_chat_is_empty(remote: BddClient, tmp_path: Path) -> None:
    one = put(remote, tmp_path / "a.txt", b"a", chat="one")
    two = put(remote, tmp_path / "b.txt", b"b", chat="two")
    assert [f.id for f in remote.list_chat("one")] == [one]
    assert [f.id for f in remote.list_chat("two")] == [two]
    assert remote.list_chat("nobody") == []


def test_multipart_upload_round_trip(server_url: str, proxy: FaultProxy, tmp_path: Path) -> None:
    data = os.urandom(1024 * KiB + 123)  # five 256 KiB parts, the last one short
    sent: list[int] = []
    with make_remote(proxy.url, multipart_threshold=512 * KiB, part_size=256 * KiB) as remote:
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        file_id = remote.upload(src, chat_id=CHAT, filename="big.bin", size=len(data), progress=sent.append)
        assert proxy.count("/initMultipartUploadFile") == 1
        assert [s.index for s in proxy.seen("/uploadFilePart")] == [1, 2, 3, 4, 5]
        assert proxy.count("/completeMultipartUpload") == 1
        assert proxy.count("/uploadSimpleFile") == 0
        assert sent[-1] == len(data)
        assert fetch(remote, file_id) == data
        [info] = remote.list_chat(CHAT)
        assert (info.id, info.hashcode, info.status) == (file_id, sha(data), FileStatus.OK)
        status = remote.multipart_status(file_id)
        assert (status.status, status.remaining_parts) == (FileStatus.OK, ())


def _part_number(seen: Seen) -> int | None:
    match = re.search(rb'"part_number": (\d+)', seen.body)
    return int(match.group(1)) if match else None


def test_interrupted_multipart_upload_resumes_with_the_missing_parts(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(1024 * KiB + 5)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    proxy.rule = lambda seen: Reset() if _part_number(seen) == 3 else None  # part 3 never gets through
    with make_remote(proxy.url, multipart_threshold=512 * KiB, part_size=256 * KiB) as remote:
        with pytest.raises(MultipartUploadInterrupted) as caught:
            remote.upload(src, chat_id=CHAT, filename="big.bin", size=len(data), sha256=sha(data))
        file_id = caught.value.multipart_file_id
        assert "part 3" in str(caught.value) and "'big.bin'" in str(caught.value)
        assert [_part_number(s) for s in proxy.seen("/uploadFilePart")] == [1, 2, 3, 3, 3]  # 3 attempts
        status = remote.multipart_status(file_id)
        assert (status.status, status.uploaded_parts, status.remaining_parts) == (
            FileStatus.UPLOADING,
            (1, 2),
            (3, 4, 5),
        )
        assert [f.status for f in remote.list_chat(CHAT)] == [FileStatus.UPLOADING]

        proxy.rule = None
        before = proxy.count("/uploadFilePart")
        assert remote.resume_multipart(file_id, src, size=len(data)) == file_id
        assert [_part_number(s) for s in proxy.seen("/uploadFilePart")[before:]] == [3, 4, 5]
        assert fetch(remote, file_id) == data
        [info] = remote.list_chat(CHAT)
        assert (info.id, info.status, info.hashcode) == (file_id, FileStatus.OK, sha(data))
        # Resuming a finished upload is a no-op.
        assert remote.resume_multipart(file_id, src, size=len(data)) == file_id


def test_abort_multipart_removes_the_upload(proxy: FaultProxy, tmp_path: Path) -> None:
    data = os.urandom(600 * KiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    proxy.rule = lambda seen: Reset() if _part_number(seen) == 1 else None
    with make_remote(proxy.url, multipart_threshold=512 * KiB, part_size=256 * KiB) as remote:
        with pytest.raises(MultipartUploadInterrupted) as caught:
            remote.upload(src, chat_id=CHAT, filename="big.bin", size=len(data))
        remote.abort_multipart(caught.value.multipart_file_id)
        assert remote.list_chat(CHAT) == []
        remote.abort_multipart(caught.value.multipart_file_id)  # already gone: fine
        with pytest.raises(ItemError):
            remote.multipart_status(caught.value.multipart_file_id)


def test_listing_walks_every_page(server_url: str, proxy: FaultProxy, tmp_path: Path) -> None:
    with make_remote(proxy.url, page_size=100) as remote:

        def one(i: int) -> int:
            return put(remote, tmp_path / f"f{i:03}.txt", f"file {i}".encode())

        with ThreadPoolExecutor(max_workers=8) as pool:  # one client, many threads
            ids = list(pool.map(one, range(250)))
        files = remote.list_chat(CHAT)
        assert sorted(f.id for f in files) == sorted(ids)
        assert len(files) == 250
        assert {f.filename for f in files} == {f"f{i:03}.txt" for i in range(250)}
        assert [s.query["offset"] for s in proxy.seen("/listChatFiles")] == ["0", "100", "200"]
        assert {s.query["limit"] for s in proxy.seen("/listChatFiles")} == {"100"}


def test_users_see_only_their_own_files(server_url: str, tmp_path: Path) -> None:
    with make_remote(server_url, "alice") as alice, make_remote(server_url, "bob") as bob:
        file_id = put(alice, tmp_path / "secret.txt", b"alice's")
        assert bob.list_chat(CHAT) == []
        with pytest.raises(ItemError) as caught:
            bob.download(file_id, io.BytesIO())
        assert caught.value.status == 404
        assert f"file {file_id}" in str(caught.value)
        with pytest.raises(ItemError):
            bob.download_url(file_id)
        bob.delete(file_id)  # 404 reads as "already deleted" ...
        assert fetch(alice, file_id) == b"alice's"  # ... but alice's file is untouched
        assert [f.id for f in alice.list_chat(CHAT)] == [file_id]


HOSTILE = ["../x", "a/b", "a\\b", "..", ".", "", "nul\x00byte", "bell\x07", "new\nline", "é" * 150]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name: str, server_url: str, proxy: FaultProxy, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"boom")
    with make_remote(proxy.url) as remote:
        with pytest.raises(ItemError, match="refused"):
            remote.upload(src, chat_id=CHAT, filename=name, size=4)
        assert proxy.count() == 0  # refused before any request
        assert remote.list_chat(CHAT) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_the_service_refuses_hostile_names_too(name: str, server_url: str) -> None:
    params = json.dumps(
        {"filename": name, "biz": "chat", "biz_params": {"chat_id": CHAT}, "size": 4, "hashcode": None}
    )
    answer = httpx.post(
        f"{server_url}/uploadSimpleFile",
        files={"file": ("payload", b"boom", "application/octet-stream")},
        data={"params": params},
        headers={"X-User-Id": "alice"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] != 0
    with make_remote(server_url) as remote:
        assert remote.list_chat(CHAT) == []


def test_download_url_works_without_headers(remote: BddClient, tmp_path: Path) -> None:
    data = os.urandom(50 * KiB)
    file_id = put(remote, tmp_path / "shared.bin", data)
    url = remote.download_url(file_id, expires_in=60)
    answer = httpx.get(url)
    assert answer.status_code == 200
    assert answer.content == data


def test_delete(remote: BddClient, tmp_path: Path) -> None:
    keep = put(remote, tmp_path / "keep.txt", b"keep")
    gone = put(remote, tmp_path / "gone.txt", b"gone")
    remote.delete(gone)
    assert [f.id for f in remote.list_chat(CHAT)] == [keep]
    with pytest.raises(ItemError) as caught:
        remote.download(gone, io.BytesIO())
    assert caught.value.status == 404
    remote.delete(gone)  # deleting twice is fine


@pytest.fixture
def locked_server(tmp_path: Path) -> Iterator[ServerThread]:
    data = tmp_path / "locked-data"
    data.mkdir()
    with ServerThread(build_app(data, api_key="s3cret")) as server:
        yield server


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_api_key_is_fatal_and_never_shown(
    locked_server: ServerThread, key: str | None
) -> None:
    with make_remote(locked_server.url, api_key=key) as remote:
        with pytest.raises(FatalError) as caught:
            remote.list_chat(CHAT)
        message = str(caught.value)
        assert "authentication failed" in message and caught.value.status == 401
        assert "s3cret" not in message and "wrong-key" not in message
        assert "wrong-key" not in repr(remote)


def test_the_right_api_key_works(locked_server: ServerThread, tmp_path: Path) -> None:
    with make_remote(locked_server.url, api_key="s3cret") as remote:
        file_id = put(remote, tmp_path / "a.txt", b"hello")
        assert fetch(remote, file_id) == b"hello"
        assert "s3cret" not in repr(remote)
        url = remote.download_url(file_id)
        assert httpx.get(url).content == b"hello"  # signed URLs need no key
