"""Loading the config file: TOML in, a validated `Config` out, or the first mistake as a
`ConfigError` reading ``FILE: KEY.PATH: what is wrong``, e.g. ``config.toml: folders[1].mode:
must be one of two-way, upload, download (got 'mirror')``. Folder indexes count from 0.

The loader reads the keys every remote and folder has; everything else goes through the remote's
kind, found in the registry (`syncd.remote.kinds`, read at each load) by the remote's ``kind``
key, so this module names no kind. A table's keys are checked twice:
1. before anything else, against the common keys and every registered kind's keys, so a typo
   is an "unknown key" with a suggestion, whatever else is wrong;
2. once the kind is known, a key of another kind is refused as not belonging to this one.
A kind's parser then sees only its own keys (`TableReader.only`).
"""

from __future__ import annotations

import os
import re
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path

from syncd.config.locate import default_state_dir
from syncd.config.model import (
    CONFLICT_POLICIES,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_WORKERS,
    MODES,
    AfterUpload,
    Config,
    DaemonConfig,
    FolderConfig,
    RemoteConfig,
)
from syncd.config.reader import REQUIRED, ConfigSource, TableReader, describe, toml_key
from syncd.core.names import unsafe_reason
from syncd.errors import ConfigError
from syncd.local.ignore import pattern_problem
from syncd.remote.base import Capability
from syncd.remote.kind import RemoteKind


def load_config(path: Path, env: Mapping[str, str] = os.environ) -> Config:
    """Read, parse and validate the config file at `path`."""
    shown = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    # Imported here, not at the top: the kinds import this package's reader and model.
    from syncd.remote.kinds import KINDS

    return _Loader(ConfigSource(Path(os.path.abspath(path)), shown, env), KINDS).config(data)


_TOP_KEYS = ("daemon", "remotes", "folders")
# The common keys of each table are its dataclass's fields, so the two cannot drift.
_DAEMON_KEYS = tuple(f.name for f in fields(DaemonConfig))
_REMOTE_KEYS = tuple(f.name for f in fields(RemoteConfig) if f.name not in ("name", "settings", "config_path"))
_FOLDER_KEYS = tuple(f.name for f in fields(FolderConfig) if f.name != "place")
_REMOTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _remote_keys(kind: RemoteKind) -> tuple[str, ...]:
    return kind.remote_keys


def _place_keys(kind: RemoteKind) -> tuple[str, ...]:
    return kind.place_keys


