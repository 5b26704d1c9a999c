"""The promises of the `Remote` protocol, one suite for every remote kind.

Each test runs against every entry of `REMOTE_KINDS`: `BddRemote` over real HTTP against the
reference service, `RagentRemote` over real HTTP against the stand-in gateway, and
`MemoryRemote` in every combination of its capabilities. A test a remote
cannot take part in (an operation outside its capabilities that the test needs) is skipped with
the reason; what a remote must do *instead* (refuse with `Unsupported`, an `ItemError`) is
tested here as well.

A new remote kind adds itself with one line: ``REMOTE_KINDS["kind"] = its_factory``, where
the factory is a context manager taking pytest's `request` (for fixtures such as a stand-in
server) and yielding a `Subject`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
import pytest

from syncd.errors import ItemError, TransientError, Unsupported
from syncd.remote.agentrun.client import AgentRunClient
from syncd.remote.agentrun.remote import AgentRunRemote
from syncd.remote.agentrun.settings import Place
from syncd.remote.agentrun.signing import Credentials
from syncd.remote.base import Capability, Remote, RemoteFile
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote
from syncd.remote.beray.client import BeRayClient
from syncd.remote.beray.remote import BeRayRemote
from syncd.remote.beray.settings import Login
from syncd.remote.beray.settings import Place as TaskPlace
from syncd.remote.memory import MemoryRemote
from syncd.remote.ragent.client import RagentClient
from syncd.remote.ragent.remote import RagentRemote
from tests.support.agentrun_server import AgentRunServer
from tests.support.beray_server import BeRayServer
from tests.support.ragent_gateway import RagentGateway

CHAT = "contract"
KiB = 1024
#: Above this many bytes a RESUMABLE remote of this suite uploads in parts.
MULTIPART_THRESHOLD = 512 * KiB
PART_SIZE = 256 * KiB


@dataclass
class Subject:
    """A remote under test and what the suite needs to know about it."""

    remote: Remote
    #: GET a signed download URL without credentials, as a browser would.
    fetch_url: Callable[[str], bytes]

    @property
    def caps(self) -> Capability:
        return self.remote.capabilities

    def needs(self, *flags: Capability) -> None:
        """Skip the test unless the remote has every one of `flags`."""
        missing = [flag.name for flag in flags if flag not in self.caps]
        if missing:
            pytest.skip(f"the remote has no {', '.join(str(m) for m in missing)}")

    def lacks(self, flag: Capability) -> None:
        """Skip the test unless the remote lacks `flag`."""
        if flag in self.caps:
            pytest.skip(f"the remote has {flag.name}")


SubjectFactory = Callable[[pytest.FixtureRequest], AbstractContextManager[Subject]]


# -- the registry of remote kinds ------------------------------------------------------------------


@contextmanager
def bdd_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    server = request.getfixturevalue("file_server")
    client = BddClient(
        server.url, "alice", retry_attempts=3, retry_backoff=0.01, max_wait=0.05, timeout=10.0,
        multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE,
    )
    remote = BddRemote(client)
    try:
        yield Subject(remote, fetch_url=lambda url: httpx.get(url).raise_for_status().content)
    finally:
        remote.close()


@contextmanager
def ragent_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    with RagentGateway(root=tmp_path / "gateway") as gateway:
        client = RagentClient(
            gateway.url, api_key=gateway.api_key, retry_attempts=3, retry_backoff=0.01, max_wait=0.05, timeout=10.0
        )
        remote = RagentRemote(client)
        try:
            yield Subject(remote, fetch_url=lambda url: httpx.get(url).raise_for_status().content)
        finally:
            remote.close()


@contextmanager
def agentrun_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Signed requests to the stand-in data plane; the suite's place is a directory of one sandbox."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    with AgentRunServer(root=tmp_path / "sandboxes", keys={"AKIDTEST": "s3cr3t"}) as server:
        server.create_sandbox("sb-contract")
        client = AgentRunClient(
            server.url, credentials=Credentials("AKIDTEST", "s3cr3t"), region="cn-hangzhou",
            retry_attempts=3, retry_backoff=0.01, max_wait=0.05, timeout=10.0,
        )
        remote = AgentRunRemote(client)
        places = {CHAT: Place("sb-contract", "/home/user/contract").dumps(),
                  "another chat": Place("sb-contract", "/home/user/another").dumps()}
        try:
            yield Subject(_Placed(remote, places), fetch_url=lambda url: b"")
        finally:
            remote.close()


@contextmanager
def beray_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """A task's work folder on the stand-in BeRay server, logged in with a password."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    with BeRayServer(root=tmp_path / "beray", users={"me@example.com": "pw"}) as server:
        server.create_task(42)
        client = BeRayClient(server.url, Login("me@example.com", "pw", None), retry_attempts=3,
                             retry_backoff=0.01, max_wait=0.05, timeout=10.0)
        remote = BeRayRemote(client)
        places = {CHAT: TaskPlace(42, "contract").dumps(), "another chat": TaskPlace(42, "another").dumps()}
        try:
            yield Subject(_Placed(remote, places), fetch_url=lambda url: b"")
        finally:
            remote.close()


