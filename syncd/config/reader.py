"""Typed access to the config file's tables, shared by the loader and every remote kind.

A `TableReader` wraps one TOML table and knows where it sits in the file (``daemon``,
``remotes.demo``, ``folders[0]``), so each getter that refuses a value raises a `ConfigError`
reading ``FILE: KEY.PATH: what is wrong``, the key spelled as it would be in TOML.

Invariants:
- every message says what was found by its TOML type, and a short repr only of values that
  cannot be secrets: a value read as a secret's variable name (`env_name`) or a URL (which may
  carry credentials) is never echoed;
- a getter either returns a value of its type or raises; it never coerces (``workers = "4"``
  and ``delete = 1`` are mistakes, not 4 and true).
"""

from __future__ import annotations

import difflib
import enum
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from syncd.errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR_REF = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: Keys people use for the secret itself; an unknown key among them gets a hint instead.
_SECRET_KEYS = ("api_key", "token", "password", "secret")

_C = TypeVar("_C", bound=str)


class _Required(enum.Enum):
    REQUIRED = "required"


#: The default of a getter whose key must be present.
REQUIRED: Final = _Required.REQUIRED
Required = Literal[_Required.REQUIRED]


class ConfigSource:
    """The file being read: its name as messages show it, its directory (relative paths are
    anchored there) and the environment ``$VAR`` and ``~`` expand with."""

    def __init__(self, path: Path, shown: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.shown = shown
        self.env = env

    def fail(self, key: str, what: str) -> NoReturn:
        """Raise the `ConfigError` for `key` (a full key path; empty for the file itself)."""
        raise ConfigError(f"{self.shown}: {key}: {what}" if key else f"{self.shown}: {what}")

    def reader(self, table: Mapping[str, object], prefix: str) -> TableReader:
        """A reader of `table`, found at `prefix` in this file (``""`` for the top level)."""
        return TableReader(self, table, prefix)

    def expand_path(self, key: str, raw: str) -> Path:
        """Expand ``$VAR``/``${VAR}`` and ``~``, anchor relative paths at the config's directory."""
        if not raw.strip():
            self.fail(key, "must not be empty")
        if "\x00" in raw:
            self.fail(key, "must not contain NUL")

        def substitute(m: re.Match[str]) -> str:
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if not ENV_NAME.fullmatch(name):
                self.fail(key, f"${{{name}}} is not a variable reference syntax syncd expands")
            value = self.env.get(name, "")
            if not value:
                self.fail(key, f"environment variable ${name} is not set or empty")
            return value

        expanded = _VAR_REF.sub(substitute, raw)
        if expanded == "~" or expanded.startswith("~/"):
            home = self.env.get("HOME") or os.path.expanduser("~")
            expanded = home + expanded[1:]
        elif expanded.startswith("~"):
            expanded = os.path.expanduser(expanded)
            if expanded.startswith("~"):
                self.fail(key, f"cannot expand {expanded.split('/')[0]!r}: no such user")
        return Path(os.path.normpath(self.path.parent / expanded))


class TableReader:
    """One table of the config, read key by key; every refusal names ``prefix.key``."""

    def __init__(self, source: ConfigSource, table: Mapping[str, object], prefix: str) -> None:
        self.source = source
        self.table = table
        self.prefix = prefix

    def key(self, key: str) -> str:
        """The full key path of `key` in this table, as messages spell it."""
        shown = toml_key(key)
        return f"{self.prefix}.{shown}" if self.prefix else shown

    def fail(self, key: str, what: str) -> NoReturn:
        """Raise the `ConfigError` for `key` of this table."""
        self.source.fail(self.key(key), what)

    def has(self, key: str) -> bool:
        return key in self.table

    def only(self, keys: Iterable[str]) -> TableReader:
        """This table seen through `keys` alone: another key reads as absent."""
        wanted = set(keys)
        return TableReader(self.source, {k: v for k, v in self.table.items() if k in wanted}, self.prefix)

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse the first key not in `known`, with a hint when one is close (or a secret)."""
        known = tuple(known)
        for key in self.table:
            if key not in known:
                hint = ""
                if key in _SECRET_KEYS:
                    hint = " (secrets never go in the file: set api_key_env to a variable's name)"
                elif close := difflib.get_close_matches(key, known, n=1):
                    hint = f" (did you mean {close[0]!r}?)"
                self.fail(key, f"unknown key{hint}")

    def sub(self, key: str) -> TableReader:
        """The table under `key` (empty when absent)."""
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            path = self.key(key)
            self.source.fail(path, f"must be a table, [{path}] (got {describe(value)})")
        return TableReader(self.source, value, self.key(key))

    # -- typed getters ------------------------------------------------------------------

    def string(self, key: str, default: str | None, *, secret: bool = False) -> str | None:
        """An optional string; `secret`: never echo what was found instead."""
        value = self.table.get(key, default)
        if value is not None and not isinstance(value, str):
            self.fail(key, f"must be a string (got {describe(value, secret=secret)})")
        return value

    def text(self, key: str) -> str:
        """A required, non-empty string."""
        if key not in self.table:
            self.fail(key, "missing")
        value = self.table[key]
        if key.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
            # TOML reads `user_id = 114514` as a number; ids are strings on the wire.
            self.fail(key, f'must be a string (got integer {value}); quote it: "{value}"')
        if not isinstance(value, str):
            self.fail(key, f"must be a string (got {describe(value)})")
        if not value.strip():
            self.fail(key, "must not be empty")
        return value

    def choice(self, key: str, choices: tuple[_C, ...], default: _C | Required) -> _C:
        """One of `choices`, spelled exactly."""
        value = self.table.get(key, default)
        if value is REQUIRED:
            self.fail(key, f"missing (one of {', '.join(choices)})")
        for choice in choices:
            if value == choice:
                return choice
        self.fail(key, f"must be one of {', '.join(choices)} (got {describe(value, bare=True)})")

    def flag(self, key: str, default: bool) -> bool:
        """A TOML boolean."""
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false (got {describe(value)})")
        return value

    def integer(self, key: str, default: int, *, lo: int, hi: int | None = None) -> int:
        """A TOML integer from `lo` to `hi` (no upper bound when None)."""
        value = self.table.get(key, default)
        # bool is an int subclass in Python, but `workers = true` is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer (got {describe(value)})")
        if value < lo or (hi is not None and value > hi):
            bounds = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            self.fail(key, f"must be {bounds} (got {value})")
        return value

    def seconds(self, key: str, default: float, *, positive: bool) -> float:
        """A finite, non-negative number of seconds (an integer or a float); `positive`: above 0."""
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number of seconds (got {describe(value)})")
        number = float(value)
        if not math.isfinite(number):
            self.fail(key, f"must be a finite number (got {value})")
        if positive and number <= 0:
            self.fail(key, f"must be greater than 0 (got {value})")
        if number < 0:
            self.fail(key, f"must be 0 or more (got {value})")
        return number

    def url(self, key: str) -> str | None:
        """An http(s) base URL without credentials, query or fragment, trailing ``/`` dropped;
        None when absent. Messages never echo the URL: it may carry a token."""
        url = self.string(key, None)
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.fail(key, "is not a valid URL")
        if parts.scheme not in ("http", "https") or not host:
            self.fail(key, "must be an http:// or https:// URL with a host, e.g. https://files.example.com")
        if parts.username is not None or parts.password is not None:
            self.fail(key, "must not contain a user name or password (use api_key_env for the secret)")
        if parts.query or parts.fragment:
            self.fail(key, "must be a base URL without a query (?...) or fragment (#...)")
        return url.rstrip("/")

    def env_name(self, key: str) -> str | None:
        """The name of the environment variable (or systemd credential) holding a secret; None
        when absent. Never echoes the value: people paste the secret itself here."""
        var = self.string(key, None, secret=True)
        if var is not None and not ENV_NAME.fullmatch(var):
            self.fail(
                key,
                "must be the name of an environment variable (letters, digits and '_',"
                " not starting with a digit), not the secret itself",
            )
        return var

    def path(self, key: str) -> Path:
        """A required path, expanded (see `ConfigSource.expand_path`)."""
        return self.source.expand_path(self.key(key), self.text(key))


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}


def describe(value: object, *, bare: bool = False, secret: bool = False) -> str:
    """A value as TOML would name it, for 'got ...' in messages; `secret`: the type alone."""
    kind = _TOML_TYPES.get(type(value), "date/time")
    if secret or isinstance(value, list | dict):
        return kind
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    if len(text) > 60:
        text = text[:57] + "..."
    return text if bare else f"{kind} {text}"


def toml_key(key: str) -> str:
    """`key` as it would be written in a TOML dotted key: bare if it can be, else quoted."""
    if _BARE_KEY.fullmatch(key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
