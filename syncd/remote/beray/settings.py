"""What a BeRay remote reads from the config.

A remote names the service's ``url`` and how to authenticate: an ``email`` with the variable
holding the password (``password_env``; syncd logs in, and again once when the token is
refused), or the variable holding a ready token (``token_env``; refused, the remote pauses).
A folder's place is a ``task_id`` and a ``remote_path`` inside that task's work folder
(relative, never ``..``; empty or ``.`` is the work folder itself).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from syncd.core.names import unsafe_reason

if TYPE_CHECKING:
    from syncd.config.model import RemoteConfig
    from syncd.config.reader import TableReader

REMOTE_KEYS = ("url", "email", "password_env", "token_env")
PLACE_KEYS = ("task_id", "remote_path")


@dataclass(frozen=True, slots=True)
class BeRaySettings:
    """One service: its base URL (no trailing ``/``), and either an email with the name of the
    password's variable or the name of a token's variable (never a secret)."""

    url: str
    email: str | None = None
    password_env: str | None = None
    token_env: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """A task and a directory of its work folder ("" is the work folder itself)."""

    task_id: int
    root: str

    def dumps(self) -> str:
        return json.dumps([self.task_id, self.root], ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> Place:
        task_id, root = json.loads(text)
        return cls(int(task_id), str(root))

    def path_of(self, rel: str) -> str:
        """`rel` (folder-relative) as a work-folder path."""
        return f"{self.root}/{rel}" if self.root else rel


def parse_settings(reader: TableReader) -> BeRaySettings:
    """A ``kind = "beray"`` table: `url`, and `email` + `password_env` or `token_env`."""
    url = reader.url("url")
    if url is None:
        reader.fail("url", "missing (a beray remote needs the service's base URL)")
    email = reader.string("email", None)
    password, token = reader.env_name("password_env"), reader.env_name("token_env")
    if token is not None and (email is not None or password is not None):
        reader.fail("token_env", "use either token_env, or email with password_env, not both")
    if token is None:
        if email is None or not email.strip():
            reader.fail("email", "missing (log in with email and password_env, or give token_env)")
        if password is None:
            reader.fail("password_env", "missing (the name of the variable holding the password)")
    return BeRaySettings(url=url, email=email, password_env=password, token_env=token)


def parse_place(reader: TableReader) -> str:
    """A folder's place: an integer `task_id` and a relative `remote_path` (default the work folder)."""
    if not reader.has("task_id"):
        reader.fail("task_id", "missing")
    task_id = reader.table["task_id"]
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
        reader.fail("task_id", "must be a task's number, e.g. task_id = 42")
    raw = reader.string("remote_path", "") or ""
    if raw.startswith("/"):
        reader.fail("remote_path", "must be relative to the task's work folder (no leading '/')")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    for part in parts:
        reason = unsafe_reason(part)
        if reason is not None:
            reader.fail("remote_path", f"component {part!r}: {reason}")
    return Place(task_id, "/".join(parts)).dumps()


def settings_of(remote: RemoteConfig) -> BeRaySettings:
    settings = remote.settings
    if not isinstance(settings, BeRaySettings):
        raise TypeError(f"remote {remote.name!r} (kind {remote.kind}) is not a beray remote")
    return settings


@dataclass(frozen=True, slots=True)
class Login:
    """How to get a token: log in (email, password) or use a given one. The repr hides both."""

    email: str | None
    password: str | None
    token: str | None

    def __repr__(self) -> str:
        return f"Login(email={self.email!r}, password={'***' if self.password else None}, " \
               f"token={'***' if self.token else None})"


def login_of(remote: RemoteConfig, env: Mapping[str, str] = os.environ) -> Login:
    """The secrets, read now from the variables the config names."""
    settings = settings_of(remote)
    return Login(
        settings.email,
        remote.secret("password_env", settings.password_env, env),
        remote.secret("token_env", settings.token_env, env),
    )