class _Placed:
    """A remote whose places the suite names in its own words (`CHAT`), mapped to the kind's."""

    def __init__(self, remote: Remote, places: dict[str, str]) -> None:
        self._remote, self._places = remote, places

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._remote, name)
        if not callable(attribute):
            return attribute

        def call(place: str, *args: object, **kwargs: object) -> object:
            return attribute(self._places.get(place, place), *args, **kwargs)

        return call


@contextmanager
def memory_subject(caps: Capability, request: pytest.FixtureRequest) -> Iterator[Subject]:
    remote = MemoryRemote(caps, multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE)
    yield Subject(remote, fetch_url=remote.open_url)
    remote.close()


#: The capabilities a MemoryRemote may have or go without: every one.
OPTIONAL = list(Capability)


def memory_combinations() -> Iterator[Capability]:
    """Every set of capabilities. (A put reports the file it made, so a sha256 or a modification
    time is seen even without LIST.)"""
    for chosen in itertools.product((False, True), repeat=len(OPTIONAL)):
        caps = Capability(0)
        for flag, on in zip(OPTIONAL, chosen, strict=True):
            if on:
                caps |= flag
        yield caps


def memory_id(caps: Capability) -> str:
    names = [flag.name.lower() for flag in OPTIONAL if flag in caps and flag.name]
    return "memory-" + ("+".join(names) or "bare")


def everyday(caps: Capability) -> bool:
    """The combinations the default run covers: none, all, and each capability alone or missing
    alone (every flag seen both ways next to every other), and BDD's; the other combinations
    run with `-m slow`."""
    on = sum(1 for flag in OPTIONAL if flag in caps)
    return on in (0, 1, len(OPTIONAL) - 1, len(OPTIONAL)) or caps == BddRemote.capabilities


