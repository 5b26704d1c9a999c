"""What a ragent-oss remote reads from the config.

A remote names the gateway's ``url`` and, in ``api_key_env``, the variable holding its API key
(never the key); a folder names the ``category`` its objects are filed under.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.config.model import RemoteConfig
    from syncd.config.reader import TableReader

#: The keys a ragent-oss remote adds to ``[remotes.NAME]``.
REMOTE_KEYS = ("url", "api_key_env")
#: What names a folder's place: the category its objects are filed under.
PLACE_KEYS = ("category",)


@dataclass(frozen=True, slots=True)
class RagentSettings:
    """One gateway: its base URL (no trailing ``/``) and the name of its key's variable."""

    url: str
    api_key_env: str | None = None


def parse_settings(reader: TableReader) -> RagentSettings:
    """A ``kind = "ragent-oss"`` table: `url` required."""
    url = reader.url("url")
    if url is None:
        reader.fail("url", "missing (a ragent-oss remote needs the gateway's base URL)")
    return RagentSettings(url=url, api_key_env=reader.env_name("api_key_env"))


def parse_category(reader: TableReader) -> str:
    """A folder's place: its ``category``, a non-empty string."""
    return reader.text("category")


def settings_of(remote: RemoteConfig) -> RagentSettings:
    """`remote`'s settings; TypeError when `remote` is of another kind (a wiring mistake)."""
    settings = remote.settings
    if not isinstance(settings, RagentSettings):
        raise TypeError(f"remote {remote.name!r} (kind {remote.kind}) is not a ragent-oss remote")
    return settings


def api_key(remote: RemoteConfig, env: Mapping[str, str] = os.environ) -> str | None:
    """The gateway's API key, read now; None when the remote names no variable."""
    return remote.secret("api_key_env", settings_of(remote).api_key_env, env)
