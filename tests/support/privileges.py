"""Making file modes bite for a command the tests run, even as root.

As root, permission bits stop neither reads nor writes. `modes_bite(scratch)` returns Popen
arguments under which they do: the child drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its
bounding set before exec (so exec does not grant them back). It first proves that on a mode 000
probe file, and skips the test when it cannot be done.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def drop_dac_capabilities() -> None:
    """In the child before exec: give up root's power to read and write regardless of modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def modes_bite(scratch: Path) -> dict[str, Any]:
    """Popen arguments under which a mode 000 file really cannot be read (see the module doc)."""
    if os.geteuid() != 0:
        return {}
    probe = scratch / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0o000)
    try:
        opened = subprocess.run(
            [sys.executable, "-c", f"open({str(probe)!r}, 'rb')"],
            capture_output=True, check=False, preexec_fn=drop_dac_capabilities, timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"running as root, where modes do not block reads, and cannot drop capabilities: {exc}")
    finally:
        probe.unlink()
    if opened.returncode == 0:
        pytest.skip("running as root, where modes do not block reads, and dropping capabilities did not help")
    return {"preexec_fn": drop_dac_capabilities}


def as_nobody(code: str, *args: str) -> dict[str, object]:
    """Run the Python `code` as uid/gid 65534 with no supplementary groups (root only); the JSON
    object it prints. The system's python: the child need not be able to read a virtualenv."""
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    done = subprocess.run(
        [python, "-I", "-c", code, *args],
        user=65534, group=65534, extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result
