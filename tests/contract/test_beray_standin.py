"""The stand-in BeRay server answers as the real one: the published `beray` client, unchanged, over real
HTTP, does everything syncd relies on against it; and the stand-in's test hooks do what they say."""

from __future__ import annotations

import email.utils
import io
import os
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from beray.client import BeRayClient
from beray.exceptions import APIError, AuthenticationError, NotFoundError

from tests.support.beray_server import BeRayServer
from tests.support.leaks import no_new_threads

EMAIL = "me@example.com"
PASSWORD = "pw"
TASK = 42
T0 = 1767225600.0  # the fake clock's start


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for `condition`, checking often; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        event.wait(0.01)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[BeRayServer]:
    with BeRayServer(root=tmp_path / "beray", clock=FakeClock()) as running:
        running.create_task(TASK, "Write a report")
        yield running


@pytest.fixture
def client(srv: BeRayServer) -> BeRayClient:
    """The published client, logged in (base URL with a trailing slash, as a config might spell it)."""
    beray = BeRayClient(srv.url + "/")
    beray.login(EMAIL, PASSWORD)
    return beray


def bearer(srv: BeRayServer) -> dict[str, str]:
    """Headers for a request the published client cannot make, with a token of its own."""
    return {"Authorization": f"Bearer {srv.issue_token(EMAIL)}"}


# -- authentication --------------------------------------------------------------------------------------


def test_login_hands_out_a_bearer_token_that_every_call_carries(srv: BeRayServer) -> None:
    beray = BeRayClient(srv.url)
    answer = beray.login(EMAIL, PASSWORD)
    assert answer["token_type"] == "bearer"
    assert answer["user"]["email"] == EMAIL and isinstance(answer["user"]["id"], int)
    me = beray.get_current_user()
    assert me == answer["user"]
    login = srv.seen("login")[-1]
    assert login.method == "POST" and login.route == "/api/v1/auth/login"
    assert login.headers["content-type"] == "application/json"
    assert srv.seen("me")[-1].headers["authorization"] == f"Bearer {answer['access_token']}"


def test_login_with_form_is_the_same_login(srv: BeRayServer) -> None:
    beray = BeRayClient(srv.url)
    answer = beray.login_with_form(EMAIL, PASSWORD)
    assert answer["token_type"] == "bearer" and answer["access_token"]
    assert srv.seen("token")[-1].headers["content-type"] == "application/x-www-form-urlencoded"
    assert beray.get_current_user()["email"] == EMAIL


def test_wrong_password_is_an_authentication_error_and_no_token_is_set(srv: BeRayServer) -> None:
    beray = BeRayClient(srv.url)
    with pytest.raises(AuthenticationError, match="Incorrect email or password"):
        beray.login(EMAIL, "nope")
    with pytest.raises(AuthenticationError, match="Incorrect email or password"):
        beray.login_with_form("who@example.com", PASSWORD)
    with pytest.raises(AuthenticationError, match="Not authenticated"):
        beray.get_current_user()
    bare = requests.get(f"{srv.api_url}/tasks/{TASK}", timeout=5)
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == "Bearer"
    assert bare.json() == {"detail": "Not authenticated"}


def test_expired_tokens_get_401_and_logging_in_again_works(srv: BeRayServer, client: BeRayClient) -> None:
    assert client.get_task(TASK)["id"] == TASK
    srv.expire_tokens()
    with pytest.raises(AuthenticationError, match="Not authenticated"):
        client.get_task(TASK)
    with pytest.raises(AuthenticationError):
        client.list_files_tree(TASK)
    client.login(EMAIL, PASSWORD)
    assert client.get_task(TASK)["id"] == TASK


def test_token_ttl_runs_on_the_servers_clock(tmp_path: Path) -> None:
    with BeRayServer(root=tmp_path / "b", token_ttl=60, clock=FakeClock()) as srv:
        srv.create_task(TASK)
        beray = BeRayClient(srv.url)
        beray.login(EMAIL, PASSWORD)
        srv.advance(59)
        assert beray.get_task(TASK)["id"] == TASK
        srv.advance(1)
        with pytest.raises(AuthenticationError):
            beray.get_task(TASK)
        beray.login_with_form(EMAIL, PASSWORD)
        assert beray.get_current_user()["email"] == EMAIL


