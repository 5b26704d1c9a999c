"""The file service's bounds and fences, as a client meets them: part counts, body sizes, integers,
late parts, expiry, signed-URL hosts, downloads racing deletes. (The same attacks against a real
`syncd serve` subprocess, with memory and latency measured, are in tests/adversarial.)"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from syncd.server.service import Limits, Service
from tests.support.attack import FORM_END, FORM_TYPE, Raw, form_field, part_form_head, request_head
from tests.support.daemon import wait_for

PARAMS = {"filename": "a.bin", "biz": "chat", "biz_params": {"chat_id": "c"}, "hashcode": None}


@pytest.fixture
def limited(server_data: Path) -> Iterator[ServerThread]:
    with ServerThread(build_app(server_data, limits=Limits(max_parts=100))) as server:
        yield server


def client_of(server: ServerThread, user: str = "u") -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-User-Id": user}, timeout=10)


def service_of(server: ServerThread) -> Service:
    service: Service = server.app.state.service
    return service


def init(client: httpx.Client, size: int, part_size: int, **extra: object) -> httpx.Response:
    return client.post("/initMultipartUploadFile", json={**PARAMS, "size": size, "part_size": part_size, **extra})


def send_part(client: httpx.Client, file_id: int, number: int, data: bytes) -> httpx.Response:
    params = json.dumps({"file_id": file_id, "part_number": number})
    return client.post("/uploadFilePart", files={"part": ("p", data)}, data={"params": params})


def raw_part(server: ServerThread, file_id: int, number: int, data: bytes) -> tuple[Raw, bytes]:
    """Open a part upload by hand and send all but its last byte; the connection and the rest."""
    start = part_form_head(file_id, number)
    end = b"\r\n" + FORM_END
    port = int(server.url.rsplit(":", 1)[1])
    raw = Raw(port, timeout=10)
    head = request_head(
        "POST", "/uploadFilePart", user="u", length=len(start) + len(data) + len(end), content_type=FORM_TYPE
    )
    assert raw.send(head + start + data[:-1])
    return raw, data[-1:] + end


def answer_of(raw: Raw) -> tuple[int, dict[str, object]]:
    answer = raw.response()
    assert answer is not None, "the service hung up without an answer"
    return answer.status, answer.json()


# -- bounds ---------------------------------------------------------------------------------------


def test_a_part_size_that_makes_too_many_parts_is_refused_by_name(limited: ServerThread) -> None:
    client = client_of(limited)
    refused = init(client, 50_000_000, 1)
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "'part_size'" in message and "at most 100" in message and "500000" in message
    accepted = init(client, 1000, 10)  # exactly 100 parts
    assert accepted.json()["code"] == 0
    status = client.get("/getMultipartUploadFileStatus", params={"file_id": accepted.json()["data"]}).json()["data"]
    assert status["remaining_parts"] == list(range(1, 101))


def test_complete_names_the_first_missing_parts_only(limited: ServerThread) -> None:
    client = client_of(limited)
    file_id = init(client, 1000, 10).json()["data"]
    for number in (1, 2, 5):
        assert send_part(client, file_id, number, b"x" * 10).json()["code"] == 0
    refused = client.post("/completeMultipartUpload", json={"file_id": file_id}).json()["message"]
    assert "missing parts 3, 4, 6, 7," in refused and "(97 in all)" in refused


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        (("GET", "/downloadFile", {"params": {"file_id": str(2**63)}}), "file_id"),
        (("GET", "/downloadFile", {"params": {"file_id": "9" * 5000}}), "file_id"),
        (("GET", "/listChatFiles", {"params": {"chat_id": "c", "offset": str(10**30)}}), "offset"),
        (("GET", "/listDirectories", {"params": {"page_number": str(2**62)}}), "page_number"),
        (("POST", "/completeMultipartUpload", {"json": {"file_id": 2**64}}), "file_id"),
        (("POST", "/initMultipartUploadFile", {"json": {**PARAMS, "size": 2**63, "part_size": 2**62}}), "size"),
        (("DELETE", "/deleteFile", {"params": {"file_id": "١٢"}}), "file_id"),  # Arabic-Indic digits
    ],
)
def test_integers_out_of_range_are_refused_naming_the_field(
    file_server: ServerThread, request_args: tuple[str, str, dict[str, object]], field: str
) -> None:
    method, path, kwargs = request_args
    answer = client_of(file_server).request(method, path, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 400, answer.text
    assert f"'{field}'" in answer.json()["message"]


def test_json_bodies_are_bounded_in_size_and_depth(file_server: ServerThread) -> None:
    client = client_of(file_server)
    big = client.post("/completeMultipartUpload", content=b'{"file_id": 1, "pad": "' + b"x" * 200_000 + b'"}')
    assert big.status_code == 413
    deep = client.post("/initMultipartUploadFile", content=b'{"biz_params": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert deep.status_code == 400 and "nested" in deep.json()["message"]
    in_params = client.post(
        "/uploadSimpleFile",
        files={"file": ("a", b"x")},
        data={"params": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    )
    assert in_params.status_code in (400, 413)
    assert "Error" not in in_params.json()["message"]


def test_form_fields_are_bounded_in_number_and_size(file_server: ServerThread) -> None:
    client = client_of(file_server)
    many = client.post("/uploadSimpleFile", data={f"f{i}": "x" for i in range(50)}, files={"file": ("a", b"x")})
    assert many.status_code == 413 and "fields" in many.json()["message"]
    large = client.post(
        "/uploadSimpleFile", data={f"f{i}": "x" * 60_000 for i in range(8)}, files={"file": ("a", b"x")}
    )
    assert large.status_code == 413
    garbage = client.post(
        "/uploadSimpleFile",
        content=b"--b\r\nnot a header line\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert garbage.status_code == 400 and garbage.json()["message"] == "malformed multipart/form-data body"


def size_of(path: Path) -> int:
    """The file's size; 0 once the service has removed it (between our listing and our look)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_simple_upload_is_cut_off_once_it_passes_its_declared_size(
    file_server: ServerThread, server_data: Path
) -> None:
    stored = 0  # the most the service ever held of this upload on disk

    def body() -> Iterator[bytes]:  # chunked: the service cannot know the length up front
        nonlocal stored
        params = json.dumps({**PARAMS, "size": 10})
        yield form_field("params", params.encode()) + form_field("file", b"", "a")[: -len(b"\r\n")]
        for _ in range(500):  # 32 MiB if nobody stops it
            stored = max([stored, *(size_of(f) for f in (server_data / "tmp").iterdir())])
            yield b"x" * 65536
        yield b"\r\n" + FORM_END

    client = client_of(file_server)
    try:
        answer = client.post(
            "/uploadSimpleFile", content=body(), headers={"Content-Type": FORM_TYPE}
        )
        assert answer.status_code == 413 and "'size' (10)" in answer.json()["message"]
    except httpx.TransportError:
        pass  # the service answered and closed while the body was still being sent
    assert stored <= 10
    assert list((server_data / "tmp").iterdir()) == []
    assert client.get("/listChatFiles", params={"chat_id": "c"}).json()["data"]["total"] == 0


