"""The quickstart daemon's console, as a person at a terminal sees it: syncd's own lines, in
short local time. The embedded file service's everyday lines (one per request, uvicorn's
start-up) are debug detail there, shown with `-v`; `syncd serve` on its own keeps them at info.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pexpect
import pytest

from tests.support.daemon import wait_for
from tests.support.serve import ServeProcess
from tests.support.syncd_cli import run_syncd, write_config

pytestmark = pytest.mark.timeout(120)

QUICKSTART = Path(__file__).resolve().parents[2] / "config.example.toml"
#: The daemon's local time zone: 14 hours ahead of UTC, so a UTC stamp cannot pass for local.
FAR_ZONE, FAR_OFFSET = "Etc/GMT-14", timedelta(hours=14)
_CSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def daemon_console(home: Path, name: str, *args: str) -> str:
    """`syncd run -c QUICKSTART ARGS` on a terminal while a new file `name` goes from alice/ to
    bob/; what the terminal showed, without colours."""
    env = {**os.environ, "HOME": str(home), "TERM": "xterm-256color", "TZ": FAR_ZONE}
    for var in ("SYNCD_CONFIG", "COLUMNS", "LINES"):
        env.pop(var, None)
    child = pexpect.spawn(sys.executable, ["-m", "syncd", "run", "-c", str(QUICKSTART), *args], env=env,
                          encoding="utf-8", dimensions=(40, 200), timeout=60)
    try:
        child.expect("watching")
        seen = str(child.before) + str(child.after)
        (home / "syncd-demo-alice" / name).write_bytes(b"hello\n")
        wait_for(lambda: (home / "syncd-demo-bob" / name).is_file(), timeout=30, what=f"{name} in bob/")
        sgr = r"(?:\x1b\[[0-9;]*m)*"  # colours between the words
        child.expect(rf"transfer{sgr} {sgr}folder{sgr}={sgr}bob{sgr} {sgr}name{sgr}={sgr}{re.escape(name)}")
        seen += str(child.before) + str(child.after)
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return _CSI.sub("", seen + str(child.before)).replace("\r\n", "\n")


def test_the_service_lines_are_debug_when_embedded_and_info_when_served(short_home: Path, tmp_path: Path) -> None:
    quiet = daemon_console(short_home, "hello.txt")
    assert re.search(r"(?m)^\d\d:\d\d:\d\d \[info\] transfer folder=alice name=hello\.txt action=upload", quiet)
    assert "file_id=" not in quiet and "uploaded" not in quiet
    assert "Started server process" not in quiet and "Application startup" not in quiet
    # Local time, short: the stamp is the terminal's clock, not UTC's with microseconds.
    hours = {int(m) for m in re.findall(r"(?m)^(\d\d):\d\d:\d\d ", quiet)}
    now = datetime.now(timezone(FAR_OFFSET)).hour
    assert hours and hours <= {now, (now - 1) % 24}, (hours, now)
    assert "Z " not in quiet and not re.search(r"\d{4}-\d\d-\d\dT", quiet)

    verbose = daemon_console(short_home, "again.txt", "-v")
    assert re.search(r"(?m)^\d\d:\d\d:\d\d \[debug\] uploaded user=demo file_id=\d+", verbose), verbose[-3000:]
    assert re.search(r"(?m)^\d\d:\d\d:\d\d \[debug\] Started server process", verbose), verbose[-3000:]

    # `syncd serve`: the same lines are its own, at info.
    (tmp_path / "data").mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_bytes(b"a")
    with ServeProcess(tmp_path / "data") as served:
        cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=served.url,
                           folders=[{"name": "docs", "path": docs, "chat_id": "c"}])
        assert run_syncd("reconcile", "-c", cfg).code == 0
    records = [json.loads(line) for line in served.log.read_text().splitlines()]
    assert [r["level"] for r in records if r["event"] == "uploaded"] == ["info"]