def test_what_the_client_raises_for_403_404_and_5xx(srv: BeRayServer, client: BeRayClient) -> None:
    srv.fail_next("task", status=403, body=b'{"detail": "Not enough permissions"}')
    with pytest.raises(AuthenticationError, match="Forbidden: Not enough permissions"):
        client.get_task(TASK)
    with pytest.raises(NotFoundError) as missing:
        client.get_task(7)
    assert (missing.value.status_code, missing.value.error_detail) == (404, "Task not found")
    srv.fail_next("tree", status=503, headers={"Retry-After": "1"})
    with pytest.raises(APIError) as unavailable:
        client.list_files_tree(TASK)
    assert not isinstance(unavailable.value, NotFoundError)
    assert (unavailable.value.status_code, unavailable.value.error_detail) == (503, "injected fault")
    srv.fail_next("read", status=500, body=b"oops")
    with pytest.raises(APIError) as broken:
        client.get_file_content(TASK, "a.txt")
    assert (broken.value.status_code, broken.value.error_detail) == (500, "oops")
    assert srv.pending_faults("tree") == 0
    assert client.get_task(TASK)["status"] == "RUNNING"  # faults are used up


# -- tasks and listings ----------------------------------------------------------------------------------


def test_get_task(srv: BeRayServer, client: BeRayClient) -> None:
    assert client.get_task(TASK) == {
        "id": TASK,
        "goal": "Write a report",
        "status": "RUNNING",
        "tools": None,
        "events": [],
    }
    srv.remove_task(TASK)
    with pytest.raises(NotFoundError, match="Task not found"):
        client.get_task(TASK)
    with pytest.raises(NotFoundError, match="Task not found"):
        client.list_files_tree(TASK)


def test_list_files_tree_is_one_level_sorted_with_paths_from_the_work_folder(
    srv: BeRayServer, client: BeRayClient
) -> None:
    srv.write_file(TASK, "out/a.txt", b"hello\n", mtime=T0 + 0.25)
    srv.write_file(TASK, "out/sub dir/b c.txt", b"deeper", mtime=T0 + 2)
    srv.write_file(TASK, "top.txt", b"t")
    os.utime(srv.work_folder(TASK) / "out" / "sub dir", (T0 + 1.5, T0 + 1.5))
    (srv.work_folder(TASK) / "out" / "link").symlink_to("a.txt")
    top = client.list_files_tree(TASK)
    assert [(i["name"], i["path"], i["type"]) for i in top] == [
        ("out", "out", "directory"),
        ("top.txt", "top.txt", "file"),
    ]
    assert "size" not in top[0] and top[1]["size"] == 1 and top[1]["modified_at"] == T0
    assert client.list_files_tree(TASK, ".") == top == client.list_files_tree(TASK, "")
    assert client.list_files_tree(TASK, "out") == [
        {"name": "a.txt", "path": "out/a.txt", "type": "file", "size": 6, "modified_at": T0 + 0.25},
        {"name": "sub dir", "path": "out/sub dir", "type": "directory", "modified_at": T0 + 1.5},
    ]  # one level, and the symlink left out
    assert client.list_files_tree(TASK, "out/sub dir") == [
        {"name": "b c.txt", "path": "out/sub dir/b c.txt", "type": "file", "size": 6, "modified_at": T0 + 2}
    ]
    with pytest.raises(NotFoundError, match="Path not found"):
        client.list_files_tree(TASK, "nowhere")
    with pytest.raises(NotFoundError, match="Path not found"):
        client.list_files_tree(TASK, "top.txt/below")
    with pytest.raises(APIError) as a_file:
        client.list_files_tree(TASK, "top.txt")
    assert (a_file.value.status_code, a_file.value.error_detail) == (400, "Path is not a directory")


# -- reading and writing ---------------------------------------------------------------------------------


