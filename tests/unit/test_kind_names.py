"""No module of syncd names a remote kind outside the kind's own package and the registry.

What a kind is lives in its package (`syncd/remote/<kind>/`) and its one line in
`syncd/remote/kinds.py`; everything else goes through the registry and capabilities. This walks
the package's source for the shipped kinds' names as strings and for their place key.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import syncd
from syncd.remote import kinds

ROOT = Path(syncd.__file__).resolve().parent
MENTIONS = re.compile(
    r"""["'](?:bdd|embedded|ragent-oss|agentrun|beray)["']|chat_id|sandbox_id|task_id|["']category["']"""
)

ALLOWED = {
    ROOT / "remote" / "kinds.py",  # the registry
    ROOT / "server",  # the reference BDD service (`syncd serve`): it speaks the protocol's words
}


def kind_packages() -> set[Path]:
    """The kinds' own packages, found from the registry itself."""
    return {Path(sys.modules[type(kind).__module__].__file__ or "").parent for kind in kinds.every()}


def excused(path: Path) -> bool:
    return any(path == place or place in path.parents for place in kind_packages() | ALLOWED)


def mentions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{path.relative_to(ROOT.parent)}:{n}: {line.strip()}" for n, line in enumerate(lines, 1)
            if MENTIONS.search(line)]


def test_the_kind_packages_are_found_and_the_pattern_sees_kind_names() -> None:
    assert kind_packages() == {ROOT / "remote" / name for name in ("bdd", "ragent", "agentrun", "beray")}
    assert len(mentions(ROOT / "remote" / "kinds.py")) == 5  # its five lines


def test_no_module_outside_a_kind_names_a_kind() -> None:
    sources = sorted(ROOT.rglob("*.py"))
    assert len(sources) > 50  # the walk found the package
    found = [hit for path in sources if not excused(path) for hit in mentions(path)]
    assert found == []
