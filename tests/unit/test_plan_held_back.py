"""Deletions `max_delete` holds back: the planner names each one, and says what lets them
through; `policy_of` takes a one-pass override (`syncd reconcile --max-delete`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from syncd.config import FolderConfig
from syncd.core.model import ActionKind, BaseEntry, FolderPolicy, LocalFile
from syncd.core.paths import RelPath
from syncd.core.plan import plan
from syncd.remote.base import RemoteFile
from syncd.sync.passes import policy_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def local(name: str) -> LocalFile:
    return LocalFile(RelPath(name), len(name), 1, sha(name))


def remote(n: int, name: str) -> RemoteFile:
    return RemoteFile(name, str(n), len(name), sha(name), written_at=T0, seq=n)


def folder_of(names: list[str]) -> tuple[dict[str, LocalFile], list[RemoteFile], dict[str, BaseEntry]]:
    files = {name: local(name) for name in names}
    listed = [remote(n, name) for n, name in enumerate(names, 1)]
    base = {name: BaseEntry.synced(RelPath(name), files[name], listed[n]) for n, name in enumerate(names)}
    return files, listed, base


NAMES = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt"]


def test_held_back_deletions_are_named_with_the_percentage_that_lets_them_through() -> None:
    files, listed, base = folder_of(NAMES)
    gone_here = {n: f for n, f in files.items() if n not in ("a.txt", "b.txt")}  # 2 deleted locally
    gone_there = [f for f in listed if f.path != "c.txt"]  # 1 deleted remotely (with a.txt, b.txt kept)
    result = plan(gone_here, gone_there, base, FolderPolicy(delete=True, max_delete=40))
    assert result.actions == ()
    assert result.warning == "pass would delete 3 of 6 tracked files (50% > max_delete 40%); deleted nothing"
    assert [(a.kind, a.name) for a in result.held_back] == [
        (ActionKind.DELETE_REMOTE, "a.txt"), (ActionKind.DELETE_REMOTE, "b.txt"), (ActionKind.DELETE_LOCAL, "c.txt"),
    ]
    assert result.skipped_deletions == 3 and result.max_delete_needed == 50

    through = plan(gone_here, gone_there, base, FolderPolicy(delete=True, max_delete=50))
    assert through.warning is None and through.held_back == () and through.max_delete_needed is None
    assert [(a.kind, a.name) for a in through.actions] == [(a.kind, a.name) for a in result.held_back]


def test_the_percentage_needed_is_rounded_up() -> None:
    files, listed, base = folder_of([*NAMES, "g.txt"])
    kept = {n: f for n, f in files.items() if n not in ("a.txt", "b.txt")}  # 2 of 7: 28.6%
    result = plan(kept, listed, base, FolderPolicy(delete=True, max_delete=28))
    assert "(28.6% > max_delete 28%)" in (result.warning or "")
    assert result.max_delete_needed == 29
    assert plan(kept, listed, base, FolderPolicy(delete=True, max_delete=29)).warning is None


def test_other_actions_go_ahead_while_deletions_are_held_back() -> None:
    files, listed, base = folder_of(NAMES)
    kept = {n: f for n, f in files.items() if n not in ("a.txt", "b.txt", "c.txt", "d.txt")}
    kept["new.txt"] = local("new.txt")
    result = plan(kept, listed, base, FolderPolicy(delete=True, max_delete=50))
    assert [(a.kind, a.name) for a in result.actions] == [(ActionKind.UPLOAD, "new.txt")]
    assert [a.name for a in result.held_back] == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert [a.spelled for a in result.held_back] == ["a.txt", "b.txt", "c.txt", "d.txt"]


def test_policy_of_takes_a_one_pass_max_delete() -> None:
    folder = FolderConfig(name="f", path=Path("/f"), remote="r", place="c", delete=True, max_delete=10)
    assert policy_of(folder).max_delete == 10
    assert policy_of(folder, 100).max_delete == 100
    assert policy_of(folder, 0).max_delete == 0  # 0 is an override too, not "none"
