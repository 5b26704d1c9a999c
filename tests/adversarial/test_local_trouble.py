"""Adversarial local trouble: a full disk, permission denied, files changing under an upload, a disk unplugged.

Every scenario drives the real `syncd reconcile --json` in a subprocess against the reference
file service on loopback, with the published SDK as the other client, records every legitimate
content in a `Ledger`, and ends with the whole-state audit (files lost, remote duplicates,
partial files, files written outside the folder: all must be 0). Each has a short version in the
default run and a bigger one (more files, more rounds) marked `adversarial`. Where a round says
"fixed while syncd waits", the trouble is cured after syncd's first failed attempt and before its
in-process retry; "fixed after the run" lets the run give up (exit 1) first.

What each scenario proves:

1. **Disk full** (a real 4 MiB tmpfs holding the folder; RLIMIT_FSIZE when mounting is not
   possible): remote files bigger than the free space fail with the disk's reason; no partial
   file appears under a real name, no temp file is left, the local files already there (also
   the one whose remote version grew too big) keep their inode, size, mtime and bytes, small
   files and uploads go through; once the disk has room, a run converges.
2. **Permission denied** (as root, with CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH dropped): an
   unreadable local file (mode 000) fails alone with "cannot read ... Permission denied"; in a
   folder that is not writable (mode 555) downloads, remote edits and remote deletions fail with
   "Permission denied" and change nothing, while uploads go through; once fixed, a run converges.
3. **Files changing mid-upload**: large files are appended to, deleted, scribbled over (and in
   the full version shrunk) while their upload streams (seen in the reconcile process's open
   files and the server's upload temp dir). The remote never keeps bytes a file did not have in full at a settled
   moment, no upload is left half-received on the server, a deleted file is not uploaded (unless
   its complete content already was), and after a converging run the remote equals the folder.
4. **The folder's disk unplugged** (a tmpfs bind-mounted as the folder and unmounted; renaming
   the folder away when mounting is not possible), with `delete = true, max_delete = 100`:
   between runs the folder is paused with an error, nothing is deleted or uploaded remotely and
   nothing is written to the empty mount point; once plugged back in a run converges. Unplugged
   in the middle of a run (the first transfer request held at a proxy while the disk goes), the
   same must hold, and the command must not crash: every local write checks the marker first,
   and a name whose file vanished with the disk is never planned again as a deletion.

Beyond `audit`, scenarios count what it cannot see: files left in the empty mount point and
remote deletions while the disk was away (outside / lost), a half-received upload on the
server (partial), and a folder whose content is not the remote's after convergence (lost).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from bdd_file import BddFileClient

from syncd.state.db import open_state
from syncd.state.queue import Queue
from tests.adversarial.audit import MARKER, Counts, Ledger, audit, local_files, remote_files
from tests.adversarial.conftest import Audited
from tests.support import privileges
from tests.support.daemon import wait_for
from tests.support.faultproxy import FaultProxy, Seen
from tests.support.mounts import bind, can_mount, mount_tmpfs, remount, unmount, unmount_all
from tests.support.syncd_cli import FolderResult, Result, write_config

pytestmark = pytest.mark.timeout(900)

CHAT = "chat-local-trouble"
FOLDER = "f"
KiB = 1024
MiB = 1024 * KiB
#: How long one reconcile may take: generous, the machine is shared.
RUN_TIMEOUT = 300.0
#: How long to wait for something a running reconcile is expected to do.
EVENT_TIMEOUT = 120.0

PopenArgs = Mapping[str, Any]  # extra subprocess.Popen arguments (preexec_fn, ...)


@dataclass(frozen=True)
class Scale:
    files: int  # files of each kind per round
    rounds: int
    size: int = 0  # bytes of each large file, where the scenario has them
    changes: tuple[str, ...] = ()  # the kinds of concurrent change, where the scenario has them


def scales(short: Scale, full: Scale) -> list[Any]:
    """The short version (default run) and the full one (`-m adversarial`)."""
    return [pytest.param(short, id="short"), pytest.param(full, id="full", marks=pytest.mark.adversarial)]


def fixed_while_waiting(round_: int) -> bool:
    """Even rounds cure the trouble while syncd waits to retry, odd rounds after the run gave up."""
    return round_ % 2 == 0


# -- the command ---------------------------------------------------------------------------------


class Reconcile:
    """`syncd reconcile --json` in a subprocess; its queue rows can be watched while it runs."""

    started: list[Reconcile] = []  # every one, so that a failed test leaves none running

    def __init__(self, config: Path, state_dir: Path, popen: PopenArgs) -> None:
        self.started.append(self)
        self.state_dir = state_dir
        env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "reconcile", "--json", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen,
        )
        self._lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self._stdout), (self.proc.stderr, self._stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: io.TextIOBase, lines: list[str]) -> None:
        for line in stream:
            with self._lock:
                lines.append(line)

    def failed_once(self, names: Iterable[str]) -> dict[str, str]:
        """Wait until each of `names` has failed at least once (its queue row says so); their errors."""
        wanted = set(names)
        state = open_state(self.state_dir, writer=False)
        try:
            queue = Queue(state)

            def errors() -> dict[str, str]:
                tried = {j.name: j.last_error or "" for j in queue.jobs(FOLDER) if j.attempts and j.name in wanted}
                assert self.proc.poll() is None or set(tried) == wanted, f"ended before {wanted - set(tried)} failed"
                return tried if set(tried) == wanted else {}

            found: dict[str, str] = wait_for(errors, timeout=EVENT_TIMEOUT, what=f"{sorted(wanted)} to fail once")
            return found
        finally:
            state.close()

    def finish(self) -> Result:
        """Wait for the command to end; what it did."""
        try:
            code = self.proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for reader in self._readers:
            reader.join(10)
        stdout, stderr = "".join(self._stdout), "".join(self._stderr)
        doc = json.loads(stdout) if stdout.lstrip().startswith("{") else None
        return Result(code, stdout, stderr, doc)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish_cleanly(self) -> Result:
        """`finish`, failing the test if the command crashed."""
        result = self.finish()
        assert not crashed(result), result.stderr[-4000:]
        return result


@pytest.fixture(autouse=True)
def no_command_left_running() -> Iterator[None]:
    yield
    while Reconcile.started:
        Reconcile.started.pop().kill()


class Sync:
    """Folder `f` synced with one chat through the real command; the ledger of what is legitimate."""

    def __init__(
        self, sandbox: Path, folder: Path, url: str, sdk: BddFileClient, popen: PopenArgs | None = None
    ) -> None:
        self.sandbox = sandbox
        self.folder = folder
        self.state_dir = sandbox / "state"
        self.config = sandbox / "syncd.toml"
        self.url = url
        self.sdk = sdk
        self.popen: PopenArgs = popen or {}
        self.ledger = Ledger()
        self.configure()

    def configure(self, *, url: str | None = None, workers: int = 2, **options: object) -> None:
        """(Re)write the config; `options` are keys of the folder's table."""
        folder = {"name": FOLDER, "path": self.folder, "chat_id": CHAT, **options}
        write_config(self.config, state_dir=self.state_dir, url=url or self.url, folders=[folder], workers=workers)

    def start(self) -> Reconcile:
        return Reconcile(self.config, self.state_dir, self.popen)

    def run(self) -> Result:
        return self.start().finish_cleanly()

    def converge(self) -> None:
        """A pass that succeeds, then one that plans nothing (SPEC, "Converges")."""
        assert_ok(self.run())
        self.assert_converged()

    def assert_converged(self) -> None:
        again = self.run()
        assert again.code == 0 and again.folder(FOLDER)["actions"] == [], again.stdout

    # -- both sides ----------------------------------------------------------------------------

    def write(self, name: str, data: bytes) -> None:
        self.ledger.write(self.folder, name, data)

    def put(self, name: str, data: bytes) -> int:
        return self.ledger.put(self.sdk, CHAT, name, data)

    def remote_ids(self) -> dict[str, list[int]]:
        ids: dict[str, list[int]] = {}
        for info in self.sdk.list_chat_files(chat_id=CHAT):
            ids.setdefault(info.filename, []).append(info.id)
        return ids

    def edit_remote(self, name: str, data: bytes) -> None:
        """What another client does to change a file: upload the new version, delete the old."""
        old = self.remote_ids().get(name, [])
        self.put(name, data)
        for file_id in old:
            self.sdk.delete(file_id=file_id)

    def delete_remote(self, name: str) -> None:
        for file_id in self.remote_ids()[name]:
            self.sdk.delete(file_id=file_id)
        self.ledger.gone.add(name)

    def audit(self, *allowed: Path) -> Counts:
        remote = remote_files(self.sdk, CHAT)
        return audit(
            self.ledger, folder=self.folder, remote=remote, sandbox=self.sandbox,
            allowed=[self.state_dir, self.config, *allowed],
        )