class _Loader:
    """Turns the parsed TOML into a `Config`, raising on the first mistake."""

    def __init__(self, source: ConfigSource, kinds: Mapping[str, RemoteKind]) -> None:
        self.source = source
        self.kinds = kinds

    def kind(self, name: str) -> RemoteKind:
        return self.kinds[name]

    def every_key(self, keys_of: Callable[[RemoteKind], tuple[str, ...]]) -> tuple[str, ...]:
        """The keys some kind takes, each once, in registry order."""
        return tuple(dict.fromkeys(key for kind in self.kinds.values() for key in keys_of(kind)))

    def owners(self, key: str, keys_of: Callable[[RemoteKind], tuple[str, ...]]) -> str:
        """The kinds that take `key`, for messages."""
        return ", ".join(kind.name for kind in self.kinds.values() if key in keys_of(kind))

    def config(self, data: dict[str, object]) -> Config:
        top = self.source.reader(data, "")
        top.check_keys(_TOP_KEYS)
        daemon = self.daemon(top.sub("daemon"))
        remotes = {name: self.remote(name, raw) for name, raw in top.sub("remotes").table.items()}
        raw_folders = data.get("folders", [])
        if not isinstance(raw_folders, list) or not all(isinstance(f, dict) for f in raw_folders):
            self.source.fail("folders", f"must be an array of tables, [[folders]] (got {describe(raw_folders)})")
        folders = tuple(self.folder(i, raw, remotes) for i, raw in enumerate(raw_folders))
        self.check_folder_paths(folders, daemon.state_dir)
        return Config(self.source.path, daemon, types.MappingProxyType(remotes), folders)

    def daemon(self, t: TableReader) -> DaemonConfig:
        t.check_keys(_DAEMON_KEYS)
        raw_state = t.string("state_dir", None)
        state_dir = (
            self.source.expand_path(t.key("state_dir"), raw_state)
            if raw_state is not None
            else Path(os.path.normpath(default_state_dir(self.source.env)))
        )
        return DaemonConfig(
            state_dir=state_dir,
            workers=t.integer("workers", 4, lo=1, hi=MAX_WORKERS),
            small_transfers=t.integer("small_transfers", 16, lo=1, hi=MAX_WORKERS),
            poll_interval=t.seconds("poll_interval", 30.0, positive=True),
            rescan_interval=t.seconds("rescan_interval", 3600.0, positive=True),
            settle=t.seconds("settle", 1.0, positive=False),
            log_format=t.choice("log_format", LOG_FORMATS, "auto"),
            log_level=t.choice("log_level", LOG_LEVELS, "info"),
        )

    def remote(self, name: str, raw: object) -> RemoteConfig:
        prefix = f"remotes.{toml_key(name)}"
        if not _REMOTE_NAME.fullmatch(name):
            self.source.fail(
                prefix,
                "remote names must be simple identifiers (letters, digits, '_' or '-',"
                " not starting with a digit or '-', at most 64 characters)",
            )
        if not isinstance(raw, dict):
            self.source.fail(prefix, f"must be a table, [{prefix}] (got {describe(raw)})")
        t = self.source.reader(raw, prefix)
        t.check_keys(_REMOTE_KEYS + self.every_key(_remote_keys))
        kind = self.kind(t.choice("kind", tuple(self.kinds), REQUIRED))
        for key in _foreign(t, _REMOTE_KEYS, kind.remote_keys):
            t.fail(
                key,
                f"does not belong to kind {kind.name} (it is a key of kind {self.owners(key, _remote_keys)});"
                f" a {kind.name} remote takes {_listed(kind.remote_keys)}",
            )
        settings = kind.parse_remote(t.only(kind.remote_keys))
        return RemoteConfig(
            name=name,
            kind=kind.name,
            settings=settings,
            timeout=t.seconds("timeout", 60.0, positive=True),
            requests_per_minute=t.integer("requests_per_minute", 0, lo=0),
            config_path=self.source.path,
        )

    def folder(self, i: int, raw: dict[str, object], remotes: Mapping[str, RemoteConfig]) -> FolderConfig:
        t = self.source.reader(raw, f"folders[{i}]")
        t.check_keys(_FOLDER_KEYS + self.every_key(_place_keys))
        path = t.path("path")
        name = t.string("name", None)
        if name is None:
            name = path.name
            if not name:
                t.fail("name", f"missing, and {str(path)!r} has no last component to use")
        bad = _unsafe_folder_name(name)
        if bad:
            t.fail("name", f"{bad} (got {name!r})")
        remote = t.text("remote")
        if remote not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            t.fail("remote", f"no remote named {remote!r} (defined: {known})")
        kind = self.kind(remotes[remote].kind)
        for key in _foreign(t, _FOLDER_KEYS, kind.place_keys):
            t.fail(
                key,
                f"does not belong to remote {remote!r} (kind {kind.name}): it is a place key of kind"
                f" {self.owners(key, _place_keys)}; a {kind.name} folder takes {_listed(kind.place_keys)}",
            )
        mode = t.choice("mode", MODES, "two-way")
        if mode not in kind.modes:
            t.fail("mode", f"remote {remote!r} (kind {kind.name}) cannot sync {mode!r} folders; its folders take"
                           f" mode = {' or '.join(repr(m) for m in kind.modes)}")
        after_raw = t.string("after_upload", "keep") or ""
        try:
            after = AfterUpload.parse(after_raw)
        except ValueError as exc:
            t.fail("after_upload", str(exc))
        if after.action != "keep" and mode != "upload":
            t.fail("after_upload", f'{str(after)!r} needs mode = "upload" (mode is {mode!r})')
        recursive = t.flag("recursive", False)
        if recursive and Capability.TREE not in kind.capabilities:
            t.fail(
                "recursive",
                f"remote {remote!r} (kind {kind.name}) has no folders, so only the top level"
                " of a folder can sync to it; remove the key or set it to false",
            )
        delete = t.flag("delete", False)
        if delete and mode != "download" and Capability.DELETE not in kind.capabilities:
            t.fail(
                "delete",
                f"remote {remote!r} (kind {kind.name}) cannot delete files, so a local deletion cannot be sent;"
                ' delete = true works only with mode = "download" (remote deletions then go to the local trash)',
            )
        return FolderConfig(
            name=name,
            path=path,
            remote=remote,
            place=kind.parse_place(t.only(kind.place_keys)),
            mode=mode,
            delete=delete,
            max_delete=t.integer("max_delete", 50, lo=0, hi=100),
            conflict=t.choice("conflict", CONFLICT_POLICIES, "keep-both"),
            after_upload=after,
            ignore=self.ignore_list(t.key("ignore"), raw.get("ignore", [])),
            recursive=recursive,
            trash_days=t.integer("trash_days", 30, lo=0),
        )

    def check_folder_paths(self, folders: tuple[FolderConfig, ...], state_dir: Path) -> None:
        # Compare resolved forms so symlinks and `..` cannot hide an overlap.
        fail = self.source.fail
        state = _resolved(state_dir)
        seen: list[tuple[FolderConfig, Path]] = []
        names: dict[str, int] = {}
        for i, folder in enumerate(folders):
            key = f"folders[{i}]"
            if folder.name in names:
                fail(
                    f"{key}.name",
                    f"{folder.name!r} is already used by folders[{names[folder.name]}]"
                    " (a folder without a name takes its path's last component)",
                )
            names[folder.name] = i
            here = _resolved(folder.path)
            if here == state:
                fail(f"{key}.path", f"{str(folder.path)!r} is daemon.state_dir; keep the two apart")
            if state in here.parents:
                fail(f"{key}.path", f"{str(folder.path)!r} is inside daemon.state_dir ({state_dir})")
            for j, (other, there) in enumerate(seen):
                if here == there:
                    fail(f"{key}.path", f"same folder as folders[{j}] ({other.name!r})")
                if there in here.parents:
                    fail(f"{key}.path", f"inside folders[{j}] ({other.name!r}); folders may not nest")
                if here in there.parents:
                    fail(f"{key}.path", f"contains folders[{j}] ({other.name!r}); folders may not nest")
            seen.append((folder, here))

    def ignore_list(self, path: str, value: object) -> tuple[str, ...]:
        """gitignore-style patterns, each compiled here so a bad one is named at start."""
        fail = self.source.fail
        if not isinstance(value, list):
            fail(path, f"must be a list of gitignore-style pattern strings (got {describe(value)})")
        for n, item in enumerate(value):
            if not isinstance(item, str):
                fail(f"{path}[{n}]", f"must be a string (got {describe(item)})")
            if not item:
                fail(f"{path}[{n}]", "must not be empty")
            problem = pattern_problem(item)
            if problem is not None:
                fail(f"{path}[{n}]", problem)
        return tuple(value)


def _foreign(t: TableReader, common: tuple[str, ...], own: tuple[str, ...]) -> Iterable[str]:
    """The keys of `t` that are neither common nor the kind's own (another kind's, after step 1)."""
    return [key for key in t.table if key not in common and key not in own]


def _listed(keys: tuple[str, ...]) -> str:
    return ", ".join(keys) if keys else "no other keys"


def _unsafe_folder_name(name: str) -> str | None:
    reason = unsafe_reason(name)
    if reason is None and name != name.strip():
        return "name has leading or trailing spaces"
    return reason


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the normalised form
        return path