def test_upload_creates_parents_overwrites_and_reads_back(srv: BeRayServer, client: BeRayClient) -> None:
    data = bytes(range(256)) * 400
    srv.advance(5)
    answer = client.upload_file(TASK, "out/new dir/x.bin", data)
    assert answer == {"message": "File saved", "path": "out/new dir/x.bin", "size": len(data)}
    on_disk = srv.work_folder(TASK) / "out" / "new dir" / "x.bin"
    assert on_disk.read_bytes() == data
    assert on_disk.stat().st_mtime == T0 + 5  # the server's clock at the write
    got = client.get_file_content(TASK, "out/new dir/x.bin")
    assert got.content == data
    assert got.headers["Content-Length"] == str(len(data))
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Last-Modified"] == email.utils.formatdate(T0 + 5, usegmt=True)
    assert client.upload_file(TASK, "out/new dir/x.bin", "short")["size"] == 5
    assert client.get_file_content(TASK, "out/new dir/x.bin").content == b"short"
    assert srv.seen("write")[0].headers["content-type"] == "application/octet-stream"
    assert client.upload_file(TASK, "notes.txt", "hi")["size"] == 2
    assert client.get_file_content(TASK, "notes.txt").headers["Content-Type"].startswith("text/plain")
    assert client.list_files_tree(TASK, "out/new dir")[0]["size"] == 5


def test_chunked_upload_is_stored(srv: BeRayServer, client: BeRayClient) -> None:
    blocks = [b"first block,", b"", b" second" * 1000]
    put = requests.put(
        f"{srv.api_url}/tasks/{TASK}/files/content",
        params={"path": "c/chunked.txt"},
        data=iter(blocks),
        headers=bearer(srv),
        timeout=5,
    )
    assert put.status_code == 200, put.text
    assert put.json()["size"] == len(b"".join(blocks))
    assert srv.seen("write")[-1].headers["transfer-encoding"] == "chunked"
    assert client.get_file_content(TASK, "c/chunked.txt").content == b"".join(blocks)


def test_write_and_read_errors(srv: BeRayServer, client: BeRayClient) -> None:
    srv.write_file(TASK, "out/a.txt", b"a")
    with pytest.raises(APIError) as a_dir:
        client.upload_file(TASK, "out", b"x")
    assert (a_dir.value.status_code, a_dir.value.error_detail) == (400, "Path is a directory")
    with pytest.raises(APIError) as under_a_file:
        client.upload_file(TASK, "out/a.txt/b.txt", b"x")
    assert (under_a_file.value.status_code, under_a_file.value.error_detail) == (400, "Parent is not a directory")
    with pytest.raises(NotFoundError, match="File not found"):
        client.get_file_content(TASK, "out/missing.txt")
    with pytest.raises(NotFoundError, match="File not found"):
        client.get_file_content(TASK, "out")
    with pytest.raises(APIError) as empty:
        client.get_file_content(TASK, "")
    assert empty.value.status_code == 422 and isinstance(empty.value.error_detail, list)
    assert (srv.work_folder(TASK) / "out" / "a.txt").read_bytes() == b"a"


def test_an_injected_failure_after_the_write_still_stores(srv: BeRayServer, client: BeRayClient) -> None:
    srv.fail_next("write", status=502, after=True)
    with pytest.raises(APIError) as failed:
        client.upload_file(TASK, "late.txt", b"stored anyway")
    assert failed.value.status_code == 502
    assert (srv.work_folder(TASK) / "late.txt").read_bytes() == b"stored anyway"


NAMES = [
    unicodedata.normalize("NFD", "Café crème.txt"),
    unicodedata.normalize("NFC", "Café crème.txt"),
    "a b+c&d#e=f%20g.txt",
    "日本語/ファイル 1+1.md",
    "?question;semi,comma'quote\".bin",
]


