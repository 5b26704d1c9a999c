"""The writer lock of a state directory: one writer process at a time.

An exclusive ``flock`` on ``state_dir/lock``: the kernel drops it when the process dies, even
after ``kill -9``, so a stale lock never needs cleaning up. The holder writes its pid and
command line into the file, so a refused writer (and `syncd status`) can say who holds it.
Descriptors from `os.open` are not inherited across exec: a child can never keep it alive.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from syncd.errors import StateLocked

LOCK_NAME = "lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
# A `lock_holder` probe holds a shared lock for microseconds; a writer that
# finds the lock taken retries this long before concluding another writer has it.
_CONTENTION_GRACE_S = 0.5
_CMD_MAX = 200


def lock_holder(state_dir: Path) -> int | None:
    """The pid of the live process holding `state_dir`'s writer lock, or None.

    Probes with a non-blocking *shared* lock on a separate descriptor: it can
    only fail while some process holds the exclusive writer lock, in which case
    the pid the holder wrote into the file is the answer.
    """
    lock_path = Path(state_dir).expanduser() / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _cmd = _read_holder(lock_path)
            return pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def make_private_dir(state_dir: Path) -> None:
    if state_dir.is_dir():
        return
    state_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask; say exactly what we mean.
    state_dir.chmod(DIR_MODE)


def _command_line() -> str:
    argv = list(sys.argv) or ["?"]
    argv[0] = os.path.basename(argv[0]) or argv[0]
    cmd = " ".join(argv).replace("\n", " ")
    return cmd if len(cmd) <= _CMD_MAX else cmd[: _CMD_MAX - 3] + "..."


def _read_holder(lock_path: Path) -> tuple[int | None, str]:
    """The (pid, command) written into the lock file by its holder.

    A holder writes them right after taking the lock, so an empty file is
    re-read for a short while before giving up on knowing the pid.
    """
    deadline = time.monotonic() + _CONTENTION_GRACE_S
    while True:
        try:
            text = lock_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        first, _, rest = text.partition("\n")
        if first.strip().isdigit():
            return int(first), rest.strip() or "?"
        if time.monotonic() >= deadline:
            return None, "?"
        time.sleep(0.01)


def acquire_writer_lock(state_dir: Path) -> int:
    """Take the exclusive writer lock; return its descriptor (kept open while we write).

    os.open descriptors are not inherited across exec, so a child process can
    never keep the lock alive after we die.
    """
    lock_path = state_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        deadline = time.monotonic() + _CONTENTION_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Possibly just a `lock_holder` probe: retry briefly.
                if time.monotonic() >= deadline:
                    pid, cmd = _read_holder(lock_path)
                    shown = str(pid) if pid is not None else "?"
                    raise StateLocked(f"state dir {state_dir} is held by syncd pid {shown} ({cmd})") from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{_command_line()}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise
