"""The configuration's values: frozen dataclasses, built once by the loader (`loader.py`).

What is common to every remote and folder lives here; what a remote kind adds is the kind's
own frozen dataclass (`RemoteConfig.settings`) and an opaque string naming the folder's place
on the remote (`FolderConfig.place`), both parsed by the kind (`syncd.remote.kind`).

Secrets never pass through here: a remote names the environment variable (or systemd
credential) that holds a secret, and `RemoteConfig.secret()` reads it only when a client is
built. Nothing in these dataclasses, their reprs or the error messages can carry a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, NoReturn, get_args

from syncd.config.secrets import read_secret
from syncd.errors import ConfigError

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
Mode = Literal["two-way", "upload", "download"]
ConflictPolicy = Literal["keep-both", "local-wins", "remote-wins", "newer-wins"]
AfterUploadAction = Literal["keep", "delete", "move"]

LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
MODES: tuple[Mode, ...] = get_args(Mode)
CONFLICT_POLICIES: tuple[ConflictPolicy, ...] = get_args(ConflictPolicy)

#: The directory syncd keeps inside every synced folder (marker, tmp, trash).
MARKER_DIR = ".syncd"
#: The last place `find_config_path()` looks.
SYSTEM_CONFIG = Path("/etc/syncd/config.toml")

MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class AfterUpload:
    """What an `upload` folder does with a file once it is uploaded.

    `dir` is set only for ``move``: a relative path inside the folder.
    """

    action: AfterUploadAction = "keep"
    dir: str | None = None

    @classmethod
    def parse(cls, text: str) -> AfterUpload:
        """Parse ``keep``, ``delete`` or ``move:DIR``; ValueError says what is wrong."""
        if text == "keep":
            return cls("keep")
        if text == "delete":
            return cls("delete")
        if text == "move" or text.startswith("move:"):
            return cls("move", _move_dir(text[5:]))
        raise ValueError(f'must be one of keep, delete, "move:DIR" (got {text!r})')

    def target(self, folder: Path) -> Path | None:
        """The directory files are moved to, for ``move``; otherwise None."""
        return folder / self.dir if self.action == "move" and self.dir else None

    def __str__(self) -> str:
        return f"move:{self.dir}" if self.action == "move" else self.action


def _move_dir(raw: str) -> str:
    # The target must stay inside the folder and out of syncd's own marker;
    # a subdirectory is never synced itself, so moved files are done for good.
    if not raw.strip():
        return _bad_move('needs a directory: "move:DIR"')
    if "\\" in raw or "\x00" in raw:
        return _bad_move(f"directory must be a relative path with '/' separators (got {raw!r})")
    pure = PurePosixPath(raw)
    if pure.is_absolute() or raw.startswith("~"):
        return _bad_move(f"directory must be relative to the folder (got {raw!r})")
    if ".." in pure.parts:
        return _bad_move(f"directory must stay inside the folder, without '..' (got {raw!r})")
    if not pure.parts:
        return _bad_move(f"directory must not be the folder itself (got {raw!r})")
    if pure.parts[0] == MARKER_DIR:
        return _bad_move(f"directory must not be inside {MARKER_DIR}/ (got {raw!r})")
    return str(pure)


def _bad_move(reason: str) -> NoReturn:
    raise ValueError(f"move {reason}")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The ``[daemon]`` table."""

    state_dir: Path
    workers: int = 4
    #: Threads in all, counting `workers`: the rest take only small jobs (`sync/lanes.py`).
    small_transfers: int = 16
    poll_interval: float = 30.0
    rescan_interval: float = 3600.0
    settle: float = 1.0
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """One ``[remotes.NAME]`` table: the keys every kind has, and the kind's own `settings`.

    `settings` is the frozen dataclass the kind's `parse_remote` returned; only that kind reads
    it. Two equal RemoteConfigs open equal remotes, so a reload keeps the client of a remote
    whose table did not change (`settings` compares by value; `config_path` not at all).
    """

    name: str
    kind: str
    settings: object
    timeout: float = 60.0
    requests_per_minute: int = 0
    #: The file this came from, for error messages only.
    config_path: Path | None = field(default=None, repr=False, compare=False)

    def secret(self, key: str, var: str | None, env: Mapping[str, str] = os.environ) -> str | None:
        """The secret held in `var`, the variable this remote's `key` (e.g. ``api_key_env``)
        names, read now (see `read_secret`); None when the remote names none.

        Raises ConfigError naming ``remotes.NAME.KEY`` and the variable, never a value."""
        if var is None:
            return None
        return read_secret(var, key=f"remotes.{self.name}.{key}", source=self.config_path, env=env)


@dataclass(frozen=True, slots=True)
class FolderConfig:
    """One ``[[folders]]`` entry.

    `place` is where the folder lives on its remote, as the remote's kind parsed it from its
    place keys: an opaque string only that kind reads back."""

    name: str
    path: Path
    remote: str
    place: str
    mode: Mode = "two-way"
    delete: bool = False
    max_delete: int = 50
    conflict: ConflictPolicy = "keep-both"
    after_upload: AfterUpload = AfterUpload()
    ignore: tuple[str, ...] = ()
    recursive: bool = False
    #: Days the trash keeps replaced and deleted content (`syncd.local.trash`); 0: for ever.
    trash_days: int = 30


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated configuration."""

    path: Path
    daemon: DaemonConfig
    remotes: Mapping[str, RemoteConfig]
    folders: tuple[FolderConfig, ...]

    def folder(self, name: str) -> FolderConfig:
        """The folder called `name`; ConfigError listing the known names if there is none."""
        for folder in self.folders:
            if folder.name == name:
                return folder
        known = ", ".join(f.name for f in self.folders) or "none"
        raise ConfigError(f"{self.path}: no folder named {name!r} (configured: {known})")


