"""File ids of `syncd serve` are never reused (SPEC, "safe to expose"): a signed link can only
ever serve the file it was signed for, across deletes, restarts and an upgraded data dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from syncd.server.app import build_app
from syncd.server.runner import ServerThread

FIXTURE_SERVE = Path(__file__).parent.parent / "fixtures" / "release-0.1.0" / "serve"


def upload(client: httpx.Client, data: bytes, name: str = "a.txt") -> int:
    params = {"filename": name, "biz": "chat", "biz_params": {"chat_id": "c"}, "size": len(data), "hashcode": None}
    answer = client.post("/uploadSimpleFile", files={"file": (name, data)}, data={"params": json.dumps(params)})
    assert answer.json()["code"] == 0, answer.text
    return int(answer.json()["data"])


def test_a_deleted_newest_id_is_never_handed_out_again_even_after_a_restart(server_data: Path) -> None:
    with ServerThread(build_app(server_data)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "owner"})
        upload(client, b"first")
        doomed = upload(client, b"private: deleted on purpose")
        link = client.get("/getFileDownloadUrl", params={"file_id": doomed, "expires_in": 600}).json()["data"]
        assert client.delete("/deleteFile", params={"file_id": doomed}).json()["code"] == 0
        after = upload(client, b"the owner's next upload")
        assert after > doomed
        stale = httpx.get(httpx.URL(server.url).join(link))
        assert stale.status_code in (403, 404) and b"next upload" not in stale.content  # serves nothing now
    with ServerThread(build_app(server_data)) as server:  # the high-water mark is on disk
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "owner"})
        assert client.delete("/deleteFile", params={"file_id": after}).json()["code"] == 0
    with ServerThread(build_app(server_data)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "owner"})
        assert upload(client, b"later") > after


def test_a_data_dir_from_the_previous_release_keeps_its_files_and_counts_on(tmp_path: Path) -> None:
    data = tmp_path / "serve"
    shutil.copytree(FIXTURE_SERVE, data)
    with ServerThread(build_app(data)) as server:
        client = httpx.Client(base_url=server.url, headers={"X-User-Id": "u1"})
        listed = client.get("/listChatFiles", params={"chat_id": "upgrade-chat"}).json()["data"]
        ids = sorted(item["id"] for item in listed["items"])
        assert ids == list(range(1, 8))
        assert client.get("/downloadFile", params={"file_id": 1}).status_code == 200
        newest = max(ids)
        assert client.delete("/deleteFile", params={"file_id": newest}).json()["code"] == 0
        assert upload(client, b"after the upgrade") == newest + 1
