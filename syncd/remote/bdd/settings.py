"""What a BDD remote reads from the config: the ``bdd`` and ``embedded`` kinds' keys.

Both kinds name a folder's place with ``chat_id`` (a chat's file list) and a remote with
``user_id`` and an optional ``api_key_env``; a ``bdd`` remote also needs the service's ``url``,
an ``embedded`` one refuses it (its service runs in-process).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.config.model import RemoteConfig
    from syncd.config.reader import TableReader

#: The keys a BDD remote adds to ``[remotes.NAME]``. An embedded remote reads ``url`` only to
#: refuse it with the reason.
REMOTE_KEYS = ("user_id", "url", "api_key_env")
#: What names a folder's place: the chat whose file list it syncs with.
PLACE_KEYS = ("chat_id",)


@dataclass(frozen=True, slots=True)
class BddSettings:
    """One BDD remote: the user every request speaks for, the service's base URL (``bdd``: set,
    without a trailing ``/``; ``embedded``: None) and the name of the variable holding the API
    key (never the key)."""

    user_id: str
    url: str | None = None
    api_key_env: str | None = None


def parse_bdd(reader: TableReader) -> BddSettings:
    """A ``kind = "bdd"`` table: `url` required."""
    user_id = reader.text("user_id")
    url = reader.url("url")
    if url is None:
        reader.fail("url", "missing (a bdd remote needs the service's base URL)")
    return BddSettings(user_id=user_id, url=url, api_key_env=reader.env_name("api_key_env"))


def parse_embedded(reader: TableReader) -> BddSettings:
    """A ``kind = "embedded"`` table: no `url`."""
    user_id = reader.text("user_id")
    if reader.string("url", None) is not None:
        reader.fail("url", "not allowed for an embedded remote (it runs in-process)")
    return BddSettings(user_id=user_id, api_key_env=reader.env_name("api_key_env"))


def parse_chat(reader: TableReader) -> str:
    """A folder's place: its ``chat_id``, a non-empty string (an unquoted number is refused
    with the quoted spelling to use)."""
    return reader.text("chat_id")


def settings_of(remote: RemoteConfig) -> BddSettings:
    """`remote`'s settings; TypeError when `remote` is not a BDD remote (a wiring mistake)."""
    settings = remote.settings
    if not isinstance(settings, BddSettings):
        raise TypeError(f"remote {remote.name!r} (kind {remote.kind}) is not a BDD remote")
    return settings


def api_key(remote: RemoteConfig, env: Mapping[str, str] = os.environ) -> str | None:
    """The remote's API key, read now (see `RemoteConfig.secret`); None when it names none."""
    return remote.secret("api_key_env", settings_of(remote).api_key_env, env)
