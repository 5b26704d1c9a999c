"""The scanner on a folder's whole tree (`recursive`), on real files; the directory reads go
through a reader that can make entries vanish or refuse at chosen moments, as a live folder
does between two calls."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.core.model import BaseEntry, LocalFile
from syncd.core.paths import RelPath
from syncd.local.scan import LocalListing, scan_folder, widen
from syncd.local.tree import OS_READER, Entry, EntryKind
from tests.support.privileges import modes_bite

NFC_DIR, NFD_DIR = "caf\u00e9", "cafe\u0301"


class Reader:
    """The real disk, with hooks (keyed by spelled relative path, "" for the folder), each run
    once: `after_list` once that directory has been listed, `before_lstat` before that entry is
    stat'ed; `refuse` is raised instead of listing that directory. Records what it listed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listed: list[str] = []
        self.after_list: dict[str, Callable[[], None]] = {}
        self.before_lstat: dict[str, Callable[[], None]] = {}
        self.refuse: dict[str, OSError] = {}

    def _rel(self, path: Path) -> str:
        return "" if path == self.root else path.relative_to(self.root).as_posix()

    def list_dir(self, path: Path) -> list[Entry]:
        rel = self._rel(path)
        if rel in self.refuse:
            raise self.refuse[rel]
        entries = OS_READER.list_dir(path)
        self.listed.append(rel)
        if rel in self.after_list:
            self.after_list.pop(rel)()
        return entries

    def lstat(self, path: Path) -> os.stat_result:
        rel = self._rel(path)
        if rel in self.before_lstat:
            self.before_lstat.pop(rel)()
        return OS_READER.lstat(path)


def tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "f"
    (folder / ".syncd" / "tmp").mkdir(parents=True)
    (folder / ".syncd" / "trash" / "2026-01-01T000000.000000").mkdir(parents=True)
    (folder / ".syncd" / "trash" / "2026-01-01T000000.000000" / "old.txt").write_bytes(b"trashed")
    return folder


THREE_LEVELS = {
    "top.txt": b"top",
    "a/one.txt": b"one",
    "a/b/two.txt": b"two",
    "a/b/c/three.txt": b"three",
    "x/y/z/deep.bin": b"\0" * 10,
}


def test_a_three_level_tree_is_listed_by_relative_path(root: Path) -> None:
    tree(root, THREE_LEVELS)
    (root / "a" / "empty").mkdir()
    listing = scan_folder(root, (), {}, recursive=True)
    assert sorted(listing.files) == sorted(THREE_LEVELS)
    for key, data in THREE_LEVELS.items():
        found = listing.files[key]
        assert isinstance(found.name, RelPath) and found.name == key
        assert (found.size, found.sha256, found.spelling) == (len(data), sha(data), None)
    assert not (listing.skipped or listing.errors or listing.shadowed)  # nothing of .syncd/, nothing for empty dirs


def test_without_recursive_subdirectories_are_skipped_as_directories(root: Path) -> None:
    tree(root, THREE_LEVELS)
    listing = scan_folder(root, (), {})
    assert list(listing.files) == ["top.txt"]
    assert listing.skipped == {"a": "directory", "x": "directory"}


def test_unchanged_files_keep_the_journals_hash_at_any_depth(root: Path) -> None:
    tree(root, THREE_LEVELS)
    st = (root / "a/b/two.txt").stat()
    key = "a/b/two.txt"
    known = {key: BaseEntry.synced(key, LocalFile(key, 3, st.st_mtime_ns, "f" * 64), None)}
    listing = scan_folder(root, (), known, recursive=True)
    assert listing.files["a/b/two.txt"].sha256 == "f" * 64  # not read again
    assert listing.files["a/one.txt"].sha256 == sha(b"one")


