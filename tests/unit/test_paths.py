"""Folder-relative paths: every component checked by one rule, NFC keys, nothing escapes."""

from __future__ import annotations

import posixpath
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core.names import unsafe_reason
from syncd.core.paths import RelPath, UnsafePath, path_reason


def test_a_path_is_keyed_in_nfc_whatever_its_spelling() -> None:
    nfd = unicodedata.normalize("NFD", "café/résumé.txt")
    path = RelPath.parse(nfd)
    assert path.key == "café/résumé.txt" and unicodedata.is_normalized("NFC", path.key)
    assert path == RelPath.parse("café/résumé.txt")
    assert path.parts == ("café", "résumé.txt")
    assert path.name == "résumé.txt" and path.depth == 2
    assert path.parent == RelPath.parse("café") and RelPath.parse("café").parent is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty path"),
        ("/etc/passwd", "component '': empty name"),
        ("a//b", "component '': empty name"),
        ("a/", "component '': empty name"),
        ("../x", "component '..': reserved name '..'"),
        ("a/./b", "component '.': reserved name '.'"),
        ("a\\b", "name contains a path separator"),
        ("a/b\x00c", "component 'b\\x00c': name contains NUL"),
        ("line\nbreak", "name contains a control character"),
        ("x/" + "é" * 200, "component '" + "é" * 200 + "': name is 400 bytes long (the limit is 255)"),
    ],
)
def test_unsafe_paths_are_refused_naming_the_component(text: str, reason: str) -> None:
    assert path_reason(text) == reason
    with pytest.raises(UnsafePath) as refused:
        RelPath.parse(text)
    assert refused.value.reason == reason


def test_components_are_checked_one_by_one() -> None:
    with pytest.raises(UnsafePath):
        RelPath.of_parts(["a", "b/c"])
    assert RelPath.of_parts(["a", "b"]).child("c") == RelPath.parse("a/b/c")
    with pytest.raises(UnsafePath):
        RelPath.parse("a").child("..")


def test_ancestors_and_containment() -> None:
    path = RelPath.parse("a/b/c.txt")
    assert [str(p) for p in path.ancestors()] == ["a", "a/b"]
    assert path.is_under(RelPath.parse("a")) and path.is_under(RelPath.parse("a/b"))
    assert not path.is_under(path) and not RelPath.parse("ab/c").is_under(RelPath.parse("a"))


def test_ordering_puts_a_folder_before_what_it_holds() -> None:
    paths = [RelPath.parse(t) for t in ("b", "a/z", "a", "a/b/c", "Z")]
    assert [p.key for p in sorted(paths)] == ["Z", "a", "a/b/c", "a/z", "b"]


component = st.text(min_size=1, max_size=20).filter(lambda s: unsafe_reason(s) is None)


@given(st.lists(component, min_size=1, max_size=5))
def test_a_parsed_path_never_leaves_its_folder(parts: list[str]) -> None:
    path = RelPath.parse("/".join(parts))
    joined = posixpath.normpath(posixpath.join("/folder", path.key))
    assert joined.startswith("/folder/")
    assert path.key == unicodedata.normalize("NFC", "/".join(parts))
    assert len(path.parts) == len(parts)


@given(st.text(max_size=40))
def test_any_text_either_parses_safely_or_is_refused(text: str) -> None:
    reason = path_reason(text)
    if reason is None:
        path = RelPath.parse(text)
        assert all(unsafe_reason(part) is None for part in path.parts)
        assert RelPath.parse(path.key) == path
    else:
        with pytest.raises(UnsafePath):
            RelPath.parse(text)


def test_a_path_in_a_message_reads_as_the_text_a_person_knows() -> None:
    """Messages quote paths with `!r`: 'video.mp4', control characters escaped, not RelPath(...)."""
    assert f"upload {RelPath('video.mp4')!r} failed" == "upload 'video.mp4' failed"
    assert repr(RelPath("dir/a b.txt")) == repr("dir/a b.txt")
