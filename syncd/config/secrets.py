"""Reading a secret whose *name* the config gives: the environment, else a systemd credential.

The config file only ever holds the name of a variable (``api_key_env = "SYNCD_WORK_API_KEY"``);
the secret is read when a client is built, never at load time, so a config can be checked
without its secrets. Messages name the config key and the variable, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from syncd.errors import ConfigError


def read_secret(var: str, *, key: str, source: Path | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The secret in `$var`, else in ``$CREDENTIALS_DIRECTORY/<var>`` (surrounding whitespace
    dropped); an empty value counts as not provided.

    `key` is the full config key that named `var` (``remotes.work.api_key_env``) and `source`
    the config file, both for the `ConfigError` raised when neither place provides it.
    """
    value = env.get(var, "")
    if value:
        return value
    where = f"{source}: " if source else ""
    cred_dir = env.get("CREDENTIALS_DIRECTORY", "")
    if cred_dir:
        cred = Path(cred_dir) / var
        try:
            secret = cred.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            secret = ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise ConfigError(f"{where}{key}: cannot read credential {cred}: {reason}") from None
        if secret:
            return secret
    raise ConfigError(
        f"{where}{key}: environment variable {var} is not set or empty"
        f" (and there is no systemd credential named {var})"
    )
