"""`syncd.sync.status.status_doc` over a real state database: every queue state and every notice
as a `files_out_of_sync` entry, in the SPEC's words; and the notices' own bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.config import Config, load_config
from syncd.core.model import Action, ActionKind, BaseEntry, LocalFile
from syncd.core.paths import RelPath
from syncd.errors import ConfigError
from syncd.remote.base import RemoteFile
from syncd.state import jobcodec
from syncd.state.db import State
from syncd.state.notices import Notice, NoticeState, read_notices, replace_notices
from syncd.state.queue import Queue
from syncd.sync.outcome import to_row
from syncd.sync.status import status_doc

NOW = 1_800_000_000.0


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = f"""
[daemon]
state_dir = "{tmp_path / 'state'}"

[remotes.r]
kind = "bdd"
url = "http://127.0.0.1:9"
user_id = "u"

[[folders]]
name = "docs"
path = "{tmp_path / 'docs'}"
remote = "r"
chat_id = "c"

[[folders]]
name = "other"
path = "{tmp_path / 'other'}"
remote = "r"
chat_id = "o"
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    (tmp_path / "docs").mkdir()
    return load_config(path)


def local(name: str, spelling: str | None = None) -> LocalFile:
    return LocalFile(RelPath(name), 3, 1, "0" * 64, spelling)


def remote(name: str) -> RemoteFile:
    return RemoteFile(name, "7", 3, "1" * 64, written_at=datetime(2026, 1, 1, tzinfo=UTC))


def put(queue: Queue, action: Action) -> None:
    queue.put("docs", action.name, action.kind.value, jobcodec.dumps(action))


def entries(config: Config, state: State) -> dict[str, tuple[str, str, str | None]]:
    [docs] = status_doc(config, state, folders=["docs"], files=True)["folders"]
    return {e["name"]: (e["state"], e["reason"], e["next_try"]) for e in docs["files_out_of_sync"]}


def test_every_queue_state_shows_in_the_specs_words(config: Config, state: State) -> None:
    queue = Queue(state, clock=lambda: NOW)
    put(queue, Action(ActionKind.DOWNLOAD, "new.txt", remote=remote("new.txt")))
    [retried] = queue.claim("w1")
    queue.fail(retried, "connection reset")  # pending again, after a backoff
    # Spelled NFD on disk: listed as spelled there.
    put(queue, Action(ActionKind.UPLOAD, "caf\u00e9.txt", local("caf\u00e9.txt", "cafe\u0301.txt")))
    [running] = queue.claim("w2")
    put(queue, Action(ActionKind.CONFLICT, "both.txt", local("both.txt"), remote("both.txt"), winner="both"))
    put(queue, Action(ActionKind.COMPARE, "cmp.txt", local("cmp.txt"), remote("cmp.txt"), winner="remote"))
    queue.put("docs", "garbled", "upload", "{not json")
    queue.put("other", "elsewhere.txt", "upload", "{}")

    found = entries(config, state)
    assert found["cafe\u0301.txt"] == ("running", "upload (new locally)", None)
    state_, reason, due = found["new.txt"]
    assert (state_, reason) == ("pending", "download (new on the remote); last try failed: connection reset")
    assert due is not None and datetime.fromisoformat(due) > datetime.fromtimestamp(NOW, UTC)
    assert due.endswith("+00:00")
    assert found["both.txt"][0] == "conflicted"
    assert found["both.txt"][1] == "changed on both sides: both kept (the local version as a conflicted copy)"
    assert found["both.txt"][2] == datetime.fromtimestamp(NOW, UTC).isoformat(timespec="seconds")
    assert found["cmp.txt"][:2] == ("conflicted", "changed on both sides: contents to compare; if they differ, "
                                                  "the remote version wins (the local one goes to the trash)")
    assert found["garbled"][0] == "pending" and found["garbled"][1] == "upload"  # unreadable: its name and kind
    assert "elsewhere.txt" not in found
    assert (retried.name, running.name) == ("new.txt", "caf\u00e9.txt")


def test_failed_work_waits_for_retry_and_a_failed_conflict_stays_conflicted(config: Config, state: State) -> None:
    queue = Queue(state, clock=lambda: NOW)
    put(queue, Action(ActionKind.UPLOAD, "big.bin", local("big.bin")))
    put(queue, Action(ActionKind.CONFLICT, "both.txt", local("both.txt"), remote("both.txt"), winner="local"))
    for job in queue.claim("w", limit=2):
        queue.fail(job, f"{job.name}: refused", permanent=True)
    found = entries(config, state)
    assert found["big.bin"] == ("failed", "big.bin: refused", None)
    assert found["both.txt"] == ("conflicted", "changed on both sides: the local version wins; it failed: "
                                               "both.txt: refused", None)
    [docs] = status_doc(config, state, folders=["docs"])["folders"]
    assert docs["failed"] == 2
    assert docs["last_error"] in ("big.bin: refused", "both.txt: refused")  # the newest failure's
    assert "files_out_of_sync" not in docs


