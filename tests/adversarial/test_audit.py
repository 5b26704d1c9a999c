"""The audit itself: each kind of betrayal is counted, and a clean state counts nothing."""

from __future__ import annotations

from pathlib import Path

from tests.adversarial.audit import Counts, Ledger, RemoteFile, audit


def scene(tmp_path: Path) -> tuple[Ledger, Path, list[RemoteFile]]:
    folder = tmp_path / "home" / "f"
    (folder / ".syncd" / "tmp").mkdir(parents=True)
    ledger = Ledger()
    ledger.write(folder, "a.txt", b"a v1")
    ledger.write(folder, "b.txt", b"b local")
    ledger.conflict("b.txt", b"b local")
    (folder / "b.txt").rename(folder / "b (conflicted copy 2026-11-21 120000).txt")
    (folder / "b.txt").write_bytes(b"b remote")
    ledger.saw("b.txt", b"b remote")
    remote = [
        RemoteFile("a.txt", "ok", b"a v1"),
        RemoteFile("b.txt", "ok", b"b remote"),
        RemoteFile("b (conflicted copy 2026-11-21 120000).txt", "ok", b"b local"),
    ]
    return ledger, folder, remote


def counts(ledger: Ledger, folder: Path, remote: list[RemoteFile]) -> Counts:
    return audit(ledger, folder=folder, remote=remote, sandbox=folder.parent)


def test_a_clean_state_counts_nothing(tmp_path: Path) -> None:
    ledger, folder, remote = scene(tmp_path)
    assert counts(ledger, folder, remote) == Counts()


def test_each_betrayal_is_counted(tmp_path: Path) -> None:
    ledger, folder, remote = scene(tmp_path)
    (folder / "a.txt").unlink()  # lost locally
    remote.append(RemoteFile("b.txt", "ok", b"b remote"))  # a duplicate
    remote.append(RemoteFile("c.txt", "uploading", None))  # stuck, partial
    (folder / "b (conflicted copy 2026-11-21 120000).txt").write_bytes(b"b lo")  # truncated: partial
    (folder / ".syncd" / "tmp" / "x.part").write_bytes(b"")  # temp left: partial
    (folder.parent / "escaped.txt").write_bytes(b"evil")  # outside
    found = counts(ledger, folder, remote)
    assert found.row() == {"lost": 1, "duplicates": 1, "partial": 3, "outside": 1}, found.details


def test_a_conflicts_local_version_surviving_nowhere_is_lost(tmp_path: Path) -> None:
    ledger, folder, remote = scene(tmp_path)
    (folder / "b (conflicted copy 2026-11-21 120000).txt").unlink()
    remote = [r for r in remote if r.name != "b (conflicted copy 2026-11-21 120000).txt"]
    found = counts(ledger, folder, remote)
    assert found.row() == {"lost": 1, "duplicates": 0, "partial": 0, "outside": 0}, found.details


def test_a_hostile_name_written_locally_is_outside(tmp_path: Path) -> None:
    ledger, folder, remote = scene(tmp_path)
    ledger.never_local.add("evil\x1bname")
    (folder / "evil\x1bname").write_bytes(b"x")
    assert counts(ledger, folder, remote).outside == 1