def test_unicode_space_and_plus_names_round_trip_byte_for_byte(srv: BeRayServer, client: BeRayClient) -> None:
    for index, name in enumerate(NAMES):
        data = f"{index}:{name}".encode()
        assert client.upload_file(TASK, f"u/{name}", data)["path"] == f"u/{name}"
        assert client.get_file_content(TASK, f"u/{name}").content == data
    listed = {item["name"] for item in client.list_files_tree(TASK, "u")}
    assert listed == {name.split("/")[0] for name in NAMES}
    on_disk = set(os.listdir(os.fsencode(srv.work_folder(TASK) / "u")))
    assert on_disk == {name.split("/")[0].encode() for name in NAMES}  # NFD stays NFD, NFC stays NFC
    assert client.list_files_tree(TASK, "u/日本語")[0]["path"] == "u/日本語/ファイル 1+1.md"


@pytest.mark.parametrize("bad", ["..", "../etc", "out/../../x", "/etc/passwd", "a\\b", "a\x00b", "a//b", "./a"])
def test_bad_paths_get_400_invalid_path_everywhere(srv: BeRayServer, client: BeRayClient, bad: str) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: client.list_files_tree(TASK, bad),
        lambda: client.get_file_content(TASK, bad),
        lambda: client.upload_file(TASK, bad, b"escape"),
        lambda: client.download_files_as_zip(TASK, [bad]),
    ]
    for call in calls:
        with pytest.raises(APIError) as refused:
            call()
        assert not isinstance(refused.value, NotFoundError)
        assert (refused.value.status_code, refused.value.error_detail) == (400, "Invalid path")
    assert not (srv.root / "x").exists() and not (srv.root / "tasks" / "x").exists()
    assert list(srv.work_folder(TASK).iterdir()) == []


def test_a_path_that_is_not_utf8_is_invalid(srv: BeRayServer, client: BeRayClient) -> None:
    answer = requests.get(f"{srv.api_url}/tasks/{TASK}/files/tree?path=a%FFb", headers=bearer(srv), timeout=5)
    assert (answer.status_code, answer.json()) == (400, {"detail": "Invalid path"})


def test_no_path_is_followed_out_of_the_work_folder(tmp_path: Path, srv: BeRayServer, client: BeRayClient) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (srv.work_folder(TASK) / "link").symlink_to(outside)
    (srv.work_folder(TASK) / "file-link").symlink_to(outside / "secret.txt")
    with pytest.raises(NotFoundError):
        client.get_file_content(TASK, "link/secret.txt")
    with pytest.raises(NotFoundError):
        client.get_file_content(TASK, "file-link")
    with pytest.raises(NotFoundError):
        client.list_files_tree(TASK, "link")
    with pytest.raises(APIError, match="Parent is not a directory"):
        client.upload_file(TASK, "link/new.txt", b"x")
    client.upload_file(TASK, "file-link", b"replaced")  # replaces the link, never writes through it
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (srv.work_folder(TASK) / "file-link").read_bytes() == b"replaced"
    assert not (srv.work_folder(TASK) / "file-link").is_symlink()
    with zipfile.ZipFile(io.BytesIO(client.download_files_as_zip(TASK).content)) as archive:
        assert archive.namelist() == ["file-link"]


# -- the zip ---------------------------------------------------------------------------------------------


def test_download_files_as_zip(srv: BeRayServer, client: BeRayClient) -> None:
    files = {"top.txt": b"top", "out/a.txt": b"a" * 10_000, "out/sub dir/b+c.txt": b"bc", "z/NFD é.txt": b"e"}
    for name, data in files.items():
        client.upload_file(TASK, name, data)
    everything = client.download_files_as_zip(TASK)
    assert everything.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(everything.content)) as archive:
        assert sorted(archive.namelist()) == sorted(files)
        assert {name: archive.read(name) for name in archive.namelist()} == files
    some = client.download_files_as_zip(TASK, ["out/sub dir", "top.txt"])
    with zipfile.ZipFile(io.BytesIO(some.content)) as archive:
        assert sorted(archive.namelist()) == ["out/sub dir/b+c.txt", "top.txt"]
        assert archive.read("out/sub dir/b+c.txt") == b"bc"
    assert srv.seen("zip")[-1].method == "POST"
    with pytest.raises(NotFoundError):
        client.download_files_as_zip(TASK, ["missing"])


