"""What a remote kind is: everything syncd knows of one kind of file service, in one object.

A kind (the value of a remote's ``kind`` key) says what its remotes can do, which folder modes
they take, which keys it adds to ``[remotes.NAME]`` and to ``[[folders]]`` (its place keys),
how it parses them, and how it opens a live `Remote`. The config loader and the wiring
(`syncd.app`) go through these objects, found in the registry (`syncd.remote.kinds`); nothing
outside a kind's own package names a kind.

Invariants a kind keeps:
- `parse_remote` and `parse_place` read only the keys the kind declares (`remote_keys`,
  `place_keys`; the reader they get shows no other) and refuse a bad value through the reader,
  so the message names the key;
- `parse_remote` returns a frozen, hashable dataclass compared by value: a remote whose table
  did not change across a reload is equal to its old self and keeps its client;
- `parse_place` returns a string the kind alone reads back when it is asked about that place;
- every remote `open` returns can do at least `capabilities` (the config promises no more:
  ``recursive = true`` needs `Capability.TREE` here);
- `open` reads secrets then, not at load time, and registers what it starts on
  `OpenContext.stack`; the caller closes the returned remote itself.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from syncd.remote.base import Capability, Remote

if TYPE_CHECKING:
    from syncd.config.model import Mode, RemoteConfig
    from syncd.config.reader import TableReader
    from syncd.remote.retry import Abort  # a type only: loading a config needs no retry machinery

_T = TypeVar("_T")


class Services:
    """What kinds start once for a whole set of remotes and share between them (an in-process
    file service), each kept under the function that started it."""

    def __init__(self) -> None:
        self._started: dict[Callable[..., object], object] = {}

    def once(self, start: Callable[[OpenContext], _T], context: OpenContext) -> _T:
        """`start(context)` the first time `start` is asked for; what it returned ever after."""
        if start not in self._started:
            self._started[start] = start(context)
        return cast(_T, self._started[start])


@dataclass(frozen=True)
class OpenContext:
    """What opening a remote may use besides its config.

    `stack` closes what `open` starts, after the remotes that use it. `abort` (the remote's
    breaker's `tripped`) cuts the remote's retry loops short. `probe`: the caller (`syncd
    check`) holds no state lock, so a service another syncd process runs for this state dir is
    used rather than waited for. `services` is shared by every remote of one set.
    """

    state_dir: Path
    stack: ExitStack
    abort: Abort | None = None
    probe: bool = False
    services: Services = field(default_factory=Services)

    def shared(self, start: Callable[[OpenContext], _T]) -> _T:
        """What `start` returns, started once for all the remotes of this set."""
        return self.services.once(start, self)


class RemoteKind(Protocol):
    """One kind of remote (see the module's invariants)."""

    @property
    def name(self) -> str:
        """The value of ``kind`` that selects this kind."""
        ...

    @property
    def capabilities(self) -> Capability:
        """What every remote of this kind can do."""
        ...

    @property
    def modes(self) -> tuple[Mode, ...]:
        """The folder modes its remotes can sync (e.g. only ``upload``)."""
        ...

    @property
    def remote_keys(self) -> tuple[str, ...]:
        """The keys it adds to ``[remotes.NAME]``, besides kind, timeout and requests_per_minute."""
        ...

    @property
    def place_keys(self) -> tuple[str, ...]:
        """The keys of ``[[folders]]`` that name a folder's place on a remote of this kind."""
        ...

    def parse_remote(self, reader: TableReader) -> object:
        """The kind's settings of one remote, from its `remote_keys`."""
        ...

    def parse_place(self, reader: TableReader) -> str:
        """A folder's place on the remote, from its `place_keys`, as an opaque string."""
        ...

    def describe_place(self, place: str) -> str:
        """A place `parse_place` returned, in the kind's own words, for people (``chat
        demo-chat``, ``task 42 output``): what `syncd status` shows a folder syncing with."""
        ...

    def open(self, remote: RemoteConfig, context: OpenContext) -> Remote:
        """The live remote of `remote` (a config of this kind)."""
        ...
