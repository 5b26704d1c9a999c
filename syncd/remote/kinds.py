"""The registry of remote kinds: the values a remote's ``kind`` key may take, one line each.

Adding a kind is adding its package (``syncd/remote/<kind>/``) and a line here; no other module
names a kind. The order is the order messages list the kinds in. Callers look kinds up through
the functions below, which read `KINDS` when called (so a test may register a kind of its own).
"""

from __future__ import annotations

import types
from collections.abc import Mapping

from syncd.remote.agentrun.kind import AGENTRUN
from syncd.remote.bdd.kind import BDD, EMBEDDED
from syncd.remote.beray.kind import BERAY
from syncd.remote.kind import RemoteKind
from syncd.remote.ragent.kind import RAGENT

KINDS: Mapping[str, RemoteKind] = types.MappingProxyType({
    "embedded": EMBEDDED,
    "bdd": BDD,
    "ragent-oss": RAGENT,
    "beray": BERAY,
    "agentrun": AGENTRUN,
})


def names() -> tuple[str, ...]:
    """Every registered kind's name, in registry order."""
    return tuple(KINDS)


def every() -> tuple[RemoteKind, ...]:
    """Every registered kind, in registry order."""
    return tuple(KINDS.values())


def get(name: str) -> RemoteKind:
    """The kind called `name`; KeyError for a name the config loader would have refused."""
    return KINDS[name]
