"""The embedded remote (`kind = "embedded"`) is private to its user: the reference file service
listens on a Unix socket inside the state dir, in 0700 directories, and on no TCP port at all.

These run the quickstart config (`config.example.toml`) in-process, with HOME pointing at a
scratch directory, short enough for the socket's path to fit in sun_path or far too long for it.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest

from syncd.app import build_remotes
from syncd.config import Config, load_config
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.embedded import start_embedded
from syncd.remote.bdd.remote import BddRemote
from syncd.server.unixsock import SOCKET_NAME, SUN_PATH_MAX
from tests.support.privileges import as_nobody as run_as_nobody

QUICKSTART = Path(__file__).resolve().parents[2] / "config.example.toml"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def inet_listeners() -> set[tuple[str, int]]:
    """This process's listening TCP sockets."""
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.fixture(params=["short", "long"])
def home(request: pytest.FixtureRequest, short_home: Path, tmp_path: Path) -> Path:
    if request.param == "short":
        return short_home
    deep = tmp_path / ("h" * 100) / ("o" * 100)
    deep.mkdir(parents=True)
    return deep


def quickstart(home: Path) -> Config:
    return load_config(QUICKSTART, env={"HOME": str(home)})


def test_the_quickstart_remote_is_a_private_unix_socket(home: Path, tmp_path: Path) -> None:
    config = quickstart(home)
    state_dir = home / ".local/state/syncd"
    assert config.daemon.state_dir == state_dir
    sock = state_dir / "embedded" / SOCKET_NAME
    # Both sides of sun_path's limit are covered.
    assert (len(os.fsencode(str(sock))) > SUN_PATH_MAX) == ("h" * 100 in str(home))
    before = inet_listeners()
    with ExitStack() as stack:
        remotes = build_remotes(config, stack)
        remote = remotes["demo"]
        assert isinstance(remote, BddRemote)
        client = remote.client
        assert isinstance(client, BddClient)

        # No TCP port: nothing listens that did not before.
        assert inet_listeners() == before
        # The socket and its directories are private.
        assert stat.S_ISSOCK(sock.lstat().st_mode)
        assert mode(sock) == 0o600
        assert mode(sock.parent) == 0o700
        assert mode(state_dir) == 0o700
        # Messages name it for what it is, not as a URL.
        for named in (remote, client):
            assert repr(named).startswith(f"BddClient('embedded (unix socket {sock})'")
            assert "http" not in repr(named)

        # A file round-trips through the socket.
        body = os.urandom(200_000)
        src = tmp_path / "src.bin"
        src.write_bytes(body)
        file_id = client.upload(
            src, chat_id="demo-chat", filename="a.bin", size=len(body), sha256=hashlib.sha256(body).hexdigest()
        )
        [listed] = client.list_chat("demo-chat")
        assert (listed.id, listed.filename, listed.size) == (file_id, "a.bin", len(body))
        out = io.BytesIO()
        assert client.download(file_id, out) == len(body)
        assert out.getvalue() == body
        # A signed URL cannot be fetched from outside anyway; asking for one must not fail.
        assert isinstance(client.download_url(file_id), str)
        client.delete(file_id)
        assert client.list_chat("demo-chat") == []
    assert not sock.exists()  # removed at shutdown
    assert inet_listeners() == before


def test_a_loose_state_dir_and_data_dir_are_tightened(short_home: Path) -> None:
    state_dir = short_home / ".local/state/syncd"
    (state_dir / "embedded").mkdir(parents=True)
    state_dir.chmod(0o755)
    (state_dir / "embedded").chmod(0o755)
    with ExitStack() as stack:
        service = start_embedded(state_dir, stack)
        assert service.socket_path == state_dir / "embedded" / SOCKET_NAME
        assert mode(state_dir) == 0o700
        assert mode(state_dir / "embedded") == 0o700
        assert mode(service.socket_path) == 0o600


def test_a_second_start_in_the_same_state_dir_shares_or_waits(short_home: Path) -> None:
    """One process serves a state dir's socket; a probe (`syncd check`) uses the live one, a
    writer gives up with StateLocked rather than steal it."""
    from syncd.errors import StateLocked
    from syncd.server.unixsock import SocketDir

    state_dir = short_home / "state"
    with ExitStack() as stack:
        service = start_embedded(state_dir, stack)
        inode = service.socket_path.lstat().st_ino
        # The service lock is per open directory description, so a second one in this
        # process stands for another process.
        with ExitStack() as other:
            shared = start_embedded(state_dir, other, share=True)
            assert shared.socket_path == service.socket_path
            transport = httpx.HTTPTransport(uds=shared.address)
            with httpx.Client(transport=transport, base_url="http://embedded.invalid") as http:
                assert http.get("/health").status_code == 200
        with ExitStack() as other, pytest.raises(StateLocked, match="served by another syncd process"):
            start_embedded(state_dir, other, wait=0.2)
        assert service.socket_path.lstat().st_ino == inode
        with SocketDir(state_dir / "embedded") as probe:
            assert not probe.try_lock()


CHILD = r"""
import errno, json, os, socket, sys
home, state, sock = sys.argv[1:4]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
def connect():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock)
attempt("list home", lambda: os.listdir(home))
attempt("list state dir", lambda: os.listdir(state))
attempt("list data dir", lambda: os.listdir(os.path.join(state, "embedded")))
attempt("read meta.db", lambda: open(os.path.join(state, "embedded", "meta.db"), "rb").close())
attempt("connect", connect)
print(json.dumps({"uid": os.getuid(), **out}))
"""


def as_nobody(*args: str) -> dict[str, object]:
    """Run CHILD as uid/gid 65534 with no supplementary groups; what it could do."""
    return run_as_nobody(CHILD, *args)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a child as another uid (65534)")
def test_another_uid_cannot_reach_the_service_or_its_data(short_home: Path) -> None:
    state_dir = short_home / ".local/state/syncd"
    # Made loose beforehand (an older syncd, a careless mkdir): syncd tightens them.
    (state_dir / "embedded").mkdir(parents=True)
    for d in (short_home / ".local", short_home / ".local/state", state_dir, state_dir / "embedded"):
        d.chmod(0o755)
    with ExitStack() as stack:
        service = start_embedded(state_dir, stack)
        assert (state_dir / "embedded" / "meta.db").exists()
        args = (str(short_home), str(state_dir), str(service.socket_path))
        seen = as_nobody(*args)
        assert seen == {
            "uid": 65534,
            "list home": "ok",  # the home is open: the refusals below are the state dir's own
            "list state dir": "EACCES",
            "list data dir": "EACCES",
            "read meta.db": "EACCES",
            "connect": "EACCES",
        }
        # Even with both directories opened up behind syncd's back, the socket itself (0600)
        # refuses another uid.
        state_dir.chmod(0o755)
        (state_dir / "embedded").chmod(0o711)
        seen = as_nobody(*args)
        assert seen["connect"] == "EACCES", seen
