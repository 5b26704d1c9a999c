"""What `MemoryRemote` offers tests beyond the contract suite: fault hooks, resumable uploads
cut short and resumed, statuses, its clock, and its refusals."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.errors import ItemError, TransientError, Unsupported
from syncd.remote.base import Capability, FileStatus, Remote
from syncd.remote.memory import ALL, BDD_LIKE, MemoryRemote

CHAT = "c"
KiB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(tmp_path: Path, data: bytes, name: str = "src") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_it_is_a_remote_like_bdd_by_default() -> None:
    remote: Remote = MemoryRemote()
    assert remote.capabilities == BDD_LIKE
    with pytest.raises(ValueError, match="SERVER_KEYS"):
        MemoryRemote(ALL & ~Capability.SERVER_KEYS)


def test_a_fault_before_changes_nothing_and_a_fault_after_leaves_the_upload(tmp_path: Path) -> None:
    remote = MemoryRemote()
    src = write(tmp_path, b"data")
    remote.fail_next("upload", TransientError("connection reset"))
    with pytest.raises(TransientError, match="reset"):
        remote.upload(src, chat_id=CHAT, filename="a.txt", size=4, sha256=sha(b"data"))
    assert remote.list_chat(CHAT) == []

    remote.fail_next("upload", TransientError("answer lost"), after=True)
    with pytest.raises(TransientError, match="lost"):
        remote.upload(src, chat_id=CHAT, filename="a.txt", size=4, sha256=sha(b"data"))
    [made] = remote.list_chat(CHAT)  # the ambiguous failure: find_copy is how a retry finds it
    assert remote.find_copy(CHAT, "a.txt", 4, sha(b"data")) == made
    assert remote.upload(src, chat_id=CHAT, filename="a.txt", size=4) > made.id
    assert remote.calls["upload"] == 3


def test_faults_are_taken_in_order_and_counted(tmp_path: Path) -> None:
    remote = MemoryRemote()
    remote.fail_next("list_chat", TransientError("first"), times=2)
    remote.fail_next("list_chat", ItemError("then this"))
    for expected in (TransientError, TransientError, ItemError):
        with pytest.raises(expected):
            remote.list_chat(CHAT)
    assert remote.list_chat(CHAT) == []
    assert remote.calls["list_chat"] == 4
    with pytest.raises(ValueError, match="unknown method"):
        remote.fail_next("upload_file", TransientError("x"))


def test_a_resumable_upload_cut_short_resumes_with_the_missing_parts(tmp_path: Path) -> None:
    remote = MemoryRemote(multipart_threshold=10 * KiB, part_size=4 * KiB)
    data = bytes(range(256)) * 50  # 12800 bytes: four parts, the last one short
    src = write(tmp_path, data)
    tokens: list[str] = []
    remote.fail_next("part", TransientError("network down"))  # the first part never gets through
    with pytest.raises(TransientError):
        remote.upload(src, chat_id=CHAT, filename="big", size=len(data), sha256=sha(data), on_resume=tokens.append)
    [partial] = remote.list_chat(CHAT)
    assert partial.status is FileStatus.UPLOADING and partial.hashcode == ""
    assert remote.parts_sent == []
    with pytest.raises(ItemError):
        remote.download(partial.id, io.BytesIO())

    def cut_in_part_3(sent: int) -> None:
        if sent > 8 * KiB:
            raise TransientError("reset")

    with pytest.raises(TransientError):
        remote.upload(src, chat_id=CHAT, filename="big", size=len(data), sha256=sha(data), resume=tokens[0],
                      progress=cut_in_part_3)
    assert remote.parts_sent == [(partial.id, 1), (partial.id, 2)]
    file_id = remote.upload(src, chat_id=CHAT, filename="big", size=len(data), sha256=sha(data), resume=tokens[0])
    assert file_id == partial.id
    assert remote.parts_sent == [(partial.id, n) for n in (1, 2, 3, 4)]
    [done] = remote.list_chat(CHAT)
    assert (done.id, done.status, done.hashcode) == (file_id, FileStatus.OK, sha(data))
    assert remote.content(file_id) == data


def test_a_token_for_other_content_abandons_the_old_upload(tmp_path: Path) -> None:
    remote = MemoryRemote(multipart_threshold=1 * KiB, part_size=1 * KiB)
    src = write(tmp_path, b"x" * 3000)
    tokens: list[str] = []
    remote.fail_next("part", TransientError("cut"))
    with pytest.raises(TransientError):
        remote.upload(src, chat_id=CHAT, filename="f", size=3000, sha256=sha(b"x" * 3000), on_resume=tokens.append)
    [stale] = remote.list_chat(CHAT)
    changed = write(tmp_path, b"y" * 3000)
    file_id = remote.upload(changed, chat_id=CHAT, filename="f", size=3000, sha256=sha(b"y" * 3000), resume=tokens[0])
    assert [f.id for f in remote.list_chat(CHAT)] == [file_id]
    assert file_id > stale.id


def test_without_resumable_big_uploads_go_whole_and_tokens_are_ignored(tmp_path: Path) -> None:
    remote = MemoryRemote(BDD_LIKE & ~Capability.RESUMABLE, multipart_threshold=1 * KiB, part_size=1 * KiB)
    src = write(tmp_path, b"z" * 5000)
    tokens: list[str] = []
    file_id = remote.upload(src, chat_id=CHAT, filename="f", size=5000, on_resume=tokens.append, resume="{}")
    assert tokens == [] and remote.parts_sent == []
    assert remote.content(file_id) == b"z" * 5000


def test_a_status_set_by_a_test_is_listed_and_only_ok_files_download(tmp_path: Path) -> None:
    remote = MemoryRemote()
    file_id = remote.upload(write(tmp_path, b"m"), chat_id=CHAT, filename="m", size=1)
    remote.set_status(file_id, FileStatus.MERGING)
    assert [f.status for f in remote.list_chat(CHAT)] == [FileStatus.MERGING]
    assert remote.find_copy(CHAT, "m", 1, sha(b"m")) is None
    with pytest.raises(ItemError, match="merging"):
        remote.download(file_id, io.BytesIO())


def test_upload_times_never_go_backwards(tmp_path: Path) -> None:
    times = iter([datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)])
    remote = MemoryRemote(clock=lambda: next(times))
    src = write(tmp_path, b"t")
    remote.upload(src, chat_id=CHAT, filename="t", size=1)
    remote.upload(src, chat_id=CHAT, filename="t", size=1)
    first, second = remote.list_chat(CHAT)
    assert first.upload_at == second.upload_at and first.id < second.id


def test_signed_urls_expire_and_are_this_remotes_own(tmp_path: Path) -> None:
    now = [datetime(2024, 5, 1, tzinfo=UTC)]
    remote = MemoryRemote(clock=lambda: now[0])
    file_id = remote.upload(write(tmp_path, b"link"), chat_id=CHAT, filename="l", size=4)
    url = remote.download_url(file_id, expires_in=60)
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
        remote.upload(src, chat_id=CHAT, filename="dir/x", size=1)
    assert caught.value.capability == "TREE"
    with pytest.raises(Unsupported, match="no LIST"):
        remote.list_chat(CHAT)
    assert remote.files() == []
    file_id = remote.upload(src, chat_id=CHAT, filename="x", size=1)
    with pytest.raises(Unsupported, match="no DELETE"):
        remote.delete(file_id)
    assert [f.id for f in remote.files(CHAT)] == [file_id]
