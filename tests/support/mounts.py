"""Real mounts for tests that need a small or vanishing disk: tmpfs, mounted, grown, taken away.

Mounting needs root (CAP_SYS_ADMIN) and mount(8); `can_mount` says whether this process may, so
a test can fall back to something weaker (and say so) instead of failing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=60)


def unmount(path: Path, *, lazy: bool = False) -> None:
    subprocess.run(["umount", *(["-l"] if lazy else []), str(path)], check=True, capture_output=True, timeout=60)


def unmount_all(path: Path) -> None:
    """Take every mount off `path` (busy ones lazily): the cleanup that must always run."""
    while os.path.ismount(path):
        try:
            unmount(path)
        except subprocess.CalledProcessError:
            unmount(path, lazy=True)


def mount_tmpfs(path: Path, size: int) -> None:
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))


def bind(source: Path, target: Path) -> None:
    _mount("--bind", str(source), str(target))


def remount(path: Path, options: str) -> None:
    _mount("-o", f"remount,{options}", str(path))


_CAN_MOUNT: list[bool] = []


def can_mount(scratch: Path) -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, mount(8) present)."""
    if not _CAN_MOUNT:
        probe = scratch / "mount-probe"
        probe.mkdir()
        try:
            mount_tmpfs(probe, 1024 * 1024)
        except (OSError, subprocess.SubprocessError):
            _CAN_MOUNT.append(False)
        else:
            unmount_all(probe)
            _CAN_MOUNT.append(True)
        probe.rmdir()
    return _CAN_MOUNT[0]