def assert_ok(result: Result) -> None:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr[-4000:]}"


def crashed(result: Result) -> bool:
    """Whether the command (or one of its threads) died of an exception."""
    return "Traceback (most recent call last)" in result.stderr


def stat_snapshot(folder: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """(inode, size, mtime_ns, bytes) of each file in the folder."""
    out = {}
    for name, data in local_files(folder).items():
        st = (folder / name).stat()
        out[name] = (st.st_ino, st.st_size, st.st_mtime_ns, data)
    return out


def temp_files(folder: Path) -> list[Path]:
    tmp = folder / MARKER / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def assert_failed_with(report: FolderResult, names: Iterable[str], *reasons: str) -> None:
    """Each of `names` is reported failed, its error giving every one of `reasons`."""
    for name in names:
        action = report.actions[name]
        assert action["status"] == "failed" and all(r in action["error"] for r in reasons), action


# == 1. disk full ================================================================================


class SmallDisk(Protocol):
    label: str  # for the scenario name
    reason: str  # what a write past the end says
    popen: PopenArgs  # how the command must run to be on this disk

    def free(self) -> int: ...

    def grow(self, by: int, running: Reconcile | None = None) -> None:
        """Make room for `by` more bytes, also for a command `running` now."""


class TmpfsDisk:
    """A real small filesystem mounted as the folder; grown by remounting it bigger."""

    label, reason = "tmpfs", "No space left on device"

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.popen: PopenArgs = {}
        mount_tmpfs(path, size)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def grow(self, by: int, running: Reconcile | None = None) -> None:
        self.size += by
        remount(self.path, f"size={self.size}")


class RlimitDisk:
    """No mounting here: no single file the command writes may exceed `limit` (RLIMIT_FSIZE)."""

    label, reason = "RLIMIT_FSIZE", "File too large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.popen: PopenArgs = {"preexec_fn": self._limit}

    def _limit(self) -> None:  # in the child: writes past the limit fail with EFBIG, not SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))

    def free(self) -> int:
        return self.limit

    def grow(self, by: int, running: Reconcile | None = None) -> None:
        self.limit += by
        if running is not None:  # the soft limit may be raised up to the (unlimited) hard one
            resource.prlimit(running.proc.pid, resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))


