"""Ignore rules: gitignore-style patterns on folder-relative paths, on top of the built-in list."""

from __future__ import annotations

import pathspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.local.ignore import BUILTIN_PATTERNS, MARKER, IgnoreRules, ignore_rules, is_ignored, pattern_problem

# A folder's patterns as configs wrote them before patterns became gitignore-style.
OLD_PATTERNS = ("*.bak", "~*", "[Tt]emp*", "report?.txt", "data[!0-9].csv", "Thumbs.db")

# (name, ignored with no patterns, ignored with OLD_PATTERNS): the answers of the fnmatch
# matcher these rules replaced, taken from it before it was removed. They must not change.
OLD_ANSWERS = [
    (".syncd", True, True),
    ("x.part", True, True),
    ("movie.mkv.crdownload", True, True),
    ("a.tmp", True, True),
    ("~$report.docx", True, True),
    (".~lock.notes.odt#", True, True),
    ("notes.txt~", True, True),
    (".notes.txt.swp", True, True),
    (".DS_Store", True, True),
    ("notes.txt", False, False),
    ("a.tmpx", False, False),
    ("part", False, False),
    (".part", True, True),
    ("a.PART", False, False),
    ("A.TMP", False, False),
    ("x.swp", False, False),
    (".swp", False, False),
    ("notes.swp", False, False),
    (".syncd2", False, False),
    ("x.syncd", False, False),
    ("DS_Store", False, False),
    (".ds_store", False, False),
    ("~", True, True),
    ("~$", True, True),
    ("$~", True, True),
    ("lock.~x", False, False),
    ("a.bak", False, True),
    ("a.BAK", False, False),
    ("bak", False, False),
    (".bak", False, True),
    ("a.bak.txt", False, False),
    ("~draft", False, True),
    ("Temp1", False, True),
    ("temp", False, True),
    ("tEmp", False, False),
    ("report1.txt", False, True),
    ("report.txt", False, False),
    ("report12.txt", False, False),
    ("dataX.csv", False, True),
    ("data1.csv", False, False),
    ("data.csv", False, False),
    ("Thumbs.db", False, True),
    ("thumbs.db", False, False),
    ("café.tmp", True, True),
    ("résumé.bak", False, True),
    ("naïve.txt", False, False),
    ("日本語.txt", False, False),
    ("日本語.tmp", True, True),
    ("emoji 😀.part", True, True),
    ("a b.bak", False, True),
    ("with\nnewline.txt", False, False),
    ("#hash", False, False),
    ("!bang.bak", False, True),
    ("!bang.txt", False, False),
]


@pytest.mark.parametrize(("name", "builtin", "with_patterns"), OLD_ANSWERS)
def test_todays_names_keep_their_answers(name: str, builtin: bool, with_patterns: bool) -> None:
    assert ignore_rules(()).matches(name) is builtin
    assert ignore_rules(OLD_PATTERNS).matches(name) is with_patterns


def test_the_built_in_list() -> None:
    assert BUILTIN_PATTERNS == ("*.part", "*.crdownload", "*.tmp", "~$*", ".~lock.*", "*~", ".*.swp", ".DS_Store")
    rules = ignore_rules(())
    for name in ("a.part", "b.crdownload", "c.tmp", "~$d.docx", ".~lock.e.odt#", "f~", ".g.swp", ".DS_Store", MARKER):
        assert rules.matches(name), name
    assert not rules.matches("report.pdf")


def test_a_name_pattern_matches_at_any_depth() -> None:
    rules = ignore_rules(("*.bak",))
    assert rules.matches("a.bak")
    assert rules.matches("sub/a.bak")
    assert rules.matches("sub/deeper/a.bak")
    assert rules.matches("sub/x.tmp")  # a built-in too
    assert not rules.matches("a.bak.d/file.txt")


def test_patterns_are_case_sensitive() -> None:
    rules = ignore_rules(("*.bak",))
    assert not rules.matches("A.BAK")
    assert not rules.matches("x.TMP")


def test_negation_re_includes() -> None:
    rules = ignore_rules(("*.bak", "!important.bak"))
    assert rules.matches("other.bak")
    assert not rules.matches("important.bak")
    assert not rules.matches("sub/important.bak")


def test_negation_re_includes_a_built_in() -> None:
    rules = ignore_rules(("!keep.tmp",))
    assert not rules.matches("keep.tmp")
    assert rules.matches("other.tmp")


def test_the_last_matching_pattern_wins() -> None:
    rules = ignore_rules(("!keep.bak", "*.bak"))
    assert rules.matches("keep.bak")


@pytest.mark.parametrize("patterns", [("!.syncd",), ("!.syncd/",), ("!.syncd/**",), ("!*", "!**"), ("!/.syncd",)])
def test_the_marker_is_never_re_included(patterns: tuple[str, ...]) -> None:
    rules = ignore_rules(patterns)
    assert rules.matches(MARKER)
    assert rules.matches(MARKER, is_dir=True)
    assert rules.matches(".syncd/tmp/x.txt")
    assert rules.matches("sub/.syncd")
    assert not rules.matches(".syncdx")


