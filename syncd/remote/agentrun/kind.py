"""The ``agentrun`` kind: its capabilities, keys and how a remote of it is opened.

A remote reads ``url``, ``region`` and the names of its key's variables; a folder's place is a
``sandbox_id`` and an absolute ``remote_path``. Every mode, recursive or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.remote.agentrun.kindcaps import CAPABILITIES
from syncd.remote.agentrun.settings import (
    PLACE_KEYS,
    REMOTE_KEYS,
    AgentRunSettings,
    Place,
    credentials,
    parse_place,
    parse_settings,
    settings_of,
)
from syncd.remote.base import Capability

if TYPE_CHECKING:
    from syncd.config.model import Mode, RemoteConfig
    from syncd.config.reader import TableReader
    from syncd.remote.agentrun.remote import AgentRunRemote
    from syncd.remote.kind import OpenContext

MAX_CONNECTIONS = 64


class AgentRunKind:
    """``kind = "agentrun"``: the sandbox data API at its ``url``."""

    name = "agentrun"
    capabilities: Capability = CAPABILITIES
    modes: tuple[Mode, ...] = ("two-way", "upload", "download")
    remote_keys: tuple[str, ...] = REMOTE_KEYS
    place_keys: tuple[str, ...] = PLACE_KEYS

    def parse_remote(self, reader: TableReader) -> AgentRunSettings:
        return parse_settings(reader)

    def parse_place(self, reader: TableReader) -> str:
        return parse_place(reader)

    def describe_place(self, place: str) -> str:
        where = Place.loads(place)
        return f"sandbox {where.sandbox_id} {where.root}"

    def open(self, remote: RemoteConfig, context: OpenContext) -> AgentRunRemote:
        # Here, not at the top: only opening a remote needs the HTTP client.
        from syncd.remote.agentrun.client import AgentRunClient
        from syncd.remote.agentrun.remote import AgentRunRemote

        settings = settings_of(remote)
        client = AgentRunClient(
            settings.url, credentials=credentials(remote), region=settings.region, timeout=remote.timeout,
            requests_per_minute=remote.requests_per_minute, max_connections=MAX_CONNECTIONS, abort=context.abort,
        )
        return AgentRunRemote(client)


AGENTRUN = AgentRunKind()
