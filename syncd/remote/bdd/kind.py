"""The ``bdd`` and ``embedded`` remote kinds: a chat's file list on a BDD file service, reached
over HTTP at its URL, or on the in-process reference service's private socket.

Both are one flat list of names per chat (no TREE), in every folder mode, and open a
`BddRemote`; they differ in where the service is.

Loading a config reads the kinds but opens no remote, so this module imports no HTTP client
at the top: the `open`s bring it in, and a command that opens no remote (`syncd status`) never
pays for it. The reference service's stack is imported by `start_embedded`, so only a config
with an ``embedded`` remote pays for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.config.model import MODES
from syncd.remote.base import Capability
from syncd.remote.bdd.chatfile import CAPABILITIES
from syncd.remote.bdd.embedded import EMBEDDED_BASE_URL, EmbeddedService, start_embedded
from syncd.remote.bdd.settings import (
    PLACE_KEYS,
    REMOTE_KEYS,
    BddSettings,
    api_key,
    parse_bdd,
    parse_chat,
    parse_embedded,
    settings_of,
)

if TYPE_CHECKING:
    from syncd.config.model import Mode, RemoteConfig
    from syncd.config.reader import TableReader
    from syncd.remote.bdd.remote import BddRemote
    from syncd.remote.kind import OpenContext
    from syncd.remote.retry import Abort

#: Connections one client keeps open at most (the workers share it; each opens on demand): as
#: many as the most worker threads a config may ask for (`MAX_WORKERS`).
MAX_CONNECTIONS = 64


def make_client(rc: RemoteConfig, *, abort: Abort | None = None) -> BddRemote:
    """The client of a ``bdd`` remote; `abort` (its breaker's `tripped`) cuts its retry loops short."""
    # Here, not at the top: only opening a remote needs the HTTP client (see the module's doc).
    from syncd.remote.bdd.client import BddClient
    from syncd.remote.bdd.remote import BddRemote

    settings = settings_of(rc)
    if settings.url is None:
        raise TypeError(f"remote {rc.name!r} has no url")
    return BddRemote(BddClient(
        settings.url, settings.user_id, api_key=api_key(rc), timeout=rc.timeout,
        requests_per_minute=rc.requests_per_minute, max_connections=MAX_CONNECTIONS, abort=abort,
    ))


def embedded_client(rc: RemoteConfig, service: EmbeddedService, *, abort: Abort | None = None) -> BddRemote:
    """The client of an ``embedded`` remote: HTTP over the service's Unix socket."""
    # Here, not at the top: only opening a remote needs the HTTP client (see the module's doc).
    import httpx

    from syncd.remote.bdd.client import BddClient
    from syncd.remote.bdd.remote import BddRemote

    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    return BddRemote(BddClient(
        EMBEDDED_BASE_URL, settings_of(rc).user_id, api_key=api_key(rc), timeout=rc.timeout,
        requests_per_minute=rc.requests_per_minute, abort=abort, origin=service.describe(),
        transport=httpx.HTTPTransport(uds=service.address, limits=limits),
    ))


def _start_service(context: OpenContext) -> EmbeddedService:
    return start_embedded(context.state_dir, context.stack, share=context.probe)


class _ChatKind:
    """What both kinds share: a chat's file list, named by ``chat_id``."""

    capabilities: Capability = CAPABILITIES
    modes: tuple[Mode, ...] = MODES
    remote_keys: tuple[str, ...] = REMOTE_KEYS
    place_keys: tuple[str, ...] = PLACE_KEYS

    def parse_place(self, reader: TableReader) -> str:
        return parse_chat(reader)

    def describe_place(self, place: str) -> str:
        return f"chat {place}"


class BddKind(_ChatKind):
    """``kind = "bdd"``: a BDD file service at its ``url``."""

    name = "bdd"

    def parse_remote(self, reader: TableReader) -> BddSettings:
        return parse_bdd(reader)

    def open(self, remote: RemoteConfig, context: OpenContext) -> BddRemote:
        return make_client(remote, abort=context.abort)


class EmbeddedKind(_ChatKind):
    """``kind = "embedded"``: the reference service, in-process; one for all embedded remotes."""

    name = "embedded"

    def parse_remote(self, reader: TableReader) -> BddSettings:
        return parse_embedded(reader)

    def open(self, remote: RemoteConfig, context: OpenContext) -> BddRemote:
        return embedded_client(remote, context.shared(_start_service), abort=context.abort)


BDD = BddKind()
EMBEDDED = EmbeddedKind()