def test_an_anchored_pattern_matches_at_the_top_only() -> None:
    rules = ignore_rules(("/build",))
    assert rules.matches("build")
    assert rules.matches("build", is_dir=True)
    assert rules.matches("build/out.o")
    assert not rules.matches("src/build")
    assert not rules.matches("src/build/out.o")


def test_a_pattern_with_a_slash_is_anchored() -> None:
    rules = ignore_rules(("doc/*.txt",))
    assert rules.matches("doc/a.txt")
    assert not rules.matches("a.txt")
    assert not rules.matches("x/doc/a.txt")
    assert not rules.matches("doc/sub/a.txt")


def test_double_star() -> None:
    rules = ignore_rules(("**/cache/**",))
    assert rules.matches("cache/x")
    assert rules.matches("a/b/cache/x")
    assert rules.matches("a/cache/deep/er/x")
    assert not rules.matches("cache")  # the directory itself is not "inside cache/"
    assert not rules.matches("a/cached/x")
    assert not rules.matches("x")


def test_a_directory_pattern_matches_directories_and_what_is_in_them() -> None:
    rules = ignore_rules(("logs/",))
    assert rules.matches("logs", is_dir=True)
    assert rules.matches("sub/logs", is_dir=True)
    assert rules.matches("logs/today.txt")
    assert not rules.matches("logs")  # a file named logs
    assert not rules.matches("logs.txt")


def test_unicode_names() -> None:
    rules = ignore_rules(("*.brouillon", "rés*", "日本*", "!日本語.txt"))
    assert rules.matches("lettre.brouillon")
    assert rules.matches("résumé.pdf")
    assert rules.matches("dossier/日本.pdf")
    assert not rules.matches("日本語.txt")
    assert not rules.matches("resume.pdf")
    assert rules.matches("😀.tmp")


def test_list_entries_are_not_comments_and_keep_trailing_spaces() -> None:
    rules = ignore_rules(("#draft*", "notes "))
    assert rules.matches("#draft-1.txt")
    assert rules.matches("notes ")
    assert not rules.matches("notes")


def test_an_escaped_trailing_space_stays_one_space() -> None:
    rules = ignore_rules(("a\\ ",))
    assert rules.matches("a ")
    assert not rules.matches("a  ")
    assert ignore_rules(("a\\  ",)).matches("a  ")
    assert ignore_rules((" ",)).matches(" ")


def test_rules_are_cached_per_pattern_tuple() -> None:
    assert ignore_rules(("*.bak",)) is ignore_rules(["*.bak"])
    assert ignore_rules(("*.bak",)) is not ignore_rules(("*.old",))


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("foo\\", "not a valid gitignore pattern"),
        ("[abc", "matches nothing"),
        ("/", "matches nothing"),
        ("a\x00b", "NUL"),
    ],
)
def test_patterns_that_are_refused(pattern: str, problem: str) -> None:
    reason = pattern_problem(pattern)
    assert reason is not None and problem in reason
    with pytest.raises(ValueError):
        IgnoreRules((pattern,))


@pytest.mark.parametrize(
    "pattern", ["*.bak", "~*", "[Tt]emp*", "!keep.tmp", "/build", "logs/", "**/cache/**", "#x", "a b ", "\\!x"]
)
def test_patterns_that_are_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


NAME_CHARS = st.sampled_from(list("ab.*~$!#[]^?-/ \\ésyncdtmp"))


@given(
    patterns=st.lists(st.text(NAME_CHARS, min_size=1, max_size=6), max_size=4),
    path=st.text(st.sampled_from(list("ab./~$!#-é tmpsyncd")), min_size=1, max_size=12),
    is_dir=st.booleans(),
)
def test_the_answer_is_the_librarys(patterns: list[str], path: str, is_dir: bool) -> None:
    """Whatever shortcut the rules take, they answer what a plain GitIgnoreSpec of the same lines
    answers (the marker aside)."""
    if any(pattern_problem(p) for p in patterns) or path.startswith("/") or "//" in path or path.endswith("/"):
        return
    rules = ignore_rules(tuple(patterns))
    if MARKER in path.split("/"):
        assert rules.matches(path, is_dir=is_dir)
        return
    spec = pathspec.GitIgnoreSpec.from_lines([*BUILTIN_PATTERNS, *rules.lines])
    assert rules.matches(path, is_dir=is_dir) is spec.match_file(path + "/" if is_dir else path)


def test_the_shortcut_is_in_use() -> None:
    """If a pathspec release changed its expressions so they cannot be joined, matching would
    still be right but ten times slower: this says so."""
    assert ignore_rules(("*.bak", "!keep.bak", "/build", "logs/"))._screen is not None


def test_a_listed_name_with_a_slash_is_left_to_the_name_checks() -> None:
    """A chat's file names are single names: one with a `/` is refused as unsafe further on,
    and must not vanish as ignored first."""
    assert is_ignored("x.tmp", ())
    assert is_ignored(".syncd", ())
    assert is_ignored("!keep.bak", ["*.bak"])
    assert not is_ignored("keep.tmp", ["!keep.tmp"])
    for name in (".syncd/tmp/x", ".syncd/trash/x", "a/b.tmp", "./x.tmp", "/abs.tmp", "dir/"):
        assert not is_ignored(name, ["*.bak"]), name
