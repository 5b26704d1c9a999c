"""`syncd serve` behaviour beyond what the SDK exercises: keys, limits, errors, restarts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from syncd.server.signing import sign, verify

PARAMS = {"filename": "a.txt", "biz": "chat", "biz_params": {"chat_id": "c"}, "size": 5, "hashcode": None}


def upload(client: httpx.Client, data: bytes = b"hello", **params: object) -> httpx.Response:
    body = {**PARAMS, "size": len(data), **params}
    return client.post(
        "/uploadSimpleFile", files={"file": ("a.txt", data)}, data={"params": json.dumps(body)}
    )


def test_api_key_is_required_on_every_call_but_health(server_data: Path) -> None:
    secret = "k3y-that-must-not-leak"
    with ServerThread(build_app(server_data, api_key=secret)) as server:
        anon = httpx.Client(base_url=server.url, headers={"X-User-Id": "u"})
        refused = upload(anon)
        assert refused.status_code == 401
        assert refused.json() == {"code": 401, "data": None, "message": "missing or wrong API key"}
        assert anon.get("/listChatFiles", params={"chat_id": "c"}).status_code == 401
        assert anon.get("/health").json()["data"] == {"status": "ok"}
        wrong = httpx.Client(base_url=server.url, headers={"X-User-Id": "u", "X-API-Key": "nope"})
        assert wrong.get("/listChatFiles", params={"chat_id": "c"}).status_code == 401
        keyed = httpx.Client(base_url=server.url, headers={"X-User-Id": "u", "X-API-Key": secret})
        assert upload(keyed).json()["code"] == 0
        bearer = httpx.Client(
            base_url=server.url, headers={"X-User-Id": "u", "Authorization": f"Bearer {secret}"}
        )
        assert bearer.get("/listChatFiles", params={"chat_id": "c"}).json()["data"]["total"] == 1


def test_max_upload_size(server_data: Path) -> None:
    with ServerThread(build_app(server_data, max_upload_size=1000)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "u"})
        assert upload(client, b"x" * 1000).json()["code"] == 0
        too_big = upload(client, b"x" * 1001)
        assert too_big.status_code == 413
        assert "limit of 1000" in too_big.json()["message"]
        init = client.post("/initMultipartUploadFile", json={**PARAMS, "size": 5000, "part_size": 100})
        assert init.status_code == 413
        assert client.get("/listChatFiles", params={"chat_id": "c"}).json()["data"]["total"] == 1
        assert list((server_data / "tmp").iterdir()) == []


def test_errors_are_envelopes_never_tracebacks(file_server: ServerThread) -> None:
    client = httpx.Client(base_url=file_server.url, headers={"X-User-Id": "u"})
    cases = [
        client.get("/nowhere"),
        client.get("/downloadFile", params={"file_id": "abc"}),
        client.get("/downloadFile"),
        client.post("/initMultipartUploadFile", content=b"{not json"),
        client.post("/completeMultipartUpload", json={"file_id": "1"}),
        client.post("/uploadSimpleFile", content=b"raw", headers={"content-type": "text/plain"}),
        client.post("/uploadSimpleFile", files={"file": ("a", b"x")}, data={"params": "[1]"}),
        client.post("/uploadSimpleFile", files={"other": ("a", b"x")}, data={"params": json.dumps(PARAMS)}),
        client.get("/listChatFiles", params={"chat_id": "c", "limit": 5000}),
        client.get("/listDirectories", params={"sort_by": "size"}),
    ]
    for response in cases:
        body = response.json()
        assert 400 <= response.status_code < 500, (response.request.url, body)
        assert body["code"] == response.status_code
        assert body["data"] is None
        assert body["message"] and "Traceback" not in body["message"]


def test_download_of_an_unfinished_upload_is_refused(file_server: ServerThread) -> None:
    client = httpx.Client(base_url=file_server.url, headers={"X-User-Id": "u"})
    file_id = client.post("/initMultipartUploadFile", json={**PARAMS, "size": 10, "part_size": 5}).json()[
        "data"
    ]
    r = client.get("/downloadFile", params={"file_id": file_id})
    assert r.status_code == 409
    assert "not ready" in r.json()["message"]


def test_empty_file_simple_and_multipart(file_server: ServerThread) -> None:
    client = httpx.Client(base_url=file_server.url, headers={"X-User-Id": "u"})
    simple = upload(client, b"").json()["data"]
    multi = client.post("/initMultipartUploadFile", json={**PARAMS, "size": 0, "part_size": 5}).json()["data"]
    assert client.post("/completeMultipartUpload", json={"file_id": multi}).json()["data"] == multi
    for file_id in (simple, multi):
        r = client.get("/downloadFile", params={"file_id": file_id})
        assert (r.status_code, r.content) == (200, b"")


def test_data_survives_a_restart_and_cleans_leftovers(server_data: Path) -> None:
    with ServerThread(build_app(server_data)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "u"})
        file_id = upload(client, b"durable").json()["data"]
        url = client.get("/getFileDownloadUrl", params={"file_id": file_id}).json()["data"]
    (server_data / "tmp" / "upload-leftover").write_bytes(b"half")
    with ServerThread(build_app(server_data)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "u"})
        assert client.get("/downloadFile", params={"file_id": file_id}).content == b"durable"
        # the signing key is kept in the data dir, so links outlive a restart
        query = url.split("?", 1)[1]
        assert httpx.get(f"{server.url}/signedDownload?{query}").content == b"durable"
    assert list((server_data / "tmp").iterdir()) == []
    assert oct((server_data / "signing.key").stat().st_mode & 0o777) == "0o600"


def test_signatures_expire() -> None:
    key = b"k" * 32
    signature = sign(key, 5, "alice", 1000)
    assert verify(key, 5, "alice", 1000, signature, now=999.0)
    assert not verify(key, 5, "alice", 1000, signature, now=1000.5)
    assert not verify(key, 5, "bob", 1000, signature, now=999.0)
    assert not verify(key, 6, "alice", 1000, signature, now=999.0)


@pytest.mark.parametrize("order", ["params-first", "part-first"])
def test_part_fields_in_either_order(file_server: ServerThread, order: str) -> None:
    client = httpx.Client(base_url=file_server.url, headers={"X-User-Id": "u"})
    file_id = client.post("/initMultipartUploadFile", json={**PARAMS, "size": 4, "part_size": 4}).json()[
        "data"
    ]
    params = ("params", (None, json.dumps({"file_id": file_id, "part_number": 1})))
    part = ("part", ("part_1", b"abcd", "application/octet-stream"))
    fields = [params, part] if order == "params-first" else [part, params]
    assert client.post("/uploadFilePart", files=fields).json()["data"] == 1
    assert client.post("/completeMultipartUpload", json={"file_id": file_id}).json()["code"] == 0
    assert client.get("/downloadFile", params={"file_id": file_id}).content == b"abcd"


def send_part(client: httpx.Client, file_id: int, number: int, data: bytes) -> httpx.Response:
    params = ("params", (None, json.dumps({"file_id": file_id, "part_number": number})))
    part = ("part", (f"part_{number}", data, "application/octet-stream"))
    return client.post("/uploadFilePart", files=[params, part])


@pytest.mark.parametrize("sequence", [(1, 2, 3), (1, 2, 2, 3), (3, 1, 2), (1, 3, 2)])
def test_multipart_content_is_checked_against_its_hashcode_whatever_the_part_order(
    file_server: ServerThread, sequence: tuple[int, ...]
) -> None:
    """In order, the service hashes parts as they come; otherwise it reads the file back. Either way
    a right hashcode completes and a wrong one is refused, and the stored bytes are the parts'."""
    client = httpx.Client(base_url=file_server.url, headers={"X-User-Id": "u"})
    parts = [b"first-", b"second", b"third"]
    whole = b"".join(parts)
    for hashcode, accepted in ((hashlib.sha256(whole).hexdigest(), True), ("0" * 64, False)):
        init = {**PARAMS, "size": len(whole), "part_size": 6, "hashcode": hashcode}
        file_id = client.post("/initMultipartUploadFile", json=init).json()["data"]
        for number in sequence:
            assert send_part(client, file_id, number, parts[number - 1]).json()["data"] == number
        done = client.post("/completeMultipartUpload", json={"file_id": file_id}).json()
        assert (done["code"] == 0) is accepted, done
        if accepted:
            assert client.get("/downloadFile", params={"file_id": file_id}).content == whole
        else:
            assert "hashcode does not match" in done["message"]