REMOTE_KINDS: dict[str, SubjectFactory] = {
    "bdd": bdd_subject, "ragent-oss": ragent_subject, "agentrun": agentrun_subject, "beray": beray_subject,
}
REMOTE_KINDS.update({memory_id(caps): partial(memory_subject, caps) for caps in memory_combinations()})
SLOW_KINDS = {memory_id(caps) for caps in memory_combinations() if not everyday(caps)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that takes a `subject` runs once per kind. A run whose mark expression leaves
    out `slow` (the default) does not even collect the slow kinds: thousands of items it would
    only deselect."""
    if "subject" not in metafunc.fixturenames:
        return
    without_slow = "not slow" in (metafunc.config.getoption("markexpr") or "")
    kinds = [
        pytest.param(kind, marks=pytest.mark.slow) if kind in SLOW_KINDS else kind
        for kind in REMOTE_KINDS
        if not (without_slow and kind in SLOW_KINDS)
    ]
    metafunc.parametrize("subject", kinds, indirect=True)


@pytest.fixture
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with REMOTE_KINDS[request.param](request) as made:
        yield made


# -- helpers ---------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(subject: Subject, tmp: Path, data: bytes, name: str = "file.bin", **options: object) -> RemoteFile:
    src = tmp / f"src-{sha(name.encode())[:12]}-{sha(data)[:8]}"
    src.write_bytes(data)
    return subject.remote.put(CHAT, name, src, size=len(data), sha256=sha(data), **options)  # type: ignore[arg-type]


def fetch(subject: Subject, file: RemoteFile, **options: object) -> bytes:
    out = io.BytesIO()
    written = subject.remote.get(CHAT, file, out, **options)  # type: ignore[arg-type]
    assert written == len(out.getvalue())
    return out.getvalue()


def listed(subject: Subject) -> dict[str, RemoteFile]:
    return {f.version: f for f in subject.remote.list(CHAT)}


def order(file: RemoteFile) -> tuple[datetime, int]:
    """Where a version stands among those of one path: later written, or larger `seq`, is newer."""
    return (file.written_at, file.seq)


def newest(files: list[RemoteFile]) -> RemoteFile:
    return max(files, key=order)


def ghost(version: str = "987654") -> RemoteFile:
    """A file the remote never had."""
    return RemoteFile(path="ghost.txt", version=version, size=1)


# -- the promises ----------------------------------------------------------------------------------


def test_the_remote_declares_its_capabilities(subject: Subject, tmp_path: Path) -> None:
    assert isinstance(subject.caps, Capability)
    file = put(subject, tmp_path, b"x", "x.txt")
    assert isinstance(file.version, str) and file.version  # the protocol names files by opaque versions


def test_an_upload_lists_with_its_version_size_and_hash(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    data = os.urandom(100 * KiB + 7)
    file = put(subject, tmp_path, data, "report.pdf")
    assert (file.path, file.size) == ("report.pdf", len(data))
    [info] = subject.remote.list(CHAT)  # listed: complete
    assert (info.version, info.path, info.size) == (file.version, "report.pdf", len(data))
    assert info.sha256 == (sha(data) if Capability.SHA256 in subject.caps else None)
    assert isinstance(info.written_at, datetime) and info.written_at.tzinfo is not None
    assert subject.remote.list("another chat") == []


def test_a_download_writes_exactly_the_bytes(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(200 * KiB + 3)
    file = put(subject, tmp_path, data)
    seen: list[int] = []
    assert fetch(subject, file, progress=seen.append) == data
    assert seen and seen[-1] == len(data) and seen == sorted(seen)
    assert fetch(subject, put(subject, tmp_path, b"", "empty")) == b""


def test_a_download_stops_at_its_limit(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(300 * KiB)
    file = put(subject, tmp_path, data)
    assert fetch(subject, file, limit=len(data)) == data
    out = io.BytesIO()
    with pytest.raises(TransientError, match="longer than"):
        subject.remote.get(CHAT, file, out, limit=1000)
    assert len(out.getvalue()) <= 1000


def test_an_upload_sends_only_size_bytes(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "growing.log"
    src.write_bytes(b"0123456789")
    file = subject.remote.put(CHAT, "growing.log", src, size=4, sha256=sha(b"0123"))
    assert file.size == 4
    assert fetch(subject, file) == b"0123"


def test_an_upload_reports_progress_up_to_its_size(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(150 * KiB)
    seen: list[int] = []
    put(subject, tmp_path, data, progress=seen.append)
    assert seen and seen[-1] == len(data)


def test_versions_are_new_in_order_and_never_reused(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.SERVER_KEYS)
    first = put(subject, tmp_path, b"one", "a.txt")
    if Capability.DELETE in subject.caps:
        subject.remote.delete(CHAT, first.path, first.version)
    second = put(subject, tmp_path, b"one", "a.txt")
    third = put(subject, tmp_path, b"two", "b.txt")
    assert len({first.version, second.version, third.version}) == 3
    assert order(first) < order(second) < order(third)


def test_a_name_holds_several_files_unless_the_remote_overwrites(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    old = put(subject, tmp_path, b"old version", "doc.txt")
    new = put(subject, tmp_path, b"the new version", "doc.txt")
    files = subject.remote.list(CHAT)
    assert newest(files).version == new.version  # the newest by written_at, then seq, is the last upload
    if Capability.OVERWRITE in subject.caps:
        assert [f.version for f in files] == [new.version]
        with pytest.raises(ItemError):
            fetch(subject, old)
    else:
        assert [f.version for f in files] == [old.version, new.version]  # oldest first
        assert {f.version: f.size for f in files} == {old.version: 11, new.version: 15}  # both complete
        assert fetch(subject, old) == b"old version"
    assert fetch(subject, new) == b"the new version"


def test_a_deleted_file_is_gone_and_deleting_twice_is_fine(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.DELETE)
    keep = put(subject, tmp_path, b"keep", "keep.txt")
    gone = put(subject, tmp_path, b"gone", "gone.txt")
    subject.remote.delete(CHAT, gone.path, gone.version)
    if Capability.LIST in subject.caps:
        assert list(listed(subject)) == [keep.version]
    with pytest.raises(ItemError) as caught:
        fetch(subject, gone)
    assert caught.value.status == 404
    subject.remote.delete(CHAT, gone.path, gone.version)
    assert fetch(subject, keep) == b"keep"


def test_an_unknown_version_is_an_item_error(subject: Subject) -> None:
    with pytest.raises(ItemError) as caught:
        fetch(subject, ghost())
    assert caught.value.status == 404
    assert "987654" in str(caught.value)
    if Capability.SIGN_URL in subject.caps:
        with pytest.raises(ItemError):
            subject.remote.sign_url(CHAT, ghost())
    if Capability.DELETE in subject.caps:
        subject.remote.delete(CHAT, "ghost.txt", "987654")  # already gone counts as deleted


NAMES = ["with space.txt", "résumé 日本.txt", "e\u0301t\u0301e\u0301.txt", "emoji 🎉.md", " lead and trail "]


def test_names_round_trip_as_spelled(subject: Subject, tmp_path: Path) -> None:
    files = {name: put(subject, tmp_path, name.encode(), name) for name in NAMES}
    for name, file in files.items():
        assert file.path == name
        assert fetch(subject, file) == name.encode()
    if Capability.LIST in subject.caps:
        assert {f.version: f.path for f in subject.remote.list(CHAT)} == {f.version: n for n, f in files.items()}


HOSTILE = ["../x", "a\\b", "..", ".", "", "nul\x00byte", "bell\x07", "new\nline", "é" * 150, "/abs", "a//b", "a/../b"]


def test_unsafe_names_are_refused_before_anything_is_stored(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"boom")
    for name in HOSTILE:
        with pytest.raises(ItemError, match="refused"):
            subject.remote.put(CHAT, name, src, size=4)
    if Capability.LIST in subject.caps:
        assert subject.remote.list(CHAT) == []


def test_folders_in_paths_need_tree(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"deep")
    if Capability.TREE not in subject.caps:
        with pytest.raises(Unsupported, match="not supported by this remote") as caught:
            subject.remote.put(CHAT, "a/b/c.txt", src, size=4)
        assert caught.value.capability == "TREE"
        if Capability.LIST in subject.caps:
            assert subject.remote.list(CHAT) == []
        return
    file = subject.remote.put(CHAT, "a/b/c.txt", src, size=4)
    assert file.path == "a/b/c.txt"
    assert fetch(subject, file) == b"deep"
    if Capability.LIST in subject.caps:
        assert [(f.version, f.path) for f in subject.remote.list(CHAT)] == [(file.version, "a/b/c.txt")]


def test_a_move_into_a_folder_needs_tree(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.RENAME)
    file = put(subject, tmp_path, b"filed", "loose.txt")
    if Capability.TREE not in subject.caps:
        with pytest.raises(Unsupported) as caught:
            subject.remote.move(CHAT, file, "a/b/c.txt")
        assert caught.value.capability == "TREE"
        if Capability.LIST in subject.caps:
            assert [(f.version, f.path) for f in subject.remote.list(CHAT)] == [(file.version, "loose.txt")]
        assert fetch(subject, file) == b"filed"
        return
    moved = subject.remote.move(CHAT, file, "a/b/c.txt")
    assert moved.path == "a/b/c.txt"
    assert fetch(subject, moved) == b"filed"
    if Capability.LIST in subject.caps:
        assert [f.path for f in subject.remote.list(CHAT)] == ["a/b/c.txt"]


def test_concurrent_uploads_from_threads(subject: Subject, tmp_path: Path) -> None:
    payloads = {f"f{i:02}.txt": f"file {i}\n".encode() * (i + 1) for i in range(24)}
    start = threading.Barrier(6)

    def one(name: str) -> RemoteFile:
        if int(name[1:3]) < 6:
            start.wait(timeout=10)  # the first six at the very same moment
        return put(subject, tmp_path, payloads[name], name)

    with ThreadPoolExecutor(max_workers=6) as pool:
        files = dict(zip(payloads, pool.map(one, payloads), strict=True))
    assert len({f.version for f in files.values()}) == len(payloads)
    for name, file in files.items():
        assert fetch(subject, file) == payloads[name]
    if Capability.LIST in subject.caps:
        assert {f.version: f.path for f in subject.remote.list(CHAT)} == {f.version: n for n, f in files.items()}


def test_find_copy_finds_the_newest_exact_copy(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    subject.lacks(Capability.OVERWRITE)  # several copies of one name: what find_copy chooses among
    data = b"the bytes an ambiguous upload sent"
    first = put(subject, tmp_path, data, "copy.txt")
    put(subject, tmp_path, b"other bytes", "copy.txt")
    second = put(subject, tmp_path, data, "copy.txt")
    found = subject.remote.find_copy(CHAT, "copy.txt", len(data), sha(data).upper())
    if Capability.SHA256 not in subject.caps:
        assert found is None  # nothing listed can prove its content
        return
    assert found is not None and found.version == second.version
    assert order(found) > order(listed(subject)[first.version])
    assert (found.path, found.size, found.sha256) == ("copy.txt", len(data), sha(data))
    assert subject.remote.find_copy(CHAT, "copy.txt", len(data) + 1, sha(data)) is None
    assert subject.remote.find_copy(CHAT, "copy.txt", len(data), sha(b"x")) is None
    assert subject.remote.find_copy(CHAT, "Copy.txt", len(data), sha(data)) is None
    assert subject.remote.find_copy("another chat", "copy.txt", len(data), sha(data)) is None


def test_find_copy_after_an_overwrite(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST, Capability.SHA256, Capability.OVERWRITE)
    data = b"current"
    put(subject, tmp_path, data, "o.txt")
    latest = put(subject, tmp_path, data, "o.txt")
    found = subject.remote.find_copy(CHAT, "o.txt", len(data), sha(data))
    assert found is not None and found.version == latest.version


def test_without_sha256_nothing_proves_content(subject: Subject, tmp_path: Path) -> None:
    subject.lacks(Capability.SHA256)
    data = b"bytes whose sha256 the caller knows"
    file = put(subject, tmp_path, data, "plain.txt")
    assert file.sha256 is None
    assert fetch(subject, file) == data
    if Capability.LIST in subject.caps:
        assert [(f.version, f.sha256) for f in subject.remote.list(CHAT)] == [(file.version, None)]
        assert subject.remote.find_copy(CHAT, "plain.txt", len(data), sha(data)) is None


def test_stat_says_what_a_path_holds_now(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    assert subject.remote.stat(CHAT, "notes.txt") is None
    first = put(subject, tmp_path, b"first", "notes.txt")
    second = put(subject, tmp_path, b"second, longer", "notes.txt")
    put(subject, tmp_path, b"elsewhere", "other.txt")
    now = subject.remote.stat(CHAT, "notes.txt")
    assert now is not None and (now.version, now.path, now.size) == (second.version, "notes.txt", 14)
    assert now.sha256 == (sha(b"second, longer") if Capability.SHA256 in subject.caps else None)
    assert fetch(subject, now) == b"second, longer"
    if Capability.DELETE in subject.caps:
        subject.remote.delete(CHAT, "notes.txt", second.version)
        after = subject.remote.stat(CHAT, "notes.txt")
        kept = None if Capability.OVERWRITE in subject.caps else first.version  # the older one is current again
        assert (after.version if after else None) == kept
    assert subject.remote.stat("another chat", "notes.txt") is None


def test_without_list_nothing_is_listed(subject: Subject, tmp_path: Path) -> None:
    subject.lacks(Capability.LIST)
    file = put(subject, tmp_path, b"written blind", "blind.txt")
    for call in (lambda: subject.remote.list(CHAT),
                 lambda: subject.remote.stat(CHAT, "blind.txt"),
                 lambda: subject.remote.find_copy(CHAT, "blind.txt", 13, sha(b"written blind"))):
        with pytest.raises(Unsupported, match="not supported by this remote") as caught:
            call()
        assert caught.value.capability == "LIST"
    assert fetch(subject, file) == b"written blind"  # what syncd put itself it can still read


def test_a_wrong_sha256_is_refused(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.SHA256)
    src = tmp_path / "x"
    src.write_bytes(b"actual bytes")
    with pytest.raises(ItemError):
        subject.remote.put(CHAT, "x", src, size=12, sha256=sha(b"other bytes!"))
    if Capability.LIST in subject.caps:
        assert subject.remote.list(CHAT) == []  # only complete files are listed


def test_a_signed_url_downloads_without_credentials(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.SIGN_URL)
    data = os.urandom(20 * KiB)
    url = subject.remote.sign_url(CHAT, put(subject, tmp_path, data), expires_in=60)
    assert subject.fetch_url(url) == data


def test_a_large_upload_reports_its_resume_token_first(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(MULTIPART_THRESHOLD + 3 * KiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    tokens: list[str] = []
    seen: list[int] = []

    def on_resume(token: str) -> None:
        tokens.append(token)
        assert not seen, "the token comes before any content"

    file = subject.remote.put(
        CHAT, "big.bin", src, size=len(data), sha256=sha(data), progress=seen.append, on_resume=on_resume
    )
    assert fetch(subject, file) == data and seen[-1] == len(data)
    if Capability.RESUMABLE not in subject.caps:
        assert tokens == []
        return
    assert tokens
    # The token of an upload that finished after all (its answer lost) gives its file back: no copy.
    again = subject.remote.put(CHAT, "big.bin", src, size=len(data), sha256=sha(data), resume=tokens[-1])
    assert again.version == file.version
    if Capability.LIST in subject.caps:
        assert list(listed(subject)) == [file.version]


def test_a_token_for_other_content_or_none_at_all_costs_a_fresh_upload(subject: Subject, tmp_path: Path) -> None:
    tokens: list[str] = []
    big = os.urandom(MULTIPART_THRESHOLD + 1)
    first = put(subject, tmp_path, big, "big.bin", on_resume=tokens.append)
    for token in [*tokens, "not a token", '{"bdd_multipart": 7}', '{"memory_upload": {}}']:
        file = put(subject, tmp_path, b"small and different", "small.txt", resume=token)
        assert file.version != first.version and order(file) > order(first)
        assert fetch(subject, file) == b"small and different"
    assert fetch(subject, first) == big


def test_operations_outside_the_capabilities_are_refused(subject: Subject, tmp_path: Path) -> None:
    file = put(subject, tmp_path, b"content", "c.txt")
    src = tmp_path / "deep"
    src.write_bytes(b"deep")
    refused: list[tuple[Capability, Callable[[], object]]] = [
        (Capability.LIST, lambda: subject.remote.list(CHAT)),
        (Capability.LIST, lambda: subject.remote.find_copy(CHAT, "c.txt", 7, sha(b"content"))),
        (Capability.DELETE, lambda: subject.remote.delete(CHAT, file.path, file.version)),
        (Capability.SIGN_URL, lambda: subject.remote.sign_url(CHAT, file)),
        (Capability.RENAME, lambda: subject.remote.move(CHAT, file, "d.txt")),
        (Capability.TREE, lambda: subject.remote.put(CHAT, "sub/e.txt", src, size=4)),
    ]
    lacking = [(flag, call) for flag, call in refused if flag not in subject.caps]
    if not lacking:
        pytest.skip("the remote has every capability this test could refuse")
    for flag, call in lacking:
        with pytest.raises(Unsupported, match="not supported by this remote") as caught:
            call()
        assert isinstance(caught.value, ItemError) and caught.value.capability == flag.name
    assert fetch(subject, file) == b"content"  # nothing was changed
    if Capability.LIST in subject.caps:
        assert [(f.version, f.path) for f in subject.remote.list(CHAT)] == [(file.version, "c.txt")]


def test_a_move_keeps_the_content_and_the_old_path_is_gone(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.RENAME)
    file = put(subject, tmp_path, b"moving", "before.txt")
    moved = subject.remote.move(CHAT, file, "after.txt")
    assert (moved.path, moved.size) == ("after.txt", 6)
    if Capability.SERVER_KEYS in subject.caps:
        assert moved.version == file.version  # a server's version names the content, which stays
    assert fetch(subject, moved) == b"moving"
    if Capability.LIST in subject.caps:
        assert [(f.version, f.path) for f in subject.remote.list(CHAT)] == [(moved.version, "after.txt")]
    with pytest.raises(ItemError):
        subject.remote.move(CHAT, moved, "../escape")
    assert fetch(subject, moved) == b"moving"


def test_the_modification_time_is_the_files_own(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "old.txt"
    src.write_bytes(b"old")
    os.utime(src, (1_500_000_000, 1_500_000_000))
    file = subject.remote.put(CHAT, "old.txt", src, size=3)
    files = subject.remote.list(CHAT) if Capability.LIST in subject.caps else []
    if Capability.MTIME not in subject.caps:
        assert file.mtime is None  # the remote reports no file times of its own
        assert [f.mtime for f in files] == [None] * len(files)
        return
    assert file.mtime is not None
    assert [f.mtime for f in files] == [file.mtime] * len(files)
    if file.mtime.timestamp() != 1_500_000_000:  # a remote that stamps writes with its own clock
        assert abs(file.mtime.timestamp() - time.time()) < 3600
        return
    assert all(f.mtime is not None and f.mtime.timestamp() == src.stat().st_mtime for f in files)
