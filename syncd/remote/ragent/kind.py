"""The ``ragent-oss`` kind: its capabilities, keys and how a remote of it is opened.

A remote reads ``url`` and ``api_key_env``; a folder's place is its ``category`` (required);
only ``mode = "upload"`` is possible, the gateway having no listing to download from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.remote.base import Capability
from syncd.remote.ragent.settings import (
    PLACE_KEYS,
    REMOTE_KEYS,
    RagentSettings,
    api_key,
    parse_category,
    parse_settings,
    settings_of,
)

if TYPE_CHECKING:
    from syncd.config.model import Mode, RemoteConfig
    from syncd.config.reader import TableReader
    from syncd.remote.kind import OpenContext
    from syncd.remote.ragent.remote import RagentRemote

#: Connections one client keeps open at most (the workers share it; opened on demand).
MAX_CONNECTIONS = 64
CAPABILITIES = (
    Capability.TREE | Capability.DELETE | Capability.SERVER_KEYS | Capability.SIGN_URL | Capability.RESUMABLE
)


class RagentKind:
    """``kind = "ragent-oss"``: a ragent-oss storage gateway at its ``url``."""

    name = "ragent-oss"
    capabilities: Capability = CAPABILITIES
    modes: tuple[Mode, ...] = ("upload",)
    remote_keys: tuple[str, ...] = REMOTE_KEYS
    place_keys: tuple[str, ...] = PLACE_KEYS

    def parse_remote(self, reader: TableReader) -> RagentSettings:
        return parse_settings(reader)

    def parse_place(self, reader: TableReader) -> str:
        return parse_category(reader)

    def describe_place(self, place: str) -> str:
        return f"category {place}"

    def open(self, remote: RemoteConfig, context: OpenContext) -> RagentRemote:
        # Here, not at the top: only opening a remote needs the HTTP client.
        from syncd.remote.ragent.client import RagentClient
        from syncd.remote.ragent.remote import RagentRemote

        client = RagentClient(
            settings_of(remote).url, api_key=api_key(remote), timeout=remote.timeout,
            requests_per_minute=remote.requests_per_minute, max_connections=MAX_CONNECTIONS, abort=context.abort,
        )
        return RagentRemote(client)


RAGENT = RagentKind()