# -- fences ---------------------------------------------------------------------------------------


def test_a_part_resent_during_complete_cannot_change_the_completed_file(file_server: ServerThread) -> None:
    client = client_of(file_server)
    original = b"a" * 10 + b"b" * 10
    file_id = init(client, 20, 10, hashcode=hashlib.sha256(original).hexdigest()).json()["data"]
    assert send_part(client, file_id, 1, original[:10]).json()["code"] == 0
    assert send_part(client, file_id, 2, original[10:]).json()["code"] == 0
    sock, rest = raw_part(file_server, file_id, 1, b"Z" * 10)  # a slow re-send of part 1: 9 bytes in
    wait_for(lambda: service_of(file_server).writers.busy(file_id))
    refused = client.post("/completeMultipartUpload", json={"file_id": file_id})
    assert refused.status_code == 400 and "missing parts 1" in refused.json()["message"]
    assert sock.send(rest)  # the re-send finishes: the upload now holds its bytes, which no longer match
    assert answer_of(sock)[0] == 200
    sock.close()
    mismatch = client.post("/completeMultipartUpload", json={"file_id": file_id})
    assert mismatch.status_code == 400 and "hashcode" in mismatch.json()["message"]
    assert send_part(client, file_id, 1, original[:10]).json()["code"] == 0
    assert client.post("/completeMultipartUpload", json={"file_id": file_id}).json()["code"] == 0
    assert client.get("/downloadFile", params={"file_id": file_id}).content == original


@pytest.mark.parametrize("how", ["abort", "delete"])
def test_a_late_part_after_abort_or_delete_writes_nowhere(
    file_server: ServerThread, server_data: Path, how: str
) -> None:
    client = client_of(file_server)
    file_id = init(client, 20, 10).json()["data"]
    sock, rest = raw_part(file_server, file_id, 1, b"L" * 10)
    wait_for(lambda: service_of(file_server).writers.busy(file_id))
    if how == "abort":
        assert client.post("/abortMultipartUpload", json={"file_id": file_id}).json()["code"] == 0
    else:
        assert client.delete("/deleteFile", params={"file_id": file_id}).json()["code"] == 0
    other = client_of(file_server, "v")
    next_id = init(other, 20, 10).json()["data"]
    assert next_id != file_id
    assert sock.send(rest)
    status, answer = answer_of(sock)
    sock.close()
    assert status == 409 and "while this part arrived" in str(answer["message"])
    assert not (server_data / "parts" / str(file_id)).exists()
    status_of_next = other.get("/getMultipartUploadFileStatus", params={"file_id": next_id}).json()["data"]
    assert status_of_next["uploaded_parts"] == []
    assert client.get("/getMultipartUploadFileStatus", params={"file_id": file_id}).status_code == 404


