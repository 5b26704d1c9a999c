"""The ``beray`` kind: its capabilities, keys and how a remote of it is opened."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.remote.base import Capability
from syncd.remote.beray.settings import (
    PLACE_KEYS,
    REMOTE_KEYS,
    BeRaySettings,
    Place,
    login_of,
    parse_place,
    parse_settings,
    settings_of,
)

if TYPE_CHECKING:
    from syncd.config.model import Mode, RemoteConfig
    from syncd.config.reader import TableReader
    from syncd.remote.beray.remote import BeRayRemote
    from syncd.remote.kind import OpenContext

CAPABILITIES = Capability.LIST | Capability.TREE | Capability.MTIME | Capability.OVERWRITE


class BeRayKind:
    """``kind = "beray"``: a BeRay service at its ``url``."""

    name = "beray"
    capabilities: Capability = CAPABILITIES
    modes: tuple[Mode, ...] = ("two-way", "upload", "download")
    remote_keys: tuple[str, ...] = REMOTE_KEYS
    place_keys: tuple[str, ...] = PLACE_KEYS

    def parse_remote(self, reader: TableReader) -> BeRaySettings:
        return parse_settings(reader)

    def parse_place(self, reader: TableReader) -> str:
        return parse_place(reader)

    def describe_place(self, place: str) -> str:
        where = Place.loads(place)
        return f"task {where.task_id} {where.root}" if where.root else f"task {where.task_id}"

    def open(self, remote: RemoteConfig, context: OpenContext) -> BeRayRemote:
        from syncd.remote.beray.client import BeRayClient
        from syncd.remote.beray.remote import BeRayRemote

        client = BeRayClient(
            settings_of(remote).url, login_of(remote), timeout=remote.timeout,
            requests_per_minute=remote.requests_per_minute, abort=context.abort,
        )
        return BeRayRemote(client)


BERAY = BeRayKind()
