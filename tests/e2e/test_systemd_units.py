"""The units in systemd/: they load cleanly (`systemd-analyze verify`) and the system unit is sandboxed.

`verify` checks that ExecStart= names an executable that exists on this machine. The shipped
files name where an installed syncd lives (/usr/local/bin/syncd, ~/.local/bin/syncd), so:
- the user unit is verified unchanged, with $HOME pointing at a temporary home whose
  .local/bin/syncd links to this checkout's entry point;
- the system unit is verified as a copy whose ExecStart= path (and nothing else) is replaced by
  this checkout's entry point.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_UNIT = REPO / "systemd" / "syncd.service"
USER_UNIT = REPO / "systemd" / "syncd-user.service"
SHIPPED_EXEC_START = "ExecStart=/usr/local/bin/syncd run -c /etc/syncd/config.toml"
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def entry_point() -> Path:
    candidate = Path(sys.executable).parent / "syncd"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("syncd")
    if found is None:
        pytest.skip("the syncd entry point is not installed (pip install -e .)")
    return Path(found)


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    full_env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", **(env or {})}
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, env=full_env, timeout=30, check=False)


def settings(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order, comments and section headers skipped."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def test_system_unit_contract() -> None:
    unit = settings(SYSTEM_UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert SHIPPED_EXEC_START in SYSTEM_UNIT.read_text().splitlines()
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["syncd"]
    assert unit["StateDirectory"] == ["syncd"]
    assert unit["ConfigurationDirectory"] == ["syncd"]
    assert unit["Restart"] == ["on-failure"]
    assert "WatchdogSec" in unit
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "IPAddressDeny" not in unit  # the remote can be anywhere
    assert unit["WantedBy"] == ["multi-user.target"]


def test_user_unit_contract() -> None:
    unit = settings(USER_UNIT)
    assert unit["Type"] == ["notify"]
    assert unit["ExecStart"] == ["%h/.local/bin/syncd run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Restart"] == ["on-failure"]
    assert "WatchdogSec" in unit
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["WantedBy"] == ["default.target"]
    # File-system sandboxing needs a user namespace in a user manager: none of it is used.
    for key in ("User", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths"):
        assert key not in unit, key


@needs_analyze
def test_system_unit_verifies_cleanly(tmp_path: Path) -> None:
    text = SYSTEM_UNIT.read_text()
    exec_start = SHIPPED_EXEC_START.replace("/usr/local/bin/syncd", str(entry_point()))
    copy = tmp_path / "syncd.service"
    copy.write_text(text.replace(SHIPPED_EXEC_START + "\n", exec_start + "\n"))
    changed = set(copy.read_text().splitlines()) ^ set(text.splitlines())
    assert changed == {SHIPPED_EXEC_START, exec_start}

    result = analyze("verify", str(copy))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_analyze
def test_user_unit_verifies_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "syncd").symlink_to(entry_point())
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)

    result = analyze("--user", "verify", str(USER_UNIT), env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_analyze
def test_system_unit_exposure() -> None:
    result = analyze("security", "--offline=yes", "--no-pager", str(SYSTEM_UNIT))
    if result.returncode != 0 and ("unrecognized option" in result.stderr or "--offline" in result.stderr):
        pytest.skip(f"systemd-analyze security --offline is not supported here: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for syncd\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
