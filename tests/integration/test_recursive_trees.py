"""`recursive = true` end to end, in-process, on a remote with folders (`MemoryRemote` with TREE):
trees both ways, a directory renamed (a rename per file, never a deletion), a directory deleted
(the trash keeps the tree, emptied directories go), deep Unicode paths, ignore patterns with `/`
and `**`. Each test ends with a pass that plans nothing."""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from pathlib import Path

import pytest
import structlog.testing

from syncd.app import open_app
from syncd.config import Config, load_config
from syncd.remote.base import Capability
from syncd.remote.memory import BDD_LIKE, MemoryRemote
from syncd.state.queue import JobState
from syncd.sync.engine import FolderReport
from tests.support.syncd_cli import write_config

pytestmark = pytest.mark.timeout(60)

PLACE = "tree"
TREE = BDD_LIKE | Capability.TREE
CAPS = [TREE, TREE | Capability.RENAME, (TREE | Capability.OVERWRITE | Capability.MTIME) & ~Capability.SHA256]
CAP_IDS = ["tree", "tree+rename", "tree+overwrite+mtime-no-sha256"]


def config_for(tmp_path: Path, **folder: object) -> Config:
    settings = {"name": "f", "path": tmp_path / "f", "chat_id": PLACE}
    path = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", url="http://unused.invalid",
                        folders=[settings])
    config = load_config(path)
    # The config refuses `recursive` for a flat remote kind; the memory remote has folders.
    tree_folder = dataclasses.replace(config.folders[0], **{"recursive": True, **folder})  # type: ignore[arg-type]
    return dataclasses.replace(config, folders=(tree_folder,))


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def local_tree(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".syncd"]
        for name in filenames:
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def remote_tree(remote: MemoryRemote) -> dict[str, bytes]:
    return {f.path: remote.content(f.version) for f in remote.files(PLACE)}