@contextlib.contextmanager
def small_disk(folder: Path, size: int) -> Iterator[SmallDisk]:
    folder.mkdir()
    if not can_mount(folder.parent):
        yield RlimitDisk(size)
        return
    try:
        yield TmpfsDisk(folder, size)
    finally:
        unmount_all(folder)


@pytest.mark.parametrize("scale", scales(Scale(files=1, rounds=1), Scale(files=3, rounds=3)))
def test_disk_full(scale: Scale, tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient,
                   audited: Audited) -> None:
    with small_disk(tmp_path / "f", 4 * MiB) as disk:
        box = Sync(tmp_path, tmp_path / "f", server_url, sdk, disk.popen)
        for i in range(scale.files):
            box.write(f"mine-{i}.txt", os.urandom(16 * KiB))
        box.write("grows.bin", b"small for now")
        box.converge()

        for round_ in range(scale.rounds):
            too_big = disk.free() + 256 * KiB
            bigs = {f"big-{round_}-{i}.bin": os.urandom(too_big) for i in range(scale.files)}
            for name, data in bigs.items():
                box.put(name, data)
            box.edit_remote("grows.bin", os.urandom(too_big))  # an existing file whose new version cannot fit
            smalls = [f"small-{round_}-{i}.txt" for i in range(scale.files)]
            for name in smalls:
                box.put(name, os.urandom(8 * KiB))
            box.write(f"new-here-{round_}.txt", os.urandom(8 * KiB))
            before = stat_snapshot(box.folder)
            failing = [*bigs, "grows.bin"]

            run = box.start()
            errors = run.failed_once(failing)
            assert all(disk.reason in error for error in errors.values()), errors
            # Failed cleanly: nothing under a real name, the files already there untouched.
            assert not any((box.folder / name).exists() for name in bigs)
            assert {n: s for n, s in stat_snapshot(box.folder).items() if n in before} == before
            if fixed_while_waiting(round_):
                disk.grow(len(failing) * too_big + MiB, run)
                assert_ok(run.finish_cleanly())
                box.assert_converged()
                continue
            result = run.finish_cleanly()  # gave up: exit 1, the reason given, the rest done
            assert result.code == 1, result.stdout
            report = result.folder(FOLDER)
            assert_failed_with(report, failing, disk.reason)
            assert report["failed"] == len(failing)
            assert {report.actions[n]["status"] for n in [*smalls, f"new-here-{round_}.txt"]} == {"done"}
            assert temp_files(box.folder) == []
            assert stat_snapshot(box.folder).items() >= before.items()
            disk.grow(len(failing) * too_big + MiB)
            box.converge()

        audited(f"disk full ({disk.label})", box.audit(server_data))


