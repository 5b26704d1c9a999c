"""`syncd reconcile` as a person at a terminal sees it, through a real pseudo-terminal, against
the reference file service on loopback; and the same command piped, as a script sees it.

On a terminal: a progress display (files and bytes done of the total, rate, time left, the
transfers under way), then one line per failure or conflict, each once, and the totals. Log
lines print above the display, never into it; the terminal is left clean, also after Ctrl-C.
Piped: one line per action, then the totals, as always. In every human output a name's
control characters are escaped; `--json` keeps the names exact.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from tests.support.faultproxy import Fault, FaultProxy, Seen, unavailable
from tests.support.syncd_cli import run_syncd, write_config

pytestmark = pytest.mark.timeout(180)

#: Files the service takes, and files over its size limit (each fails, for good).
SMALL = 300
TOO_BIG = ("big-0.bin", "big-1.bin", "big-2.bin")
LIMIT = 1000
#: Names a terminal must never get raw: a newline (breaks the line per action) and an ESC
#: sequence (would turn the terminal red). The service refuses both; they fail, and show.
NEWLINE_NAME = "two\nlines.txt"
ESCAPE_NAME = "esc\x1b[31mred.txt"

_CSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_TOTALS = re.compile(r"docs: \d+ uploaded, \d+ downloaded, .* \d+ failed, \d+ unchanged")


def plain(raw: str) -> str:
    """The terminal stream without its control sequences, line ends as `\\n`."""
    return _CSI.sub("", raw).replace("\r\n", "\n")


def screen_line_before(raw: str, at: int) -> str:
    """What stands on the terminal line before position `at` of the stream: the text since
    the last line feed or carriage return (which sends the cursor back to column 0)."""
    start = max(raw.rfind("\n", 0, at), raw.rfind("\r", 0, at)) + 1
    return _CSI.sub("", raw[start:at])


@dataclass(frozen=True)
class Run:
    raw: str
    code: int | None

    @property
    def text(self) -> str:
        return plain(self.raw)


def _interruptible() -> None:
    """In the child: Ctrl-C interrupts, as at a user's shell. A test runner's worker may ignore
    SIGINT, and an ignored signal stays ignored across exec (Python then installs no handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def on_terminal(*args: str | Path, env: Mapping[str, str] | None = None, interrupt_at: str | None = None) -> Run:
    """`python -m syncd ARGS` on a pseudo-terminal (stdout and stderr both), to its end; with
    `interrupt_at`, Ctrl-C once the terminal shows that pattern."""
    full_env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    full_env.pop("SYNCD_CONFIG", None)
    full_env.pop("NO_COLOR", None)
    for size in ("COLUMNS", "LINES"):  # the terminal's own size, as a user's shell has it
        full_env.pop(size, None)
    child = pexpect.spawn(
        sys.executable, ["-m", "syncd", *map(str, args)], env=full_env, encoding="utf-8",
        codec_errors="replace", dimensions=(40, 160), timeout=120,
        preexec_fn=_interruptible,
    )
    seen = ""
    if interrupt_at is not None:
        child.expect(interrupt_at)
        seen = str(child.before) + str(child.after)
        child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    return Run(seen + str(child.before), child.exitstatus)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(SMALL):
        (docs / f"f{i:03d}.txt").write_bytes(b"x" * (100 + i))
    for name in TOO_BIG:
        (docs / name).write_bytes(b"y" * (LIMIT * 5))
    return docs


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServerThread]:
    """The file service, refusing files over LIMIT bytes."""
    data = tmp_path / "data"
    data.mkdir()
    with ServerThread(build_app(data, max_upload_size=LIMIT)) as server:
        yield server


def config(tmp_path: Path, folder: Path, url: str) -> Path:
    """Console logs on a terminal (`log_format = "auto"`), as a person's config has it."""
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=url,
                       folders=[{"name": "docs", "path": folder, "chat_id": "c"}], workers=4)
    cfg.write_text(cfg.read_text().replace('log_format = "json"', 'log_format = "auto"'))
    return cfg


def test_a_terminal_shows_progress_then_each_failure_once_then_the_totals(
    tmp_path: Path, folder: Path, service: ServerThread
) -> None:
    run = on_terminal("reconcile", "-c", config(tmp_path, folder, service.url))
    text = run.text
    assert run.code == 1, text

    # The display: files and bytes done of the total, a rate and the time left.
    assert re.search(rf"\d+/{SMALL + len(TOO_BIG)} files (· \d failed )?· [\d.]+/[\d.]+ kB", text), text[-3000:]
    assert re.search(r"[\d.]+ [kM]?B/s", text), text[-3000:]
    assert re.search(r"eta (\d+:\d\d:\d\d|--)", text), text[-3000:]
    # The last frame: all done, the failures counted, their bytes not among those moved.
    moved = sum(100 + i for i in range(SMALL)) / 1000
    total = moved + len(TOO_BIG) * LIMIT * 5 / 1000
    assert re.search(rf"! synced .* {SMALL + len(TOO_BIG)}/{SMALL + len(TOO_BIG)} files · {len(TOO_BIG)} failed · "
                     rf"{moved:.1f}/{total:.1f} kB", text), text[-3000:]

    # Each failure once: in the report, not also as a log line.
    for name in TOO_BIG:
        assert text.count(f"upload {name} failed") == 1, text[-3000:]
        assert f"name={name}" not in text
    assert "outcome=failed" not in text
    # No line per file that went through; then the totals, last.
    assert "done\n" not in text and "upload f000.txt done" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert _TOTALS.fullmatch(lines[-1]), lines[-5:]
    assert f"{SMALL} uploaded" in lines[-1] and f"{len(TOO_BIG)} failed" in lines[-1]
    # Left clean: the cursor shown again after it was hidden, the stream ends with a line end.
    assert run.raw.rfind("\x1b[?25h") > run.raw.rfind("\x1b[?25l") >= 0
    assert run.raw.endswith("\r\n")


