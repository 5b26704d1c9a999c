"""What `MemoryRemote` offers tests beyond the contract suite: fault hooks, resumable uploads
cut short and resumed, incomplete files, its clock, and its refusals."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.errors import ItemError, TransientError, Unsupported
from syncd.remote.base import Capability, Remote, RemoteFile
from syncd.remote.memory import ALL, BDD_LIKE, MemoryRemote

CHAT = "c"
KiB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(tmp_path: Path, data: bytes, name: str = "src") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def token_version(token: str) -> str:
    """The version a resumable put under way will have once complete (its token names it)."""
    return str(json.loads(token)["memory_upload"]["file_id"])


def test_it_is_a_remote_like_bdd_by_default() -> None:
    remote: Remote = MemoryRemote()
    assert remote.capabilities == BDD_LIKE
    # The protocol names files by path and version now: server-chosen keys are one choice of many.
    assert MemoryRemote(ALL & ~Capability.SERVER_KEYS).capabilities == ALL & ~Capability.SERVER_KEYS


def test_a_fault_before_changes_nothing_and_a_fault_after_leaves_the_upload(tmp_path: Path) -> None:
    remote = MemoryRemote()
    src = write(tmp_path, b"data")
    remote.fail_next("put", TransientError("connection reset"))
    with pytest.raises(TransientError, match="reset"):
        remote.put(CHAT, "a.txt", src, size=4, sha256=sha(b"data"))
    assert remote.list(CHAT) == []

    remote.fail_next("put", TransientError("answer lost"), after=True)
    with pytest.raises(TransientError, match="lost"):
        remote.put(CHAT, "a.txt", src, size=4, sha256=sha(b"data"))
    [made] = remote.list(CHAT)  # the ambiguous failure: find_copy is how a retry finds it
    assert remote.find_copy(CHAT, "a.txt", 4, sha(b"data")) == made
    again = remote.put(CHAT, "a.txt", src, size=4)
    assert again.seq > made.seq and int(again.version) > int(made.version)
    assert remote.calls["put"] == 3


def test_faults_are_taken_in_order_and_counted(tmp_path: Path) -> None:
    remote = MemoryRemote()
    remote.fail_next("list", TransientError("first"), times=2)
    remote.fail_next("list", ItemError("then this"))
    for expected in (TransientError, TransientError, ItemError):
        with pytest.raises(expected):
            remote.list(CHAT)
    assert remote.list(CHAT) == []
    assert remote.calls["list"] == 4
    with pytest.raises(ValueError, match="unknown method"):
        remote.fail_next("upload_file", TransientError("x"))
    with pytest.raises(ValueError, match="unknown method"):
        remote.fail_next("list_chat", TransientError("x"))  # the chat API's words are not the protocol's


def test_a_resumable_upload_cut_short_resumes_with_the_missing_parts(tmp_path: Path) -> None:
    remote = MemoryRemote(multipart_threshold=10 * KiB, part_size=4 * KiB)
    data = bytes(range(256)) * 50  # 12800 bytes: four parts, the last one short
    src = write(tmp_path, data)
    tokens: list[str] = []
    remote.fail_next("part", TransientError("network down"))  # the first part never gets through
    with pytest.raises(TransientError):
        remote.put(CHAT, "big", src, size=len(data), sha256=sha(data), on_resume=tokens.append)
    partial = token_version(tokens[0])
    assert remote.list(CHAT) == [] and remote.files() == []  # under way: not listed
    assert remote.parts_sent == []
    with pytest.raises(ItemError):
        remote.get(CHAT, RemoteFile("big", partial, len(data)), io.BytesIO())

    def cut_in_part_3(sent: int) -> None:
        if sent > 8 * KiB:
            raise TransientError("reset")

    with pytest.raises(TransientError):
        remote.put(CHAT, "big", src, size=len(data), sha256=sha(data), resume=tokens[0], progress=cut_in_part_3)
    assert remote.parts_sent == [(int(partial), 1), (int(partial), 2)]
    put = remote.put(CHAT, "big", src, size=len(data), sha256=sha(data), resume=tokens[0])
    assert put.version == partial
    assert remote.parts_sent == [(int(partial), n) for n in (1, 2, 3, 4)]
    [done] = remote.list(CHAT)
    assert (done.version, done.sha256) == (put.version, sha(data))
    assert remote.content(put.version) == data


def test_a_token_for_other_content_abandons_the_old_upload(tmp_path: Path) -> None:
    remote = MemoryRemote(multipart_threshold=1 * KiB, part_size=1 * KiB)
    src = write(tmp_path, b"x" * 3000)
    tokens: list[str] = []
    remote.fail_next("part", TransientError("cut"))
    with pytest.raises(TransientError):
        remote.put(CHAT, "f", src, size=3000, sha256=sha(b"x" * 3000), on_resume=tokens.append)
    stale = token_version(tokens[0])
    assert remote.content(stale) == b""  # held, incomplete
    changed = write(tmp_path, b"y" * 3000)
    put = remote.put(CHAT, "f", changed, size=3000, sha256=sha(b"y" * 3000), resume=tokens[0])
    assert [f.version for f in remote.list(CHAT)] == [put.version]
    assert int(put.version) > int(stale)
    with pytest.raises(ItemError, match="no such file"):
        remote.content(stale)  # abandoned


def test_without_resumable_big_uploads_go_whole_and_tokens_are_ignored(tmp_path: Path) -> None:
    remote = MemoryRemote(BDD_LIKE & ~Capability.RESUMABLE, multipart_threshold=1 * KiB, part_size=1 * KiB)
    src = write(tmp_path, b"z" * 5000)
    tokens: list[str] = []
    put = remote.put(CHAT, "f", src, size=5000, on_resume=tokens.append, resume="{}")
    assert tokens == [] and remote.parts_sent == []
    assert remote.content(put.version) == b"z" * 5000


def test_an_incomplete_file_set_by_a_test_is_neither_listed_nor_read(tmp_path: Path) -> None:
    remote = MemoryRemote()
    put = remote.put(CHAT, "m", write(tmp_path, b"m"), size=1)
    remote.set_incomplete(put.version)
    assert remote.list(CHAT) == [] and remote.files() == []
    assert remote.find_copy(CHAT, "m", 1, sha(b"m")) is None
    with pytest.raises(ItemError, match="not complete"):
        remote.get(CHAT, put, io.BytesIO())


def test_upload_times_never_go_backwards(tmp_path: Path) -> None:
    times = iter([datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)])
    remote = MemoryRemote(clock=lambda: next(times))
    src = write(tmp_path, b"t")
    remote.put(CHAT, "t", src, size=1)
    remote.put(CHAT, "t", src, size=1)
    first, second = remote.list(CHAT)
    assert first.written_at == second.written_at and first.seq < second.seq


def test_the_listing_shows_sha256_and_mtime_only_with_their_capabilities(tmp_path: Path) -> None:
    src = write(tmp_path, b"when")
    os.utime(src, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    mtime = datetime.fromtimestamp(1_700_000_000, UTC)
    for caps in (BDD_LIKE, BDD_LIKE | Capability.MTIME, BDD_LIKE & ~Capability.SHA256):
        remote = MemoryRemote(caps)
        put = remote.put(CHAT, "w", src, size=4)
        [listed] = remote.list(CHAT)
        assert listed == put
        assert listed.sha256 == (sha(b"when") if Capability.SHA256 in caps else None)
        assert listed.mtime == (mtime if Capability.MTIME in caps else None)
        [held] = remote.files(CHAT)  # what it holds, whatever it shows
        assert (held.sha256, held.mtime) == (sha(b"when"), mtime)


def test_signed_urls_expire_and_are_this_remotes_own(tmp_path: Path) -> None:
    now = [datetime(2024, 5, 1, tzinfo=UTC)]
    remote = MemoryRemote(clock=lambda: now[0])
    put = remote.put(CHAT, "l", write(tmp_path, b"link"), size=4)
    url = remote.sign_url(CHAT, put, expires_in=60)
    assert remote.open_url(url) == b"link"
    with pytest.raises(ItemError, match="signature"):
        MemoryRemote().open_url(url)
    with pytest.raises(ItemError, match="signature"):
        remote.open_url(url.replace("sig=", "sig=0"))
    now[0] += timedelta(seconds=61)
    with pytest.raises(ItemError, match="expired"):
        remote.open_url(url)


def test_refusals_name_the_missing_capability(tmp_path: Path) -> None:
    remote = MemoryRemote(Capability.SERVER_KEYS, name="bare")
    src = write(tmp_path, b"x")
    with pytest.raises(Unsupported, match=r"not supported by this remote \(bare has no TREE\)") as caught:
        remote.put(CHAT, "dir/x", src, size=1)
    assert caught.value.capability == "TREE"
    with pytest.raises(Unsupported, match="no LIST"):
        remote.list(CHAT)
    assert remote.files() == []
    put = remote.put(CHAT, "x", src, size=1)
    with pytest.raises(Unsupported, match="no DELETE"):
        remote.delete(CHAT, "x", put.version)
    with pytest.raises(Unsupported, match="no RENAME"):
        remote.move(CHAT, put, "y")
    with pytest.raises(Unsupported, match="no SIGN_URL"):
        remote.sign_url(CHAT, put)
    assert [f.version for f in remote.files(CHAT)] == [put.version]
    assert remote.files(CHAT)[0].path == "x"