def nfc(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {unicodedata.normalize("NFC", k): v for k, v in tree.items()}


def one_pass(config: Config, remote: MemoryRemote) -> FolderReport:
    with open_app(config, remotes={"r": remote}) as app:
        report = app.engine.pass_folder(config.folders[0])
        app.engine.drain([config.folders[0].name], 2)
        failed = [job for job in app.queue.jobs(config.folders[0].name) if job.state is JobState.FAILED]
        assert failed == []
        assert app.queue.jobs(config.folders[0].name) == []
        return report


def settled(config: Config, remote: MemoryRemote) -> None:
    """A pass after everything synced plans nothing (SPEC, "Converges")."""
    again = one_pass(config, remote)
    assert again.results == {} and again.blocked is None and again.warning is None


THREE_LEVELS = {
    "top.txt": b"top",
    "a/one.txt": b"one",
    "a/b/two.txt": b"two",
    "a/b/c/three.txt": b"three",
    "a/b/c/three-again.txt": b"three, again",
    "z/last.bin": bytes(range(256)),
}


@pytest.mark.parametrize("caps", CAPS, ids=CAP_IDS)
def test_a_three_level_tree_goes_up(tmp_path: Path, caps: Capability) -> None:
    config = config_for(tmp_path)
    write_tree(tmp_path / "f", THREE_LEVELS)
    remote = MemoryRemote(caps)

    first = one_pass(config, remote)
    assert {r.name: r.action for r in first.results.values()} == dict.fromkeys(THREE_LEVELS, "upload")
    assert remote_tree(remote) == THREE_LEVELS
    settled(config, remote)


@pytest.mark.parametrize("caps", CAPS, ids=CAP_IDS)
def test_a_three_level_tree_comes_down_into_new_directories(tmp_path: Path, caps: Capability) -> None:
    config = config_for(tmp_path)
    remote = MemoryRemote(caps)
    source = tmp_path / "source"
    write_tree(source, THREE_LEVELS)
    for rel in THREE_LEVELS:
        remote.put(PLACE, rel, source / rel, size=(source / rel).stat().st_size)

    first = one_pass(config, remote)
    assert {r.name: r.action for r in first.results.values()} == dict.fromkeys(THREE_LEVELS, "download")
    assert local_tree(tmp_path / "f") == THREE_LEVELS
    settled(config, remote)


@pytest.mark.parametrize("caps", CAPS, ids=CAP_IDS)
def test_a_directory_renamed_locally_is_a_rename_per_file_and_no_deletion(tmp_path: Path, caps: Capability) -> None:
    # max_delete = 0 and delete = false: a single deletion would be held back or not sent at all.
    config = config_for(tmp_path, max_delete=0, delete=False)
    write_tree(tmp_path / "f", THREE_LEVELS)
    remote = MemoryRemote(caps)
    one_pass(config, remote)
    puts = remote.calls["put"]

    (tmp_path / "f" / "a").rename(tmp_path / "f" / "renamed")
    report = one_pass(config, remote)

    moved = {rel: "renamed/" + rel.removeprefix("a/") for rel in THREE_LEVELS if rel.startswith("a/")}
    assert report.warning is None and report.blocked is None
    assert {r.name: (r.action, r.renamed_from) for r in report.results.values()} == {
        new: ("upload", old) for old, new in moved.items()
    }
    expected = {moved.get(rel, rel): data for rel, data in THREE_LEVELS.items()}
    assert remote_tree(remote) == expected and local_tree(tmp_path / "f") == expected
    if Capability.RENAME in caps:
        assert remote.calls["move"] == len(moved) and remote.calls["put"] == puts  # no byte sent again
    else:
        assert remote.calls["put"] == puts + len(moved)
    settled(config, remote)


@pytest.mark.parametrize("caps", CAPS, ids=CAP_IDS)
def test_a_directory_deleted_remotely_goes_to_the_trash_as_a_tree(tmp_path: Path, caps: Capability) -> None:
    config = config_for(tmp_path, delete=True, max_delete=100)
    folder = tmp_path / "f"
    write_tree(folder, THREE_LEVELS)
    (folder / "a" / "b" / "kept-dir").mkdir()  # a directory syncd did not empty stays
    remote = MemoryRemote(caps)
    one_pass(config, remote)

    for file in remote.files(PLACE):
        if file.path.startswith("a/b/"):
            remote.delete(PLACE, file.path, file.version)
    report = one_pass(config, remote)

    gone = [rel for rel in THREE_LEVELS if rel.startswith("a/b/")]
    assert {r.name: r.action for r in report.results.values()} == dict.fromkeys(gone, "delete_local")
    assert local_tree(folder) == {rel: d for rel, d in THREE_LEVELS.items() if rel not in gone}
    assert not (folder / "a" / "b" / "c").exists()  # emptied by syncd: removed
    assert (folder / "a" / "b" / "kept-dir").is_dir()  # never syncd's to remove
    trashed = {p.relative_to(folder / ".syncd" / "trash").as_posix(): p.read_bytes()
               for p in (folder / ".syncd" / "trash").rglob("*") if p.is_file()}
    for rel in gone:  # the trash keeps the tree: each file under its own relative path
        assert [data for path, data in trashed.items() if path.endswith(rel)] == [THREE_LEVELS[rel]]
    settled(config, remote)


def test_a_directory_deleted_locally_is_deleted_remotely_counting_each_file(tmp_path: Path) -> None:
    config = config_for(tmp_path, delete=True, max_delete=50)
    folder = tmp_path / "f"
    write_tree(folder, THREE_LEVELS)
    remote = MemoryRemote(TREE)
    one_pass(config, remote)

    for rel in sorted(THREE_LEVELS, reverse=True):
        if rel.startswith("a/"):
            (folder / rel).unlink()
    for directory in ("a/b/c", "a/b", "a"):
        (folder / directory).rmdir()
    held = one_pass(config, remote)
    gone = [rel for rel in THREE_LEVELS if rel.startswith("a/")]
    # 4 of 6 tracked files is more than max_delete 50%: counted across the tree, nothing deleted.
    assert held.warning is not None and f"{len(gone)} of {len(THREE_LEVELS)}" in held.warning
    assert remote_tree(remote) == THREE_LEVELS

    config = dataclasses.replace(config, folders=(dataclasses.replace(config.folders[0], max_delete=100),))
    report = one_pass(config, remote)
    assert {r.name: r.action for r in report.results.values()} == dict.fromkeys(gone, "delete_remote")
    assert remote_tree(remote) == {rel: d for rel, d in THREE_LEVELS.items() if rel not in gone}
    settled(config, remote)


DEEP_UNICODE = {
    "Café/Résumé/日本語/ファイル.txt": b"deep",
    "Café/Résumé/naïve.md": "naïve".encode(),
    "Ωmega/😀/ünïcödé.bin": b"\x00\x01",
}


def test_deep_unicode_paths_spelled_nfd_on_disk_keep_their_spelling(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    folder = tmp_path / "f"
    nfd = {unicodedata.normalize("NFD", rel): data for rel, data in DEEP_UNICODE.items()}
    write_tree(folder, nfd)
    remote = MemoryRemote(TREE)

    first = one_pass(config, remote)
    assert {unicodedata.normalize("NFC", r.name) for r in first.results.values()} == set(DEEP_UNICODE)
    assert nfc(remote_tree(remote)) == DEEP_UNICODE
    assert local_tree(folder) == nfd  # never renamed to normalise
    settled(config, remote)

    # The same paths edited on the remote come down into the NFD-spelled files.
    source = tmp_path / "new"
    source.write_bytes(b"edited remotely")
    listed = {unicodedata.normalize("NFC", f.path): f for f in remote.files(PLACE)}
    target = "Café/Résumé/日本語/ファイル.txt"
    remote.put(PLACE, listed[target].path, source, size=source.stat().st_size)
    remote.delete(PLACE, listed[target].path, listed[target].version)
    one_pass(config, remote)
    assert (folder / unicodedata.normalize("NFD", target)).read_bytes() == b"edited remotely"
    assert local_tree(folder).keys() == nfd.keys()
    settled(config, remote)


def test_ignore_patterns_with_slashes_and_double_stars(tmp_path: Path) -> None:
    ignore = ("build/", "**/*.tmp", "docs/private/**", "/top-only.txt")
    config = config_for(tmp_path, ignore=ignore)
    files = {
        "src/main.py": b"code",
        "src/build/out.o": b"ignored: build/ anywhere",
        "build/x": b"ignored",
        "a/b/c/scratch.tmp": b"ignored: **/*.tmp",
        "docs/private/secret/plan.md": b"ignored: docs/private/**",
        "docs/public/readme.md": b"kept",
        "top-only.txt": b"ignored: anchored",
        "sub/top-only.txt": b"kept: the pattern is anchored to the top",
    }
    write_tree(tmp_path / "f", files)
    remote = MemoryRemote(TREE)

    one_pass(config, remote)
    assert remote_tree(remote) == {
        rel: data for rel, data in files.items() if not data.startswith(b"ignored")
    }
    settled(config, remote)


def test_ignore_patterns_hide_remote_paths_in_ignored_directories_too(tmp_path: Path) -> None:
    config = config_for(tmp_path, ignore=("build/", "**/*.tmp", "docs/private/**"))
    remote = MemoryRemote(TREE)
    source = tmp_path / "source"
    source.write_bytes(b"bytes")
    for rel in ("build/out.o", "src/build/deep/x.o", "a/b/c/t.tmp", "docs/private/p.md", "docs/public/r.md"):
        remote.put(PLACE, rel, source, size=5)

    one_pass(config, remote)
    assert local_tree(tmp_path / "f") == {"docs/public/r.md": b"bytes"}
    assert len(remote.files(PLACE)) == 5  # the ignored ones are neither fetched nor deleted
    settled(config, remote)


def test_a_remote_modification_time_is_given_to_the_downloaded_file(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    remote = MemoryRemote(TREE | Capability.MTIME)
    source = tmp_path / "source.txt"
    source.write_bytes(b"old news")
    os.utime(source, ns=(1_600_000_000_123_456_000, 1_600_000_000_123_456_000))
    remote.put(PLACE, "deep/er/news.txt", source, size=8)
    [listed] = remote.list(PLACE)
    assert listed.mtime is not None

    one_pass(config, remote)
    written = tmp_path / "f" / "deep" / "er" / "news.txt"
    assert written.read_bytes() == b"old news"
    assert written.stat().st_mtime_ns == 1_600_000_000_123_456_000  # the file's own time, not now
    settled(config, remote)


def test_a_folder_pointed_at_another_place_syncs_as_a_first_sync(tmp_path: Path) -> None:
    config = config_for(tmp_path, delete=True, max_delete=100)
    folder = tmp_path / "f"
    write_tree(folder, THREE_LEVELS)
    remote = MemoryRemote(TREE)
    one_pass(config, remote)
    source = tmp_path / "theirs.txt"
    source.write_bytes(b"already there")
    remote.put("new place", "theirs.txt", source, size=13)

    moved = dataclasses.replace(config, folders=(dataclasses.replace(config.folders[0], place="new place"),))
    with open_app(moved, remotes={"r": remote}) as app:  # a dry run plans the first sync, changes nothing
        preview = app.engine.pass_folder(moved.folders[0], dry_run=True)
    assert {r.name: r.action for r in preview.results.values()} == (
        dict.fromkeys(THREE_LEVELS, "upload") | {"theirs.txt": "download"}
    )
    report = one_pass(moved, remote)
    assert {r.name: r.action for r in report.results.values()} == (
        dict.fromkeys(THREE_LEVELS, "upload") | {"theirs.txt": "download"}
    )
    # Nothing deleted on either side: the old place keeps its files, the folder keeps its own.
    assert remote_tree(remote) == THREE_LEVELS
    assert {f.path: remote.content(f.version) for f in remote.files("new place")} == (
        THREE_LEVELS | {"theirs.txt": b"already there"}
    )
    assert local_tree(folder) == THREE_LEVELS | {"theirs.txt": b"already there"}
    settled(moved, remote)


def test_what_is_not_synced_is_logged_once(tmp_path: Path) -> None:
    config = config_for(tmp_path, recursive=False)
    folder = tmp_path / "f"
    write_tree(folder, {"plain.txt": b"synced", "sub/inner.txt": b"a subfolder: not synced at the top level"})
    (folder / "link").symlink_to(folder / "plain.txt")
    os.mkfifo(folder / "pipe")
    remote = MemoryRemote(TREE)
    # One process (the daemon) passing twice: each entry is reported once, with its reason.
    with structlog.testing.capture_logs() as logs, open_app(config, remotes={"r": remote}) as app:
        for _ in range(2):
            app.engine.pass_folder(config.folders[0])
            app.engine.drain([config.folders[0].name], 2)
    skipped = sorted((e["name"], e["reason"]) for e in logs if e["event"] == "skipped")
    assert [name for name, _ in skipped] == ["link", "pipe", "sub"]
    assert all(reason for _, reason in skipped)
    assert remote_tree(remote) == {"plain.txt": b"synced"}
