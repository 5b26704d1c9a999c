"""The published bdd-file-client 0.7.6, unchanged, against `syncd serve` over real HTTP."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bdd_file import BDD_FILE_PROFILES, BddFileClient, BddFileError, UploadMode
from bdd_file.invoke_api import (
    abort_multipart_upload,
    get_multipart_upload_file_status,
    init_multipart_upload_file,
    upload_file_part,
)
from bdd_file.models import SyncChatFileToRemoteStatus

CHAT = {"chat_id": "chat-1"}


@pytest.fixture
def sdk(server_url: str) -> Iterator[BddFileClient]:
    """The SDK pointed at the test server through its own profile table."""
    BDD_FILE_PROFILES["syncd-test"] = server_url
    yield BddFileClient(profile="syncd-test", default_user_id="alice", default_biz="chat")
    del BDD_FILE_PROFILES["syncd-test"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_simple_upload_from_path_and_stream_then_download(sdk: BddFileClient, tmp_path: Path) -> None:
    src = tmp_path / "report.pdf"
    src.write_bytes(b"%PDF" + os.urandom(300_000))
    id_path = sdk.upload(path=src, biz_params=CHAT)
    id_stream = sdk.upload(stream=io.BytesIO(b"notes"), filename="notes.txt", size=5, biz_params=CHAT)
    files = {f.id: f for f in sdk.list_chat_files(chat_id="chat-1")}
    assert set(files) == {id_path, id_stream}
    assert files[id_path].filename == "report.pdf"
    assert files[id_path].size == src.stat().st_size
    assert files[id_path].hashcode == sha(src.read_bytes())
    assert files[id_path].status.value == "ok"
    assert files[id_path].biz_params == CHAT

    out = io.BytesIO()
    sdk.download(file_id=id_path, stream=out)
    assert out.getvalue() == src.read_bytes()
    target = tmp_path / "copy.txt"
    sdk.download(file_id=id_stream, path=target)
    assert target.read_bytes() == b"notes"


def test_multipart_upload_round_trip(sdk: BddFileClient, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024 + 123))  # three 5 MiB parts, the last short
    file_id = sdk.upload(path=src, mode=UploadMode.MULTIPART, biz_params=CHAT)
    status = get_multipart_upload_file_status(sdk.service_url, "alice", file_id)
    assert status.status.value == "ok"
    assert status.uploaded_parts == [1, 2, 3]
    assert status.remaining_parts == []
    out = tmp_path / "back.bin"
    sdk.download(file_id=file_id, path=out)
    assert sha(out.read_bytes()) == sha(src.read_bytes())
    [info] = sdk.list_chat_files(chat_id="chat-1")
    assert info.hashcode == sha(src.read_bytes())


def test_multipart_parts_in_any_order_resent_and_status(sdk: BddFileClient, server_url: str) -> None:
    data = os.urandom(2500)
    url = sdk.service_url
    file_id = init_multipart_upload_file(url, "parts.bin", len(data), 1000, sha(data), "alice", "chat", CHAT)
    upload_file_part(url, "alice", file_id, 3, data[2000:])
    upload_file_part(url, "alice", file_id, 1, b"x" * 1000)  # wrong bytes first ...
    upload_file_part(url, "alice", file_id, 1, data[:1000])  # ... re-sent right
    status = get_multipart_upload_file_status(url, "alice", file_id)
    assert (status.status.value, status.uploaded_parts, status.remaining_parts) == ("uploading", [1, 3], [2])
    [listed] = sdk.list_chat_files(chat_id="chat-1")
    assert listed.status.value == "uploading"

    with pytest.raises(BddFileError, match="missing parts 2"):
        httpx_complete(server_url, file_id)
    upload_file_part(url, "alice", file_id, 2, data[1000:2000])
    assert httpx_complete(server_url, file_id) == file_id
    out = io.BytesIO()
    sdk.download(file_id=file_id, stream=out)
    assert out.getvalue() == data


def httpx_complete(server_url: str, file_id: int) -> int:
    r = httpx.post(
        f"{server_url}/completeMultipartUpload", json={"file_id": file_id}, headers={"X-User-Id": "alice"}
    )
    body = r.json()
    if body["code"] != 0:
        raise BddFileError(body["message"])
    assert isinstance(body["data"], int)
    return body["data"]


def test_multipart_wrong_part_size_and_abort(sdk: BddFileClient) -> None:
    url = sdk.service_url
    file_id = init_multipart_upload_file(url, "a.bin", 2000, 1000, None, "alice", "chat", CHAT)
    with pytest.raises(BddFileError, match="expected 1000"):
        upload_file_part(url, "alice", file_id, 1, b"short")
    with pytest.raises(BddFileError, match="out of range"):
        upload_file_part(url, "alice", file_id, 3, b"x")
    assert abort_multipart_upload(url, "alice", file_id) == file_id
    assert sdk.list_chat_files(chat_id="chat-1") == []


def test_listing_walks_past_100_files(sdk: BddFileClient) -> None:
    ids = {
        sdk.upload(
            stream=io.BytesIO(b"%d" % i), filename=f"f{i:03}.txt", size=len(b"%d" % i), biz_params=CHAT
        )
        for i in range(130)
    }
    listed = sdk.list_chat_files(chat_id="chat-1")
    assert {f.id for f in listed} == ids
    assert len(listed) == 130
    assert sdk.list_chat_files(chat_id="another-chat") == []


def test_download_url_needs_no_headers_and_is_signed(sdk: BddFileClient) -> None:
    file_id = sdk.upload(stream=io.BytesIO(b"shared"), filename="s.txt", size=6, biz_params=CHAT)
    url = sdk.get_download_url(file_id=file_id, expires_seconds=60)
    assert httpx.get(url).content == b"shared"
    tampered = url.replace(f"file_id={file_id}", f"file_id={file_id + 1}")
    assert httpx.get(tampered).status_code == 403
    assert httpx.get(url[:-4] + "0000").status_code == 403


def test_delete(sdk: BddFileClient) -> None:
    file_id = sdk.upload(stream=io.BytesIO(b"bye"), filename="bye.txt", size=3, biz_params=CHAT)
    sdk.delete(file_id=file_id)
    assert sdk.list_chat_files(chat_id="chat-1") == []
    with pytest.raises(BddFileError, match="404"):
        sdk.download(file_id=file_id, stream=io.BytesIO())
    with pytest.raises(BddFileError, match="not found"):
        sdk.delete(file_id=file_id)


def test_sync_chat_files_to_remote_and_to_local(sdk: BddFileClient, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"doc{i}.txt").write_bytes(os.urandom(1000 + i))
    results = sdk.sync_chat_files_to_remote(chat_id="chat-1", local_dir=src, user_id="alice")
    assert {r.status for r in results.values()} == {SyncChatFileToRemoteStatus.success}
    again = sdk.sync_chat_files_to_remote(chat_id="chat-1", local_dir=src, user_id="alice")
    assert {r.status for r in again.values()} == {SyncChatFileToRemoteStatus.skipped}

    dst = tmp_path / "dst"
    dst.mkdir()
    downloaded = sdk.sync_chat_files_to_local(chat_id="chat-1", local_dir=dst)
    assert all(r.is_success for r in downloaded.values())
    assert sorted(p.name for p in dst.iterdir()) == sorted(p.name for p in src.iterdir())
    for p in src.iterdir():
        assert (dst / p.name).read_bytes() == p.read_bytes()


def test_users_are_isolated(sdk: BddFileClient, server_url: str) -> None:
    file_id = sdk.upload(stream=io.BytesIO(b"mine"), filename="mine.txt", size=4, biz_params=CHAT)
    bob = BddFileClient(profile="syncd-test", default_user_id="bob", default_biz="chat")
    assert bob.list_chat_files(chat_id="chat-1") == []
    with pytest.raises(BddFileError, match="404"):
        bob.download(file_id=file_id, stream=io.BytesIO())
    with pytest.raises(BddFileError, match="not found"):
        bob.delete(file_id=file_id)
    with pytest.raises(BddFileError, match="not found"):
        bob.get_download_url(file_id=file_id)
    assert [f.id for f in sdk.list_chat_files(chat_id="chat-1")] == [file_id]
    anonymous = httpx.get(f"{server_url}/listChatFiles", params={"chat_id": "chat-1"})
    assert anonymous.status_code == 400
    assert anonymous.json() == {"code": 400, "data": None, "message": "missing X-User-Id header"}


HOSTILE = [
    "../x",
    "a/b",
    "..",
    ".",
    "nul\x00byte",
    "bell\x07",
    "tab\tname",
    "back\\slash",
    "",
    "é" * 150,
    "/etc/passwd",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_unsafe_names_are_refused(sdk: BddFileClient, name: str) -> None:
    with pytest.raises(BddFileError, match="filename"):
        sdk.upload(stream=io.BytesIO(b"x"), filename=name, size=1, biz_params=CHAT)
    with pytest.raises(BddFileError, match="filename"):
        init_multipart_upload_file(sdk.service_url, name, 1, 1, None, "alice", "chat", CHAT)
    assert sdk.list_chat_files(chat_id="chat-1") == []


def test_mismatched_hashcode_and_size_are_refused(sdk: BddFileClient) -> None:
    with pytest.raises(BddFileError, match="hashcode"):
        sdk.upload(stream=io.BytesIO(b"abc"), filename="h.txt", size=3, hashcode="0" * 64, biz_params=CHAT)
    with pytest.raises(BddFileError, match="received 3 bytes"):
        sdk.upload(stream=io.BytesIO(b"abc"), filename="h.txt", size=4, biz_params=CHAT)
    ok = sdk.upload(
        stream=io.BytesIO(b"abc"), filename="h.txt", size=3, hashcode=sha(b"abc"), biz_params=CHAT
    )
    assert [f.id for f in sdk.list_chat_files(chat_id="chat-1")] == [ok]


def test_directories(sdk: BddFileClient) -> None:
    kb = {"directory_id": 7, "directory_name": "handbook"}
    ids = [
        sdk.upload(stream=io.BytesIO(b"k"), filename=name, size=1, biz="knowledgeBase", biz_params=kb)
        for name in ("b.md", "a.md", "c.md")
    ]
    dirs = sdk.list_directories(name="hand")
    assert dirs.total == 1
    assert (dirs.items[0].id, dirs.items[0].name) == (7, "handbook")
    page = sdk.list_files_in_directory(directory_id=7, sort_by="name_asc", page_size=2, page_number=1)
    assert page.total == 3
    assert [f.filename for f in page.items] == ["a.md", "b.md"]
    page2 = sdk.list_files_in_directory(directory_id=7, sort_by="name_asc", page_size=2, page_number=2)
    assert [f.filename for f in page2.items] == ["c.md"]
    assert {f.id for f in page.items + page2.items} == set(ids)
