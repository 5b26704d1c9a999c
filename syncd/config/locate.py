"""Where the config file and the state live when nobody says: the XDG base directories."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from syncd.config.model import SYSTEM_CONFIG
from syncd.errors import ConfigError


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/syncd``, else ``~/.local/state/syncd``."""
    return _xdg_dir(env, "XDG_STATE_HOME", ".local/state") / "syncd"


def find_config_path(
    explicit: str | None, env: Mapping[str, str] = os.environ, *, system: Path = SYSTEM_CONFIG
) -> Path:
    """The config file to use: `explicit` (``-c``), ``$SYNCD_CONFIG``,
    ``$XDG_CONFIG_HOME/syncd/config.toml`` (default ``~/.config/...``), then `system`.

    A path that was given (``-c`` or ``$SYNCD_CONFIG``) must exist; otherwise the
    first default location that exists wins. ConfigError says where it looked.
    """
    given = [(explicit, "given with -c/--config"), (env.get("SYNCD_CONFIG"), "from $SYNCD_CONFIG")]
    for value, origin in given:
        if value:
            path = Path(value)
            if not path.is_file():
                what = "is not a file" if path.exists() else "not found"
                raise ConfigError(f"config file {what}: {path} ({origin})")
            return path
    candidates = [_xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "syncd" / "config.toml", system]
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise ConfigError(
        f"no config file found (looked in {looked}); pass -c/--config FILE or set $SYNCD_CONFIG"
    )


def _xdg_dir(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / fallback