def test_piped_output_is_one_line_per_action_then_the_totals(
    tmp_path: Path, folder: Path, service: ServerThread
) -> None:
    result = run_syncd("reconcile", "-c", config(tmp_path, folder, service.url))
    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    done = [line for line in lines if line.endswith(" done")]
    failed = [line for line in lines if " failed: " in line]
    assert done == [f"docs: upload f{i:03d}.txt done" for i in range(SMALL)]
    assert [line.split(" failed:")[0] for line in failed] == [f"docs: upload {n}" for n in TOO_BIG]
    assert len(lines) == SMALL + len(TOO_BIG) + 1 and _TOTALS.fullmatch(lines[-1])
    assert "\x1b" not in result.stdout and "files ·" not in result.stdout


def test_names_with_control_characters_are_escaped_for_people_and_exact_in_json(
    tmp_path: Path, service: ServerThread
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in (NEWLINE_NAME, ESCAPE_NAME, "plain.txt"):
        (docs / name).write_bytes(b"content")
    (Path(os.fsdecode(docs)) / os.fsdecode(b"latin-\xe9.txt")).write_bytes(b"not UTF-8")  # \udce9
    cfg = config(tmp_path, docs, service.url)

    shown_newline, shown_escape, shown_latin = "two\\nlines.txt", "esc\\x1b[31mred.txt", "latin-\\udce9.txt"
    piped = run_syncd("reconcile", "-c", cfg)
    lines = piped.stdout.splitlines()
    assert [line.split(" failed")[0] for line in lines if " failed: " in line] == [
        f"docs: upload {shown_escape}", f"docs: upload {shown_latin}", f"docs: upload {shown_newline}"
    ]
    assert "docs: upload plain.txt done" in lines
    assert "\x1b" not in piped.stdout and len(lines) == 5  # four actions and the totals

    tty = on_terminal("reconcile", "-c", cfg)
    assert tty.code == 1, tty.text
    assert f"upload {shown_newline} failed" in tty.text and f"upload {shown_escape} failed" in tty.text
    assert "\x1b[31mred" not in tty.raw and "two\r\nlines" not in tty.raw

    as_json = run_syncd("reconcile", "--json", "-c", cfg, errors="surrogateescape")  # the exact bytes
    actions = as_json.folder("docs").actions
    assert {NEWLINE_NAME, ESCAPE_NAME, os.fsdecode(b"latin-\xe9.txt")} <= set(actions)
    assert actions[NEWLINE_NAME]["status"] == "failed"


def test_a_warning_during_the_display_prints_on_a_line_of_its_own(
    tmp_path: Path, folder: Path, service: ServerThread
) -> None:
    with FaultProxy(service.url) as proxy:
        # One upload mid-run meets a 503: the client logs a warning and tries again.
        def midway(seen: Seen) -> Fault | None:
            return unavailable(0.2) if seen.path == "/uploadSimpleFile" and seen.index == SMALL // 2 else None

        proxy.rule = midway
        run = on_terminal("reconcile", "-c", config(tmp_path, folder, proxy.url))
    assert run.code == 1, run.text
    warnings = [m.start() for m in re.finditer("remote.retry", run.raw)]
    assert warnings, run.text[-3000:]
    for at in warnings:
        assert re.fullmatch(r"\d\d:\d\d:\d\d \[warning\] ", screen_line_before(run.raw, at)), (
            screen_line_before(run.raw, at)
        )
    # The display was on screen before and after it.
    first = run.raw.index("remote.retry")
    assert " files · " in plain(run.raw[:first]) and " files · " in plain(run.raw[first:])


def test_ctrl_c_leaves_the_terminal_clean(tmp_path: Path, service: ServerThread) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3000):
        (docs / f"n{i:04d}.txt").write_bytes(b"z" * 200)
    run = on_terminal("reconcile", "-c", config(tmp_path, docs, service.url), interrupt_at=r"[1-9]\d*/3000 files")
    text = run.text
    assert re.search(r"■ stopped .* \d+/3000 files", text), text[-3000:]
    # The last frame ends its line, then the cursor is shown again, and the display is gone
    # (what workers cut short by Ctrl-C log after it are lines of their own).
    shown_again = run.raw.rfind("\x1b[?25h")
    assert shown_again > run.raw.rfind("\x1b[?25l") >= 0
    assert re.search(r"stopped [^\r\n]*\r\n(  [^\r\n]*\r\n)*\x1b\[\?25h", run.raw), text[-3000:]
    assert " files · " not in plain(run.raw[shown_again:])