# == 2. permission denied =========================================================================

@pytest.fixture
def modes_bite(tmp_path: Path) -> PopenArgs:
    """Popen arguments under which file modes really stop the command; skip when impossible."""
    return privileges.modes_bite(tmp_path)


@contextlib.contextmanager
def modes(changes: Mapping[Path, tuple[int, int]]) -> Iterator[None]:
    """Each path at its first mode while the block runs, at its second after."""
    for path, (mode, _) in changes.items():
        path.chmod(mode)
    try:
        yield
    finally:
        for path, (_, restored) in changes.items():
            path.chmod(restored)


@pytest.mark.parametrize("scale", scales(Scale(files=1, rounds=1), Scale(files=4, rounds=2)))
def test_permission_denied(scale: Scale, tmp_path: Path, modes_bite: PopenArgs, server_url: str, server_data: Path,
                           sdk: BddFileClient, audited: Audited) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    box = Sync(tmp_path, folder, server_url, sdk, modes_bite)
    box.configure(delete=True, max_delete=100)
    edits = [f"edit-there-{i}.txt" for i in range(scale.files)]
    for name in edits:
        box.write(name, b"synced")

    for round_ in range(scale.rounds):
        doomed = f"delete-there-{round_}.txt"
        box.write(doomed, b"to be deleted there")
        box.converge()
        box.delete_remote(doomed)
        for name in edits:
            box.edit_remote(name, b"edited there in round %d" % round_)
        downloads = [f"new-there-{round_}-{i}.txt" for i in range(scale.files)]
        for name in downloads:
            box.put(name, os.urandom(4 * KiB))
        secrets = [f"secret-{round_}-{i}.txt" for i in range(scale.files)]
        for name in [*secrets, f"fine-{round_}.txt"]:
            box.write(name, os.urandom(4 * KiB))
        writes = [*downloads, *edits, doomed]
        before = stat_snapshot(folder)

        locked = {folder / name: (0o000, 0o644) for name in secrets} | {folder: (0o555, 0o755)}
        with modes(locked):
            run = box.start()
            run.failed_once(writes)
            assert stat_snapshot(folder) == before  # nothing written, replaced or moved
            if fixed_while_waiting(round_):
                folder.chmod(0o755)  # the folder is fixed while syncd waits to retry; the secrets stay locked
            result = run.finish_cleanly()

        assert result.code == 1, result.stdout
        report = result.folder(FOLDER)
        assert_failed_with(report, secrets, "cannot read", "ermission denied")
        assert report.actions[f"fine-{round_}.txt"]["status"] == "done"
        if fixed_while_waiting(round_):
            assert {report.actions[n]["status"] for n in writes} == {"done"}, report.raw
            assert report["failed"] == len(secrets)
        else:
            assert_failed_with(report, writes, "ermission denied")
            assert report["failed"] == len(secrets) + len(writes)
            assert stat_snapshot(folder) == before
        assert temp_files(folder) == []
        box.converge()

    audited("permission denied", box.audit(server_data))