# -- the event stream ------------------------------------------------------------------------------------


class Listener:
    """The published client's `stream_task_updates` read in a thread (it has no timeout of its own)."""

    def __init__(self, client: BeRayClient, task_id: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(client, task_id), name="beray-listener", daemon=True)
        self._thread.start()

    def _run(self, client: BeRayClient, task_id: int) -> None:
        try:
            for event in client.stream_task_updates(task_id):
                with self._lock:
                    self.events.append(event)
        except BaseException as exc:  # noqa: BLE001 - reported by `ended`
            self.error = exc

    def got(self, predicate: Callable[[dict[str, Any]], bool]) -> bool:
        with self._lock:
            return any(predicate(event) for event in self.events)

    def ended(self, timeout: float = 5.0) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def test_stream_sends_status_then_files_changed_and_ends_when_the_server_stops(tmp_path: Path) -> None:
    with no_new_threads():
        srv = BeRayServer(root=tmp_path / "b").start()
        try:
            folder = srv.create_task(TASK)
            beray = BeRayClient(srv.url)
            beray.login(EMAIL, PASSWORD)
            listener = Listener(beray, TASK)
            wait_until(lambda: listener.got(lambda e: e.get("type") == "status"), "the first status event")
            assert listener.events[0] == {"type": "status", "task_id": TASK, "status": "RUNNING"}
            (folder / "out").mkdir()
            (folder / "out" / "new.txt").write_bytes(b"new")
            wait_until(lambda: listener.got(lambda e: "out/new.txt" in e.get("paths", [])), "files_changed")
            beray.upload_file(TASK, "out/mine.txt", b"syncd's own upload")
            wait_until(lambda: listener.got(lambda e: "out/mine.txt" in e.get("paths", [])), "our upload's event")
            changed = [e for e in listener.events if e["type"] == "files_changed"]
            assert all(e["task_id"] == TASK for e in changed)
            assert "out" in {p for e in changed for p in e["paths"]}
        finally:
            srv.stop()
        assert listener.ended(), "the stream did not end when the server stopped"
        assert listener.error is None, listener.error


def test_stream_ends_with_deleted_when_the_task_is_removed(srv: BeRayServer, client: BeRayClient) -> None:
    listener = Listener(client, TASK)
    wait_until(lambda: bool(listener.events), "the first status event")
    srv.remove_task(TASK)
    assert listener.ended(), "the stream did not end when the task was removed"
    assert listener.error is None, listener.error
    assert listener.events[-1] == {"type": "status", "task_id": TASK, "status": "DELETED"}
    assert not (srv.root / "tasks" / str(TASK)).exists()
    with pytest.raises(KeyError):
        srv.work_folder(TASK)


def test_stream_is_chunked_sse_with_keepalives(tmp_path: Path) -> None:
    with BeRayServer(root=tmp_path / "b", keepalive=0.1) as srv:
        srv.create_task(TASK)
        token = srv.issue_token(EMAIL)
        with requests.get(
            f"{srv.api_url}/tasks/{TASK}/stream",
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            stream=True,
            timeout=5,
        ) as answer:
            assert answer.status_code == 200
            assert answer.headers["Content-Type"].startswith("text/event-stream")
            assert answer.headers["Transfer-Encoding"] == "chunked"
            lines: list[bytes] = []
            for line in answer.iter_lines():
                lines.append(line)
                if line == b": keepalive":
                    break
            assert lines[:3] == [
                b"event: status",
                b"id: 1",
                b'data: {"type": "status", "task_id": 42, "status": "RUNNING"}',
            ]


def test_stream_needs_a_token_and_a_task(srv: BeRayServer, client: BeRayClient) -> None:
    # the client's stream raises requests' HTTPError, not its own exceptions
    with pytest.raises(requests.HTTPError) as unauthenticated:
        BeRayClient(srv.url).stream_task_updates(TASK).__next__()
    assert unauthenticated.value.response is not None and unauthenticated.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as missing:
        next(client.stream_task_updates(9))
    assert missing.value.response is not None and missing.value.response.status_code == 404
