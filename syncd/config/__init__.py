"""The configuration file: TOML in, frozen dataclasses out, validated once.

`load_config()` is the only place that reads the file; every mistake becomes a `ConfigError`
naming the file and the key. The modules:

- `model`: the values (`Config`, `DaemonConfig`, `RemoteConfig`, `FolderConfig`, `AfterUpload`);
- `loader`: `load_config`, the common keys, and the dispatch of everything else to the remote's
  kind (`syncd.remote.kinds`);
- `reader`: typed getters over one TOML table, shared by the loader and the kinds;
- `secrets`: reading a secret whose variable the config names;
- `locate`: where the config file and the state are by default.
"""

from syncd.config.loader import load_config
from syncd.config.locate import default_state_dir, find_config_path
from syncd.config.model import (
    CONFLICT_POLICIES,
    LOG_FORMATS,
    LOG_LEVELS,
    MARKER_DIR,
    MAX_WORKERS,
    MODES,
    SYSTEM_CONFIG,
    AfterUpload,
    AfterUploadAction,
    Config,
    ConflictPolicy,
    DaemonConfig,
    FolderConfig,
    LogFormat,
    LogLevel,
    Mode,
    RemoteConfig,
)
from syncd.config.secrets import read_secret
from syncd.errors import ConfigError

__all__ = [
    "CONFLICT_POLICIES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MARKER_DIR",
    "MAX_WORKERS",
    "MODES",
    "SYSTEM_CONFIG",
    "AfterUpload",
    "AfterUploadAction",
    "Config",
    "ConfigError",
    "ConflictPolicy",
    "DaemonConfig",
    "FolderConfig",
    "LogFormat",
    "LogLevel",
    "Mode",
    "RemoteConfig",
    "default_state_dir",
    "find_config_path",
    "load_config",
    "read_secret",
]
