"""`shown`: a name as a person at a terminal sees it, one line, nothing that drives the terminal."""

from __future__ import annotations

import os

import pytest

from syncd.cli.text import shown


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("two\nlines.txt", "two\\nlines.txt"),
        ("tab\there", "tab\\there"),
        ("cr\rhere", "cr\\rhere"),
        ("esc\x1b[31mred", "esc\\x1b[31mred"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),  # NEL and CSI: C1 controls some terminals obey
        (os.fsdecode(b"latin-\xe9.txt"), "latin-\\udce9.txt"),  # not UTF-8: a lone surrogate
        ("\ud83c", "\\ud83c"),
    ],
)
def test_controls_and_lone_surrogates_become_visible_escapes(name: str, expected: str) -> None:
    assert shown(name) == expected
    assert shown(name).isprintable()


@pytest.mark.parametrize("name", ["plain.txt", "Grüße 🎉.md", "日本語/ファイル.txt", "a\\nb", "nbsp\u00a0é", ""])
def test_everything_else_is_left_as_it_is(name: str) -> None:
    assert shown(name) == name
