"""What an AgentRun remote reads from the config.

A remote names the sandbox data endpoint (``url``, plain: the ``-ram`` host rule is applied when
signing), the ``region`` its keys are scoped to, and - both or neither - the variables holding an
access key id and secret (``access_key_id_env``, ``access_key_secret_env``), plus an optional STS
token's (``security_token_env``). Only the variables named here are read: never a ``.env`` file,
never an ambient ``AGENTRUN_*`` variable. A folder's place is a ``sandbox_id`` and an absolute
``remote_path`` in it.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.core.names import unsafe_reason
from syncd.remote.agentrun.signing import Credentials

if TYPE_CHECKING:
    from syncd.config.model import RemoteConfig
    from syncd.config.reader import TableReader

REMOTE_KEYS = ("url", "region", "access_key_id_env", "access_key_secret_env", "security_token_env")
PLACE_KEYS = ("sandbox_id", "remote_path")
DEFAULT_REGION = "cn-hangzhou"


@dataclass(frozen=True, slots=True)
class AgentRunSettings:
    """One data endpoint: its URL (no trailing ``/``), the region, and the names of the
    variables holding the key (never the key)."""

    url: str
    region: str = DEFAULT_REGION
    key_id_env: str | None = None
    secret_env: str | None = None
    token_env: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where a folder lives: a sandbox and an absolute directory in it."""

    sandbox_id: str
    root: str

    def dumps(self) -> str:
        return json.dumps([self.sandbox_id, self.root], ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> Place:
        sandbox_id, root = json.loads(text)
        return cls(str(sandbox_id), str(root))


def parse_settings(reader: TableReader) -> AgentRunSettings:
    """A ``kind = "agentrun"`` table: `url` required; the key's two variables both or neither."""
    url = reader.url("url")
    if url is None:
        reader.fail("url", "missing (an agentrun remote needs the sandbox data endpoint's URL)")
    region = reader.string("region", DEFAULT_REGION) or DEFAULT_REGION
    if not region.strip() or not all(c.isalnum() or c == "-" for c in region):
        reader.fail("region", f"must be a region id such as {DEFAULT_REGION!r}")
    key_id, secret = reader.env_name("access_key_id_env"), reader.env_name("access_key_secret_env")
    if (key_id is None) != (secret is None):
        missing = "access_key_secret_env" if secret is None else "access_key_id_env"
        reader.fail(missing, "missing: requests are signed with both the key id and the secret, or not at all")
    token = reader.env_name("security_token_env")
    if token is not None and key_id is None:
        reader.fail("security_token_env", "needs access_key_id_env and access_key_secret_env (an STS token "
                                          "comes with a temporary key)")
    return AgentRunSettings(url=url, region=region, key_id_env=key_id, secret_env=secret, token_env=token)


def parse_place(reader: TableReader) -> str:
    """A folder's place: `sandbox_id`, and `remote_path`, absolute and plain (no ``.``/``..``)."""
    sandbox_id = reader.text("sandbox_id")
    if "/" in sandbox_id or unsafe_reason(sandbox_id) is not None:
        reader.fail("sandbox_id", "must be a sandbox id (no '/', no control characters)")
    root = reader.text("remote_path")
    if not root.startswith("/"):
        reader.fail("remote_path", "must be an absolute path in the sandbox, e.g. /home/user/project")
    parts = [p for p in root.split("/") if p]
    for part in parts:
        reason = unsafe_reason(part)
        if reason is not None:
            reader.fail("remote_path", f"component {part!r}: {reason}")
    return Place(sandbox_id, posixpath.join("/", *parts)).dumps()


def settings_of(remote: RemoteConfig) -> AgentRunSettings:
    """`remote`'s settings; TypeError when `remote` is of another kind (a wiring mistake)."""
    settings = remote.settings
    if not isinstance(settings, AgentRunSettings):
        raise TypeError(f"remote {remote.name!r} (kind {remote.kind}) is not an agentrun remote")
    return settings


def credentials(remote: RemoteConfig, env: Mapping[str, str] = os.environ) -> Credentials | None:
    """The access key, read now from the variables the config names; None when it names none."""
    settings = settings_of(remote)
    key_id = remote.secret("access_key_id_env", settings.key_id_env, env)
    secret = remote.secret("access_key_secret_env", settings.secret_env, env)
    if key_id is None or secret is None:
        return None
    return Credentials(key_id, secret, remote.secret("security_token_env", settings.token_env, env))