def test_nfd_directory_names_are_keyed_nfc_and_keep_their_spelling(root: Path) -> None:
    tree(root, {f"{NFD_DIR}/menu.txt": b"m", f"{NFD_DIR}/sub/cafe\u0301.txt": b"c"})
    listing = scan_folder(root, (), {}, recursive=True)
    assert sorted(listing.files) == [f"{NFC_DIR}/menu.txt", f"{NFC_DIR}/sub/caf\u00e9.txt"]
    menu = listing.files[f"{NFC_DIR}/menu.txt"]
    assert menu.spelling == f"{NFD_DIR}/menu.txt" and menu.on_disk == f"{NFD_DIR}/menu.txt"
    assert (root / menu.on_disk).read_bytes() == b"m"
    assert listing.files[f"{NFC_DIR}/sub/caf\u00e9.txt"].spelling == f"{NFD_DIR}/sub/cafe\u0301.txt"


def test_two_spellings_of_one_directory_both_stay_and_the_second_is_shadowed_whole(root: Path) -> None:
    tree(root, {f"{NFD_DIR}/a.txt": b"nfd", f"{NFC_DIR}/a.txt": b"nfc", f"{NFC_DIR}/b.txt": b"b"})
    listing = scan_folder(root, (), {}, recursive=True)
    assert sorted(listing.files) == [f"{NFC_DIR}/a.txt", f"{NFC_DIR}/b.txt"]
    assert listing.files[f"{NFC_DIR}/a.txt"].spelling is None  # no journal: the NFC spelling syncs
    assert list(listing.shadowed) == [NFD_DIR] and repr(NFC_DIR) in listing.shadowed[NFD_DIR]
    # Once the journal knows a file under the NFD directory, that one keeps syncing.
    key = f"{NFC_DIR}/a.txt"
    known = {key: BaseEntry.synced(key, LocalFile(key, 3, 1, "0" * 64, spelling=f"{NFD_DIR}/a.txt"), None)}
    listing = scan_folder(root, (), known, recursive=True)
    assert sorted(listing.files) == [key] and listing.files[key].spelling == f"{NFD_DIR}/a.txt"
    assert list(listing.shadowed) == [NFC_DIR]


def test_two_spellings_of_one_file_in_a_subdirectory_are_shadowed_there(root: Path) -> None:
    tree(root, {"d/cafe\u0301.txt": b"nfd", "d/caf\u00e9.txt": b"nfc"})
    listing = scan_folder(root, (), {}, recursive=True)
    assert list(listing.files) == ["d/caf\u00e9.txt"]
    assert list(listing.shadowed) == ["d/cafe\u0301.txt"]


def test_a_file_vanishing_between_listing_and_stat_is_simply_not_listed(root: Path) -> None:
    tree(root, THREE_LEVELS)
    reader = Reader(root)
    reader.before_lstat["a/b/two.txt"] = (root / "a/b/two.txt").unlink
    listing = scan_folder(root, (), {}, recursive=True, reader=reader)
    assert "a/b/two.txt" not in listing.files
    assert "a/b/c/three.txt" in listing.files and "a/one.txt" in listing.files
    assert not (listing.errors or listing.skipped)


def test_a_directory_vanishing_between_listing_and_reading_is_passed_over(root: Path) -> None:
    tree(root, THREE_LEVELS)
    reader = Reader(root)
    reader.after_list["a"] = lambda: (root / "a/b").rename(root / "gone-b")  # moved out of the walk's way
    listing = scan_folder(root, (), {}, recursive=True, reader=reader)
    assert not any(key.startswith("a/b/") for key in listing.files)
    assert "a/one.txt" in listing.files and "x/y/z/deep.bin" in listing.files
    assert not listing.errors


def test_a_directory_replaced_by_a_file_before_reading_is_passed_over(root: Path) -> None:
    tree(root, THREE_LEVELS)
    reader = Reader(root)
    reader.refuse["a/b"] = NotADirectoryError(20, "Not a directory")
    listing = scan_folder(root, (), {}, recursive=True, reader=reader)
    assert not listing.errors and "a/one.txt" in listing.files