def test_a_merging_upload_left_by_a_crash_is_completable_after_restart(server_data: Path) -> None:
    data = b"p" * 10 + b"q" * 5
    with ServerThread(build_app(server_data)) as server:
        client = client_of(server)
        renamed = init(client, 15, 10, hashcode=hashlib.sha256(data).hexdigest()).json()["data"]
        kept = init(client, 15, 10).json()["data"]
        for file_id in (renamed, kept):
            send_part(client, file_id, 1, data[:10])
            send_part(client, file_id, 2, data[10:])
    # What a kill -9 in the middle of completing leaves: `merging`, the part file renamed or not.
    with sqlite3.connect(server_data / "meta.db") as db:
        db.execute("UPDATE files SET status = 'merging' WHERE id IN (?, ?)", [renamed, kept])
    (server_data / "parts" / str(renamed)).replace(server_data / "blobs" / str(renamed))
    with ServerThread(build_app(server_data)) as server:
        client = client_of(server)
        for file_id in (renamed, kept):
            status = client.get("/getMultipartUploadFileStatus", params={"file_id": file_id}).json()["data"]
            assert status["status"] == "uploading" and status["remaining_parts"] == []
            assert client.post("/completeMultipartUpload", json={"file_id": file_id}).json()["code"] == 0
            assert client.get("/downloadFile", params={"file_id": file_id}).content == data


def test_abandoned_uploads_expire_with_their_part_files(server_data: Path) -> None:
    with ServerThread(build_app(server_data, limits=Limits(upload_ttl=0.5))) as server:
        client = client_of(server)
        file_id = init(client, 20, 10).json()["data"]
        assert (server_data / "parts" / str(file_id)).exists()
        (server_data / "parts" / "999999").write_bytes(b"left by a crash")
        done = client.post(
            "/uploadSimpleFile", files={"file": ("a", b"kept")}, data={"params": json.dumps({**PARAMS, "size": 4})}
        )
        wait_for(lambda: client.get("/getMultipartUploadFileStatus", params={"file_id": file_id}).status_code == 404)
        wait_for(lambda: not (server_data / "parts" / "999999").exists())
        assert list((server_data / "parts").iterdir()) == []
        assert client.get("/downloadFile", params={"file_id": done.json()["data"]}).content == b"kept"


def test_an_upload_receiving_parts_does_not_expire(server_data: Path) -> None:
    with ServerThread(build_app(server_data, limits=Limits(upload_ttl=0.6))) as server:
        client = client_of(server)
        file_id = init(client, 60, 10).json()["data"]
        for number in range(1, 7):
            deadline = time.monotonic() + 0.3
            assert send_part(client, file_id, number, b"x" * 10).json()["code"] == 0
            wait_for(lambda due=deadline: time.monotonic() > due)  # parts 0.3 s apart: 1.8 s in all
        assert client.post("/completeMultipartUpload", json={"file_id": file_id}).json()["code"] == 0


# -- signed URLs and downloads --------------------------------------------------------------------


def test_signed_urls_use_the_public_url_never_forwarded_headers(server_data: Path) -> None:
    with ServerThread(build_app(server_data, limits=Limits(public_url="https://files.example.com/bdd"))) as server:
        client = client_of(server)
        file_id = client.post(
            "/uploadSimpleFile", files={"file": ("a", b"x")}, data={"params": json.dumps({**PARAMS, "size": 1})}
        ).json()["data"]
        url = client.get("/getFileDownloadUrl", params={"file_id": file_id}, headers={"Host": "evil.example"}).json()
        assert url["data"].startswith("https://files.example.com/bdd/signedDownload?")
    with ServerThread(build_app(server_data)) as server:
        client = client_of(server)
        forwarded = client.get(
            "/getFileDownloadUrl", params={"file_id": file_id},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
        ).json()["data"]
        assert forwarded.startswith(server.url + "/signedDownload?")
        assert httpx.get(forwarded).content == b"x"
        bad_host = client.get("/getFileDownloadUrl", params={"file_id": file_id}, headers={"Host": "a.example/x?y=@"})
        assert bad_host.status_code == 400 and "Host" in bad_host.json()["message"]


def test_a_download_racing_a_delete_is_whole(file_server: ServerThread) -> None:
    client = client_of(file_server)
    data = bytes(range(256)) * 8192  # 2 MiB: more than one chunk
    file_id = client.post(
        "/uploadSimpleFile", files={"file": ("a", data)}, data={"params": json.dumps({**PARAMS, "size": len(data)})}
    ).json()["data"]
    with client.stream("GET", "/downloadFile", params={"file_id": file_id}) as answer:
        chunks = answer.iter_raw(65536)
        first = next(chunks)
        assert client_of(file_server).delete("/deleteFile", params={"file_id": file_id}).json()["code"] == 0
        assert first + b"".join(chunks) == data
    assert client.get("/downloadFile", params={"file_id": file_id}).status_code == 404
