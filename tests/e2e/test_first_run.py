"""A new user's first run, end to end, on a fresh HOME: `syncd init` writes the starter config
where syncd looks for it, `syncd check` passes, and `syncd run` creates the demo folders (one
log line each, naming the path) and syncs a dropped file from alice to bob."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, wait_for
from tests.support.syncd_cli import run_syncd

pytestmark = pytest.mark.timeout(120)


def test_init_check_run_on_a_fresh_home(short_home: Path) -> None:
    env = {"HOME": str(short_home), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""}
    config = short_home / ".config" / "syncd" / "config.toml"

    written = run_syncd("init", env=env)
    assert written.code == 0, written.stderr
    assert f"wrote the starter config to {config}" in written.stdout

    checked = run_syncd("check", env=env)  # found at the default path, no -c
    assert checked.code == 0, checked.stdout + checked.stderr
    assert f"config {config} ok (3 folders, 1 remote)" in checked.stdout
    folders = {name: short_home / f"syncd-demo-{name}" for name in ("alice", "bob", "outbox")}
    assert not any(path.exists() for path in folders.values())  # check creates nothing

    daemon = DaemonProcess(config, env=env)
    try:
        daemon.wait_ready()
        created = {e["folder"]: e["path"] for e in daemon.find("created folder")}
        assert created == {name: str(path) for name, path in folders.items()}
        assert all(e["level"] == "info" for e in daemon.find("created folder"))
        (folders["alice"] / "hello.txt").write_text("first run\n")
        wait_for(lambda: (folders["bob"] / "hello.txt").is_file(), what="hello.txt to reach bob")
        assert (folders["bob"] / "hello.txt").read_text() == "first run\n"
    finally:
        assert daemon.stop() == 0, daemon.log_text()
    # Created once: a second start finds them there and says nothing about creating them.
    again = DaemonProcess(config, env=env)
    try:
        again.wait_ready()
        assert again.find("created folder") == []
    finally:
        assert again.stop() == 0, again.log_text()