def test_an_unreadable_subdirectory_is_an_error_under_its_path_and_the_walk_goes_on(root: Path) -> None:
    tree(root, THREE_LEVELS)
    reader = Reader(root)
    reader.refuse["a/b"] = PermissionError(13, "Permission denied")
    listing = scan_folder(root, (), {}, recursive=True, reader=reader)
    assert listing.errors == {"a/b": "cannot read directory: Permission denied"}
    assert sorted(listing.files) == ["a/one.txt", "top.txt", "x/y/z/deep.bin"]
    assert listing.unreadable("a/b/c/three.txt") and listing.unreadable("a/b")
    assert not listing.unreadable("a/one.txt") and not listing.unreadable("a/bb.txt")


def test_the_folder_itself_unreadable_is_raised_not_an_empty_listing(root: Path) -> None:
    reader = Reader(root)
    reader.refuse[""] = PermissionError(13, "Permission denied")
    with pytest.raises(PermissionError):
        scan_folder(root, (), {}, recursive=True, reader=reader)


def test_a_permission_denied_subdirectory_on_disk(root: Path, tmp_path: Path) -> None:
    # In a child process, where modes bite even as root (or skipped where they cannot be made to).
    popen = modes_bite(tmp_path)
    tree(root, THREE_LEVELS)
    (root / "a" / "b").chmod(0o000)
    script = (
        "import json, sys; from pathlib import Path; from syncd.local.scan import scan_folder; "
        "found = scan_folder(Path(sys.argv[1]), (), {}, recursive=True); "
        "print(json.dumps([found.errors, sorted(found.files)]))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(root)], capture_output=True, text=True, check=True, timeout=60, **popen
        )
    finally:
        (root / "a" / "b").chmod(0o755)
    errors, files = json.loads(done.stdout)
    assert list(errors) == ["a/b"] and "Permission denied" in errors["a/b"]
    assert files == ["a/one.txt", "top.txt", "x/y/z/deep.bin"]


@pytest.mark.parametrize(
    ("patterns", "pruned", "gone"),
    [
        (("build/",), {"build", "src/build"}, {"build/out.o", "build/keep.txt", "src/build/gen.c"}),
        (("**/node_modules",), {"node_modules", "web/node_modules"}, {"node_modules/x.js", "web/node_modules/y/z.js"}),
        (("/build/",), {"build"}, {"build/out.o", "build/keep.txt"}),  # anchored: src/build is synced
        (("src/**/*.c",), set(), {"src/build/gen.c", "src/main.c"}),
        # As in git, a file cannot be brought back when its directory is excluded.
        (("build/", "!build/keep.txt"), {"build", "src/build"}, {"build/out.o", "build/keep.txt", "src/build/gen.c"}),
        (("*.o", "!build/out.o"), set(), set()),
    ],
)
def test_ignore_patterns_match_relative_paths_and_directory_patterns_prune_the_walk(
    root: Path, patterns: tuple[str, ...], pruned: set[str], gone: set[str]
) -> None:
    files = {
        "build/out.o": b"o", "build/keep.txt": b"k", "src/main.c": b"m", "src/build/gen.c": b"g",
        "node_modules/x.js": b"x", "web/node_modules/y/z.js": b"z", "web/index.html": b"i",
    }
    tree(root, files)
    reader = Reader(root)
    listing = scan_folder(root, patterns, {}, recursive=True, reader=reader)
    assert set(listing.files) == set(files) - gone
    assert not pruned & set(reader.listed)  # never entered, let alone hashed
    assert ".syncd" not in reader.listed and not any(p.startswith(".syncd/") for p in reader.listed)
    assert not listing.skipped


def test_symlinks_fifos_and_sockets_are_skipped_with_reasons_at_any_depth(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(root, {"d/real.txt": b"r"})
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "secret.txt").write_bytes(b"s")
    (root / "d" / "link.txt").symlink_to(root / "d" / "real.txt")
    (root / "d" / "linked-dir").symlink_to(outside)
    os.mkfifo(root / "d" / "pipe")
    monkeypatch.chdir(root / "d")  # a socket's address is short: bind it by a relative name
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
        listing = scan_folder(root, (), {}, recursive=True)
    assert list(listing.files) == ["d/real.txt"]  # nothing followed through the link
    assert listing.skipped == {
        "d/link.txt": "symbolic link",
        "d/linked-dir": "symbolic link",
        "d/pipe": "FIFO (named pipe)",
        "d/sock": "socket",
    }