# == 3. files changing mid-upload =================================================================


def open_offsets(pid: int) -> dict[str, int]:
    """Path -> file offset of each file process `pid` has open (racy by nature: best effort)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                out[target] = int(info.split("pos:")[1].split()[0])
    return out


def receiving(server_data: Path) -> bool:
    """Whether the server is receiving a simple upload's bytes right now."""
    with contextlib.suppress(OSError):
        return any(p.stat().st_size > 0 for p in (server_data / "tmp").iterdir())
    return False


def append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(os.urandom(MiB))


def shrink(path: Path) -> None:
    path.write_bytes(os.urandom(MiB))  # truncated, then rewritten shorter: the upload runs out of bytes


def scribble(path: Path) -> None:
    """Overwrite a stretch in the middle, the size unchanged: the upload would mix old and new."""
    with path.open("r+b") as f:
        f.seek(f.seek(0, os.SEEK_END) // 2)
        f.write(os.urandom(MiB))


#: How a concurrent writer changes a file whose upload is streaming.
CHANGES: dict[str, Callable[[Path], None]] = {
    "append": append, "delete": Path.unlink, "shrink": shrink, "scribble": scribble,
}


def change_mid_upload(run: Reconcile, targets: Mapping[Path, str], server_data: Path) -> set[Path]:
    """Apply each target's change as soon as its upload is seen streaming; the paths caught mid-upload.

    An upload is streaming when the reconcile process has the file open part-way through and
    the server is receiving a simple upload. Files whose upload was never caught in the act are
    left alone.
    """
    left = dict(targets)
    hit: set[Path] = set()

    def act() -> bool:
        offsets = open_offsets(run.proc.pid)
        if receiving(server_data):
            for path in list(left):
                if 0 < offsets.get(str(path), 0) < path.stat().st_size:
                    CHANGES[left.pop(path)](path)
                    hit.add(path)
        return not left or run.proc.poll() is not None

    wait_for(act, timeout=RUN_TIMEOUT, what="the uploads to be changed or the run to end")
    return hit


def remote_differs(box: Sync) -> Counts:
    """Names whose current remote content is not the folder's (counted as lost: the final version is missing)."""
    remote: dict[str, set[bytes]] = {}
    for item in remote_files(box.sdk, CHAT):
        if item.data is not None:
            remote.setdefault(item.name, set()).add(item.data)
    wrong = sorted(n for n, data in local_files(box.folder).items() if data not in remote.get(n, set()))
    return Counts(lost=len(wrong), details=tuple(f"{n!r}: the folder's content is not the remote's" for n in wrong))


def server_leftovers(server_data: Path) -> Counts:
    """Uploads the server holds half-received (its temp dir and unfinished parts)."""
    left = [p for d in ("tmp", "parts") if (server_data / d).is_dir() for p in (server_data / d).iterdir()]
    return Counts(partial=len(left), details=tuple(f"server kept a partial upload: {p}" for p in left))


# A shrinking file costs the command its in-process retries (seconds): the full version only.
@pytest.mark.parametrize("scale", scales(
    Scale(files=1, rounds=1, size=12 * MiB, changes=("append", "delete", "scribble")),
    Scale(files=2, rounds=3, size=24 * MiB, changes=tuple(CHANGES)),
))
def test_files_changing_mid_upload(scale: Scale, tmp_path: Path, server_url: str, server_data: Path,
                                   sdk: BddFileClient, audited: Audited) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    box = Sync(tmp_path, folder, server_url, sdk)
    box.configure(workers=len(scale.changes) * scale.files)
    vanished: list[str] = []

    for round_ in range(scale.rounds):
        targets: dict[Path, str] = {}
        for change in scale.changes:
            for i in range(scale.files):
                # A new name to delete each round; the others are updated each round after the first.
                name = f"{change}-{round_}-{i}.bin" if change == "delete" else f"{change}-{i}.bin"
                box.write(name, os.urandom(scale.size))
                targets[folder / name] = change

        run = box.start()
        hit = change_mid_upload(run, targets, server_data)
        run.finish_cleanly()
        assert hit, "no upload was caught streaming"
        for path in hit - {p for p, change in targets.items() if change == "delete"}:
            box.ledger.saw(path.name, path.read_bytes())  # the new content, settled now
        vanished += [p.name for p, change in targets.items() if change == "delete" and p in hit]
        box.converge()

    remote = box.remote_ids()
    for name in vanished:  # uploaded in full before it was deleted (allowed), or not at all
        (box.ledger.remote_only if name in remote else box.ledger.gone).add(name)
    counts = box.audit(server_data) + remote_differs(box) + server_leftovers(server_data)
    audited("files changing mid-upload", counts)


# == 4. the folder's disk unplugged ===============================================================


class Unpluggable(Protocol):
    label: str
    backing: list[Path]  # where the disk's content lives besides the folder (allowed by the audit)

    def unplug(self) -> None: ...

    def strays(self) -> Counts:
        """What was written in the disk's place while it was away (then removed)."""

    def plug(self) -> None: ...


class BoundTmpfs:
    """A tmpfs (the disk) bind-mounted as the folder; unplugging unmounts the folder (lazily if busy)."""

    label = "tmpfs"

    def __init__(self, folder: Path, disk: Path) -> None:
        self.folder, self.disk = folder, disk
        self.backing = [disk]
        disk.mkdir()
        mount_tmpfs(disk, 64 * MiB)
        self.plug()

    def unplug(self) -> None:
        unmount(self.folder, lazy=True)

    def strays(self) -> Counts:
        return remove_strays(self.folder, keep_place=True)  # the mount point itself belongs there

    def plug(self) -> None:
        bind(self.disk, self.folder)

    def close(self) -> None:
        unmount_all(self.folder)
        unmount_all(self.disk)


class RenamedAway:
    """No mounting here: unplugging renames the folder away, plugging renames it back."""

    label = "renamed"

    def __init__(self, folder: Path, aside: Path) -> None:
        self.folder, self.aside = folder, aside
        self.backing: list[Path] = []

    def unplug(self) -> None:
        self.folder.rename(self.aside)

    def strays(self) -> Counts:
        return remove_strays(self.folder, keep_place=False)  # not even the folder should be back

    def plug(self) -> None:
        self.aside.rename(self.folder)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def unpluggable(sandbox: Path) -> Iterator[Unpluggable]:
    folder = sandbox / "f"
    folder.mkdir()
    disk: BoundTmpfs | RenamedAway
    disk = BoundTmpfs(folder, sandbox / "disk") if can_mount(sandbox) else RenamedAway(folder, sandbox / "f-away")
    try:
        yield disk
    finally:
        disk.close()


def remove_strays(place: Path, *, keep_place: bool) -> Counts:
    """Whatever was written where the unplugged disk should be: counted, then removed."""
    if not place.exists():
        return Counts()
    found = sorted(place.rglob("*"), reverse=True) + ([] if keep_place else [place])
    for path in found:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    return Counts(outside=len(found), details=tuple(f"written where the disk should be: {p}" for p in found))


def deleted_remotely(box: Sync, before: Mapping[str, list[int]]) -> Counts:
    """Names whose remote files all disappeared while the disk was away (a deletion it must not cause)."""
    now = box.remote_ids()
    gone = sorted(n for n in before if n not in now)
    return Counts(lost=len(gone), details=tuple(f"{n!r} deleted remotely while the disk was away" for n in gone))


def synced_folder(box: Sync, scale: Scale) -> None:
    box.configure(delete=True, max_delete=100, workers=1)
    for i in range(scale.files):
        box.write(f"synced-{i}.txt", b"synced %d" % i)
        box.write(f"edit-here-{i}.txt", b"to be edited here")
    box.converge()


def work_for_the_next_pass(box: Sync, scale: Scale, round_: int) -> None:
    """New files there, edits here."""
    for i in range(scale.files):
        box.put(f"new-there-{round_}-{i}.txt", b"new there %d" % i)
        box.write(f"edit-here-{i}.txt", b"edited here %d in round %d" % (i, round_))


@pytest.mark.parametrize("scale", scales(Scale(files=2, rounds=1), Scale(files=10, rounds=3)))
def test_disk_unplugged_between_runs(scale: Scale, tmp_path: Path, server_url: str, server_data: Path,
                                     sdk: BddFileClient, audited: Audited) -> None:
    with unpluggable(tmp_path) as disk:
        box = Sync(tmp_path, tmp_path / "f", server_url, sdk)
        counts = Counts()
        synced_folder(box, scale)
        for round_ in range(scale.rounds):
            work_for_the_next_pass(box, scale, round_)
            before = box.remote_ids()
            disk.unplug()
            result = box.run()
            assert result.code == 1, result.stdout
            report = result.folder(FOLDER)
            assert report["actions"] == [] and "missing" in report["blocked"] and "paused" in report["blocked"]
            assert box.remote_ids() == before  # nothing deleted, nothing uploaded
            counts += disk.strays()
            disk.plug()
            box.converge()
        audited(f"disk unplugged between runs ({disk.label})", box.audit(server_data, *disk.backing) + counts)


class Gate:
    """Holds the first transfer request at the proxy until `release()` (or the end of the `with` block)."""

    TRANSFERS = frozenset({"/downloadFile", "/uploadSimpleFile"})

    def __init__(self, proxy: FaultProxy) -> None:
        self.held = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        proxy.rule = self._rule

    def _rule(self, seen: Seen) -> None:
        if seen.path not in self.TRANSFERS:
            return
        with self._lock:
            first = not self.held.is_set()
            self.held.set()
        if first:
            self.released.wait(EVENT_TIMEOUT)

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize("scale", scales(Scale(files=2, rounds=1), Scale(files=10, rounds=1)))
def test_disk_unplugged_mid_run(scale: Scale, tmp_path: Path, server_url: str, server_data: Path,
                                sdk: BddFileClient, audited: Audited) -> None:
    with unpluggable(tmp_path) as disk, FaultProxy(server_url) as proxy:
        box = Sync(tmp_path, tmp_path / "f", proxy.url, sdk)
        synced_folder(box, scale)
        work_for_the_next_pass(box, scale, 0)
        before = box.remote_ids()
        with Gate(proxy) as gate:
            run = box.start()
            wait_for(gate.held.is_set, timeout=EVENT_TIMEOUT, what="the first transfer")
            disk.unplug()
            gate.release()
            result = run.finish()
        away = disk.strays() + deleted_remotely(box, before)
        disk.plug()
        box.converge()
        audited(f"disk unplugged mid-run ({disk.label})", box.audit(server_data, *disk.backing) + away)
        assert not crashed(result), result.stderr[-4000:]
