"""What people read in `syncd status`: names with control characters escaped (`shown`), and a
folder's place on its remote in its kind's own words (`describe_place`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.cli.status import human_size, plural
from syncd.cli.text import shown
from syncd.config import load_config
from syncd.remote import kinds


@pytest.mark.parametrize(("name", "expected"), [
    ("plain name.txt", "plain name.txt"),
    ("caf\u00e9 \u65e5\u672c \U0001f389.md", "caf\u00e9 \u65e5\u672c \U0001f389.md"),  # printable: as it is
    ("new\nline", "new\\nline"),
    ("tab\there\r", "tab\\there\\r"),
    ("esc\x1b[31mred", "esc\\x1b[31mred"),
    ("nul\x00del\x7f", "nul\\x00del\\x7f"),
    ("c1\x9bcsi", "c1\\x9bcsi"),
    ("bad\udcffbyte", "bad\\udcffbyte"),  # a byte that was not UTF-8 on disk
    ("line\u2028sep", "line\\u2028sep"),
])
def test_shown_escapes_what_would_break_a_line_or_drive_the_terminal(name: str, expected: str) -> None:
    assert shown(name) == expected
    assert shown(name).isprintable()
    assert "\n" not in shown(name) and "\x1b" not in shown(name)


def test_sizes_and_plurals_for_people() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_234_567, 601_000_000, 2 * 10**12)] == [
        "0 B", "999 B", "1.0 kB", "1.2 MB", "601.0 MB", "2.0 TB"]
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]


def test_each_kind_describes_a_place_in_its_own_words(tmp_path: Path) -> None:
    text = f"""
[daemon]
state_dir = "{tmp_path / 'state'}"
[remotes.demo]
kind = "embedded"
user_id = "demo"
[remotes.work]
kind = "bdd"
url = "https://files.example.com"
user_id = "1"
[remotes.gateway]
kind = "ragent-oss"
url = "https://oss.example.com"
[remotes.agent]
kind = "beray"
url = "https://beray.example.com"
token_env = "T"
[remotes.sandbox]
kind = "agentrun"
url = "https://a.agentrun-data.cn-hangzhou.aliyuncs.com"
[[folders]]
name = "a"
path = "{tmp_path / 'a'}"
remote = "demo"
chat_id = "demo-chat"
[[folders]]
name = "b"
path = "{tmp_path / 'b'}"
remote = "work"
chat_id = "42"
[[folders]]
name = "c"
path = "{tmp_path / 'c'}"
remote = "gateway"
mode = "upload"
category = "docs"
[[folders]]
name = "d"
path = "{tmp_path / 'd'}"
remote = "agent"
task_id = 42
remote_path = "output/./reports/"
[[folders]]
name = "e"
path = "{tmp_path / 'e'}"
remote = "agent"
task_id = 7
[[folders]]
name = "f"
path = "{tmp_path / 'f'}"
remote = "sandbox"
sandbox_id = "sb1"
remote_path = "/home/user//p/"
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = load_config(path)
    described = {f.name: kinds.get(config.remotes[f.remote].kind).describe_place(f.place) for f in config.folders}
    assert described == {
        "a": "chat demo-chat", "b": "chat 42", "c": "category docs", "d": "task 42 output/reports",
        "e": "task 7", "f": "sandbox sb1 /home/user/p",
    }