def test_unsafe_names_below_the_top_are_skipped_with_the_reason(root: Path) -> None:
    tree(root, {"d/back\\slash.txt": b"b", "d/ok.txt": b"o", "bad\ttab/inner.txt": b"i"})
    listing = scan_folder(root, (), {}, recursive=True)
    assert list(listing.files) == ["d/ok.txt"]
    assert set(listing.skipped) == {"d/back\\slash.txt", "bad\ttab"}
    assert "path separator" in listing.skipped["d/back\\slash.txt"]
    assert "control character" in listing.skipped["bad\ttab"]


def test_only_reads_just_the_directories_its_keys_live_in(root: Path) -> None:
    tree(root, {**THREE_LEVELS, f"{NFD_DIR}/menu.txt": b"m", "other/o.txt": b"o"})
    reader = Reader(root)
    wanted = {"a/b/two.txt", f"{NFC_DIR}/menu.txt", "a/b/missing.txt"}
    listing = scan_folder(root, (), {}, only=wanted, recursive=True, reader=reader)
    assert sorted(listing.files) == sorted(wanted - {"a/b/missing.txt"})
    assert listing.files[f"{NFC_DIR}/menu.txt"].spelling == f"{NFD_DIR}/menu.txt"  # found in any spelling
    assert sorted(reader.listed) == sorted(["", "a", "a/b", NFD_DIR])  # not a/b/c, x, other


def test_a_directory_key_in_only_stands_for_everything_below_it(root: Path) -> None:
    tree(root, THREE_LEVELS)
    listing = scan_folder(root, (), {}, only={"a/b"}, recursive=True)
    assert sorted(listing.files) == ["a/b/c/three.txt", "a/b/two.txt"]


def test_widen_adds_the_tracked_files_below_a_reported_directory() -> None:
    known = ["a/b/one.txt", "a/b/c/two.txt", "a/bc.txt", "top.txt"]
    assert widen({"a/b", "top.txt"}, known) == {"a/b", "a/b/one.txt", "a/b/c/two.txt", "top.txt"}
    assert widen(set(), known) == set()


def test_an_excluded_directory_is_not_entered(root: Path) -> None:
    tree(root, {"sent/a.txt": b"a", "sent/d/b.txt": b"b", "new.txt": b"n", "x/sent/c.txt": b"c"})
    listing = scan_folder(root, (), {}, recursive=True, exclude=("sent",))
    assert sorted(listing.files) == ["new.txt", "x/sent/c.txt"]


def test_an_unreadable_file_hides_only_itself() -> None:
    listing = LocalListing(errors={"a/b/two.txt": "cannot read: Permission denied"})
    assert listing.unreadable("a/b/two.txt") and not listing.unreadable("a/b/c/three.txt")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (stat.S_IFCHR | 0o600, "device file"),
        (stat.S_IFBLK | 0o600, "device file"),
        (stat.S_IFIFO | 0o600, "FIFO (named pipe)"),
    ],
)
def test_devices_are_skipped_with_the_reason_their_mode_gives(root: Path, mode: int, reason: str) -> None:
    # Making a device node needs privileges: the reader says what a device would.
    tree(root, {"dev/node": b"", "dev/real.txt": b"r"})

    class Devices(Reader):
        def list_dir(self, path: Path) -> list[Entry]:
            return [Entry(e.name, EntryKind.OTHER) if e.name == "node" else e for e in super().list_dir(path)]

        def lstat(self, path: Path) -> os.stat_result:
            st = super().lstat(path)
            return os.stat_result((mode, *tuple(st)[1:])) if path.name == "node" else st

    listing = scan_folder(root, (), {}, recursive=True, reader=Devices(root))
    assert listing.skipped == {"dev/node": reason} and list(listing.files) == ["dev/real.txt"]
