"""The promises of the `Remote` protocol, one suite for every remote kind.

Each test runs against every entry of `REMOTE_KINDS`: `BddRemote` over real HTTP against the
reference service, and `MemoryRemote` in every combination of its optional capabilities that
makes sense. A test a remote cannot take part in (an operation outside its capabilities that
the test needs) is skipped with the reason; what a remote must do *instead* (refuse with
`Unsupported`, an `ItemError`) is tested here as well.

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
from syncd.remote.base import Capability, FileStatus, Remote, RemoteFile
from syncd.remote.bdd.client import BddRemote
from syncd.remote.memory import REQUIRED, MemoryRemote

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
    with BddRemote(
        server.url, "alice", retry_attempts=3, retry_backoff=0.01, max_wait=0.05, timeout=10.0,
        multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE,
    ) as remote:
        yield Subject(remote, fetch_url=lambda url: httpx.get(url).raise_for_status().content)


@contextmanager
def memory_subject(caps: Capability, request: pytest.FixtureRequest) -> Iterator[Subject]:
    remote = MemoryRemote(caps, multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE)
    yield Subject(remote, fetch_url=remote.open_url)
    remote.close()


#: The capabilities a MemoryRemote may go without (it always has SERVER_KEYS: see REQUIRED).
OPTIONAL = [flag for flag in Capability if flag not in REQUIRED]


def memory_combinations() -> Iterator[Capability]:
    """Every set of optional capabilities that makes sense: a hash or a modification time is
    reported in a listing, so SHA256 and MTIME come with LIST."""
    for chosen in itertools.product((False, True), repeat=len(OPTIONAL)):
        caps = REQUIRED
        for flag, on in zip(OPTIONAL, chosen, strict=True):
            if on:
                caps |= flag
        if (Capability.SHA256 in caps or Capability.MTIME in caps) and Capability.LIST not in caps:
            continue
        yield caps


def memory_id(caps: Capability) -> str:
    names = [flag.name.lower() for flag in OPTIONAL if flag in caps and flag.name]
    return "memory-" + ("+".join(names) or "bare")


def everyday(caps: Capability) -> bool:
    """The combinations the default run covers: none, all, and each optional capability alone
    or missing alone (every flag seen both ways next to every other); the other combinations
    run with `-m slow`."""
    on = sum(1 for flag in OPTIONAL if flag in caps)
    return on in (0, 1, len(OPTIONAL) - 1, len(OPTIONAL)) or caps == BddRemote.capabilities


REMOTE_KINDS: dict[str, SubjectFactory] = {"bdd": bdd_subject}
REMOTE_KINDS.update({memory_id(caps): partial(memory_subject, caps) for caps in memory_combinations()})
SLOW_KINDS = {memory_id(caps) for caps in memory_combinations() if not everyday(caps)}


@pytest.fixture(
    params=[pytest.param(kind, marks=pytest.mark.slow) if kind in SLOW_KINDS else kind for kind in REMOTE_KINDS]
)
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with REMOTE_KINDS[request.param](request) as made:
        yield made


# -- helpers ---------------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(subject: Subject, tmp: Path, data: bytes, name: str = "file.bin", **options: object) -> int:
    src = tmp / f"src-{sha(name.encode())[:12]}-{sha(data)[:8]}"
    src.write_bytes(data)
    return subject.remote.upload(src, chat_id=CHAT, filename=name, size=len(data), sha256=sha(data), **options)  # type: ignore[arg-type]


def fetch(subject: Subject, file_id: int, **options: object) -> bytes:
    out = io.BytesIO()
    written = subject.remote.download(file_id, out, **options)  # type: ignore[arg-type]
    assert written == len(out.getvalue())
    return out.getvalue()


def listed(subject: Subject) -> dict[int, RemoteFile]:
    return {f.id: f for f in subject.remote.list_chat(CHAT)}


def newest(files: list[RemoteFile]) -> RemoteFile:
    return max(files, key=lambda f: (f.upload_at, f.id))


# -- the promises ----------------------------------------------------------------------------------


def test_the_remote_declares_its_capabilities(subject: Subject) -> None:
    assert isinstance(subject.caps, Capability)
    assert Capability.SERVER_KEYS in subject.caps  # today's protocol names files by server ids


def test_an_upload_lists_with_its_id_size_and_hash(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    data = os.urandom(100 * KiB + 7)
    file_id = put(subject, tmp_path, data, "report.pdf")
    [info] = subject.remote.list_chat(CHAT)
    assert (info.id, info.filename, info.size, info.status) == (file_id, "report.pdf", len(data), FileStatus.OK)
    assert info.hashcode == (sha(data) if Capability.SHA256 in subject.caps else "")
    assert isinstance(info.upload_at, datetime) and info.upload_at.tzinfo is not None
    assert subject.remote.list_chat("another chat") == []


def test_a_download_writes_exactly_the_bytes(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(200 * KiB + 3)
    file_id = put(subject, tmp_path, data)
    seen: list[int] = []
    assert fetch(subject, file_id, progress=seen.append) == data
    assert seen and seen[-1] == len(data) and seen == sorted(seen)
    assert fetch(subject, put(subject, tmp_path, b"", "empty")) == b""


def test_a_download_stops_at_its_limit(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(300 * KiB)
    file_id = put(subject, tmp_path, data)
    assert fetch(subject, file_id, limit=len(data)) == data
    out = io.BytesIO()
    with pytest.raises(TransientError, match="longer than"):
        subject.remote.download(file_id, out, limit=1000)
    assert len(out.getvalue()) <= 1000


def test_an_upload_sends_only_size_bytes(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "growing.log"
    src.write_bytes(b"0123456789")
    file_id = subject.remote.upload(src, chat_id=CHAT, filename="growing.log", size=4, sha256=sha(b"0123"))
    assert fetch(subject, file_id) == b"0123"


def test_an_upload_reports_progress_up_to_its_size(subject: Subject, tmp_path: Path) -> None:
    data = os.urandom(150 * KiB)
    seen: list[int] = []
    put(subject, tmp_path, data, progress=seen.append)
    assert seen and seen[-1] == len(data)


def test_ids_increase_and_are_never_reused(subject: Subject, tmp_path: Path) -> None:
    first = put(subject, tmp_path, b"one", "a.txt")
    if Capability.DELETE in subject.caps:
        subject.remote.delete(first)
    second = put(subject, tmp_path, b"one", "a.txt")
    third = put(subject, tmp_path, b"two", "b.txt")
    assert first < second < third


def test_a_name_holds_several_files_unless_the_remote_overwrites(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.LIST)
    old = put(subject, tmp_path, b"old version", "doc.txt")
    new = put(subject, tmp_path, b"the new version", "doc.txt")
    files = subject.remote.list_chat(CHAT)
    assert newest(files).id == new  # the newest by upload_at, then id, is the last upload
    if Capability.OVERWRITE in subject.caps:
        assert [f.id for f in files] == [new]
        with pytest.raises(ItemError):
            fetch(subject, old)
    else:
        assert sorted(f.id for f in files) == [old, new]
        assert all(f.status is FileStatus.OK for f in files)
        assert fetch(subject, old) == b"old version"
    assert fetch(subject, new) == b"the new version"


def test_a_deleted_file_is_gone_and_deleting_twice_is_fine(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.DELETE)
    keep = put(subject, tmp_path, b"keep", "keep.txt")
    gone = put(subject, tmp_path, b"gone", "gone.txt")
    subject.remote.delete(gone)
    if Capability.LIST in subject.caps:
        assert list(listed(subject)) == [keep]
    with pytest.raises(ItemError) as caught:
        fetch(subject, gone)
    assert caught.value.status == 404
    subject.remote.delete(gone)
    assert fetch(subject, keep) == b"keep"


def test_an_unknown_id_is_an_item_error(subject: Subject) -> None:
    with pytest.raises(ItemError) as caught:
        fetch(subject, 987_654)
    assert caught.value.status == 404
    assert "987654" in str(caught.value)
    if Capability.SIGN_URL in subject.caps:
        with pytest.raises(ItemError):
            subject.remote.download_url(987_654)
    if Capability.DELETE in subject.caps:
        subject.remote.delete(987_654)  # already gone counts as deleted


NAMES = ["with space.txt", "résumé 日本.txt", "e\u0301t\u0301e\u0301.txt", "emoji 🎉.md", " lead and trail "]


def test_names_round_trip_as_spelled(subject: Subject, tmp_path: Path) -> None:
    ids = {name: put(subject, tmp_path, name.encode(), name) for name in NAMES}
    for name, file_id in ids.items():
        assert fetch(subject, file_id) == name.encode()
    if Capability.LIST in subject.caps:
        assert {f.id: f.filename for f in subject.remote.list_chat(CHAT)} == {i: n for n, i in ids.items()}


HOSTILE = ["../x", "a\\b", "..", ".", "", "nul\x00byte", "bell\x07", "new\nline", "é" * 150, "/abs", "a//b", "a/../b"]


def test_unsafe_names_are_refused_before_anything_is_stored(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"boom")
    for name in HOSTILE:
        with pytest.raises(ItemError, match="refused"):
            subject.remote.upload(src, chat_id=CHAT, filename=name, size=4)
    if Capability.LIST in subject.caps:
        assert subject.remote.list_chat(CHAT) == []


def test_folders_in_names_need_tree(subject: Subject, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"deep")
    if Capability.TREE not in subject.caps:
        with pytest.raises(ItemError):
            subject.remote.upload(src, chat_id=CHAT, filename="sub/dir/x.txt", size=4)
        if Capability.LIST in subject.caps:
            assert subject.remote.list_chat(CHAT) == []
        return
    file_id = subject.remote.upload(src, chat_id=CHAT, filename="sub/dir/x.txt", size=4)
    assert fetch(subject, file_id) == b"deep"
    if Capability.LIST in subject.caps:
        assert [f.filename for f in subject.remote.list_chat(CHAT)] == ["sub/dir/x.txt"]


def test_concurrent_uploads_from_threads(subject: Subject, tmp_path: Path) -> None:
    payloads = {f"f{i:02}.txt": f"file {i}\n".encode() * (i + 1) for i in range(24)}
    start = threading.Barrier(6)

    def one(name: str) -> int:
        if int(name[1:3]) < 6:
            start.wait(timeout=10)  # the first six at the very same moment
        return put(subject, tmp_path, payloads[name], name)

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = dict(zip(payloads, pool.map(one, payloads), strict=True))
    assert len(set(ids.values())) == len(payloads)
    for name, file_id in ids.items():
        assert fetch(subject, file_id) == payloads[name]
    if Capability.LIST in subject.caps:
        assert {f.id: f.filename for f in subject.remote.list_chat(CHAT)} == {i: n for n, i in ids.items()}


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
    assert found is not None and found.id == second and found.id > first
    assert (found.filename, found.size, found.status) == ("copy.txt", len(data), FileStatus.OK)
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
    assert found is not None and found.id == latest


def test_a_wrong_sha256_is_refused(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.SHA256)
    src = tmp_path / "x"
    src.write_bytes(b"actual bytes")
    with pytest.raises(ItemError):
        subject.remote.upload(src, chat_id=CHAT, filename="x", size=12, sha256=sha(b"other bytes!"))
    if Capability.LIST in subject.caps:
        assert [f for f in subject.remote.list_chat(CHAT) if f.status is FileStatus.OK] == []


def test_a_signed_url_downloads_without_credentials(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.SIGN_URL)
    data = os.urandom(20 * KiB)
    url = subject.remote.download_url(put(subject, tmp_path, data), expires_in=60)
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

    file_id = subject.remote.upload(
        src, chat_id=CHAT, filename="big.bin", size=len(data), sha256=sha(data), progress=seen.append,
        on_resume=on_resume,
    )
    assert fetch(subject, file_id) == data and seen[-1] == len(data)
    if Capability.RESUMABLE not in subject.caps:
        assert tokens == []
        return
    assert tokens
    # The token of an upload that finished after all (its answer lost) gives its id back: no copy.
    again = subject.remote.upload(
        src, chat_id=CHAT, filename="big.bin", size=len(data), sha256=sha(data), resume=tokens[-1]
    )
    assert again == file_id
    if Capability.LIST in subject.caps:
        assert list(listed(subject)) == [file_id]


def test_a_token_for_other_content_or_none_at_all_costs_a_fresh_upload(subject: Subject, tmp_path: Path) -> None:
    tokens: list[str] = []
    big = os.urandom(MULTIPART_THRESHOLD + 1)
    first = put(subject, tmp_path, big, "big.bin", on_resume=tokens.append)
    for token in [*tokens, "not a token", '{"bdd_multipart": 7}', '{"memory_upload": {}}']:
        file_id = put(subject, tmp_path, b"small and different", "small.txt", resume=token)
        assert file_id > first
        assert fetch(subject, file_id) == b"small and different"
    assert fetch(subject, first) == big


def test_operations_outside_the_capabilities_are_refused(subject: Subject, tmp_path: Path) -> None:
    file_id = put(subject, tmp_path, b"content", "c.txt")
    refused: list[tuple[Capability, Callable[[], object]]] = [
        (Capability.LIST, lambda: subject.remote.list_chat(CHAT)),
        (Capability.LIST, lambda: subject.remote.find_copy(CHAT, "c.txt", 7, sha(b"content"))),
        (Capability.DELETE, lambda: subject.remote.delete(file_id)),
        (Capability.SIGN_URL, lambda: subject.remote.download_url(file_id)),
    ]
    # Not in the protocol yet: tested on the remotes that offer the method.
    rename = getattr(subject.remote, "rename", None)
    if rename is not None:
        refused.append((Capability.RENAME, lambda: rename(file_id, "d.txt")))
    modified_at = getattr(subject.remote, "modified_at", None)
    if modified_at is not None:
        refused.append((Capability.MTIME, lambda: modified_at(file_id)))
    lacking = [(flag, call) for flag, call in refused if flag not in subject.caps]
    if not lacking:
        pytest.skip("the remote has every capability this test could refuse")
    for flag, call in lacking:
        with pytest.raises(Unsupported, match="not supported by this remote") as caught:
            call()
        assert isinstance(caught.value, ItemError) and caught.value.capability == flag.name
    assert fetch(subject, file_id) == b"content"  # nothing was changed


def test_rename_keeps_the_id_and_the_content(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.RENAME)
    rename = getattr(subject.remote, "rename", None)
    if rename is None:
        pytest.skip("the remote declares RENAME but the protocol has no rename yet")
    file_id = put(subject, tmp_path, b"moving", "before.txt")
    rename(file_id, "after.txt")
    assert fetch(subject, file_id) == b"moving"
    if Capability.LIST in subject.caps:
        assert [(f.id, f.filename) for f in subject.remote.list_chat(CHAT)] == [(file_id, "after.txt")]
    with pytest.raises(ItemError):
        rename(file_id, "../escape")


def test_the_modification_time_is_the_files_own(subject: Subject, tmp_path: Path) -> None:
    subject.needs(Capability.MTIME)
    modified_at = getattr(subject.remote, "modified_at", None)
    if modified_at is None:
        pytest.skip("the remote declares MTIME but the protocol has no way to read it yet")
    src = tmp_path / "old.txt"
    src.write_bytes(b"old")
    os.utime(src, (1_500_000_000, 1_500_000_000))
    file_id = subject.remote.upload(src, chat_id=CHAT, filename="old.txt", size=3)
    assert modified_at(file_id).timestamp() == 1_500_000_000