def test_notices_are_listed_with_no_next_try_and_sorted_with_the_queue(config: Config, state: State) -> None:
    queue = Queue(state, clock=lambda: NOW)
    put(queue, Action(ActionKind.UPLOAD, "m.txt", local("m.txt")))
    replace_notices(state, "docs", [
        Notice("z-link", NoticeState.SKIPPED, "symbolic link: links are never followed"),
        Notice("a.txt", NoticeState.HELD_BACK, "pass would delete ..."),
        Notice("k.txt", NoticeState.UNSUPPORTED, "deleted locally; this remote cannot delete files"),
    ], now="2026-01-01T00:00:00+00:00")
    [docs] = status_doc(config, state, folders=["docs"], files=True)["folders"]
    assert [(e["name"], e["state"], e["next_try"] is None) for e in docs["files_out_of_sync"]] == [
        ("a.txt", "deletion held back", True), ("k.txt", "not supported by this remote", True),
        ("m.txt", "pending", False), ("z-link", "skipped", True),
    ]


def test_the_document_without_a_state_and_with_unknown_folders(config: Config) -> None:
    doc = status_doc(config, None, files=True, daemon_pid=4242)
    assert doc["daemon"] == {"running": True, "pid": 4242}
    assert [(f["name"], f["place"], f["files"], f["files_out_of_sync"]) for f in doc["folders"]] == [
        ("docs", "chat c", 0, []), ("other", "chat o", 0, [])]
    with pytest.raises(ConfigError, match=r"no folder named 'nope' \(configured: docs, other\)"):
        status_doc(config, None, folders=["docs", "nope"])


def test_files_counts_tracked_files_on_disk(config: Config, state: State) -> None:
    folder = config.folder("docs").path
    for name in ("a.txt", "b.txt", "gone.txt"):
        (folder / name).write_bytes(b"abc")
    (folder / "caf\u0065\u0301.txt").write_bytes(b"abc")  # NFD on disk
    rows = [BaseEntry.synced(RelPath(n), local(n), remote(n)) for n in ("a.txt", "b.txt", "gone.txt")]
    rows.append(BaseEntry.synced(RelPath("caf\u00e9.txt"), local("caf\u00e9.txt", "cafe\u0301.txt"),
                                 remote("caf\u00e9.txt")))
    rows.append(BaseEntry.synced(RelPath("remembered.txt"), None, remote("remembered.txt")))  # deleted, noted
    state.put_journal_many("docs", [to_row(row) for row in rows])
    (folder / "gone.txt").unlink()  # deleted, no pass yet
    [docs] = status_doc(config, state, folders=["docs"])["folders"]
    assert docs["files"] == 3


# -- notices -----------------------------------------------------------------------------------


def notice(name: str, state: NoticeState = NoticeState.SKIPPED, reason: str = "why") -> Notice:
    return Notice(name, state, reason)


def names(state: State) -> dict[str, tuple[str, str | None]]:
    return {n.name: (n.state.value, n.since) for n in read_notices(state, "docs")}


def test_a_full_pass_replaces_every_row_and_a_names_pass_just_its_names(state: State) -> None:
    replace_notices(state, "docs", [notice("a"), notice("b"), notice("sub/c"), notice("sub/d")], now="t1")
    replace_notices(state, "other", [notice("a")], now="t1")
    # A pass over `b` and the directory `sub`: what it found replaces what was said of them.
    replace_notices(state, "docs", [notice("sub/d")], keys={"b", "sub"}, now="t2")
    assert names(state) == {"a": ("skipped", "t1"), "sub/d": ("skipped", "t1")}  # still so: since kept
    replace_notices(state, "docs", [notice("a", NoticeState.HELD_BACK), notice("e")], now="t3")
    assert names(state) == {"a": ("deletion held back", "t3"), "e": ("skipped", "t3")}
    assert [n.name for n in read_notices(state, "other")] == ["a"]


def test_a_names_pass_matches_names_in_any_unicode_spelling(state: State) -> None:
    replace_notices(state, "docs", [notice("cafe\u0301"), notice("x")], now="t1")
    replace_notices(state, "docs", [], keys={"caf\u00e9"}, now="t2")
    assert list(names(state)) == ["x"]
