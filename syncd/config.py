"""The configuration file: TOML in, frozen dataclasses out, validated once.

`load_config()` is the only place that reads the file. Every mistake becomes a
`ConfigError` whose message reads ``FILE: KEY.PATH: what is wrong``, e.g.
``config.toml: folders[1].mode: must be one of two-way, upload, download (got
'mirror')``. Folder indexes count from 0, in file order.

Secrets never pass through here: a remote names the environment variable (or
systemd credential) that holds its API key, and `RemoteConfig.api_key()` reads
it only when a client is built. Nothing in these dataclasses, their reprs or
the error messages can carry a secret.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Literal, NoReturn, TypeVar, get_args
from urllib.parse import urlsplit

from syncd.core.names import unsafe_reason
from syncd.errors import ConfigError
from syncd.local.ignore import pattern_problem

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
RemoteKind = Literal["embedded", "bdd"]
Mode = Literal["two-way", "upload", "download"]
ConflictPolicy = Literal["keep-both", "local-wins", "remote-wins", "newer-wins"]
AfterUploadAction = Literal["keep", "delete", "move"]

LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
REMOTE_KINDS: tuple[RemoteKind, ...] = get_args(RemoteKind)
MODES: tuple[Mode, ...] = get_args(Mode)
CONFLICT_POLICIES: tuple[ConflictPolicy, ...] = get_args(ConflictPolicy)

#: The directory syncd keeps inside every synced folder (marker, tmp, trash).
MARKER_DIR = ".syncd"
#: The last place `find_config_path()` looks.
SYSTEM_CONFIG = Path("/etc/syncd/config.toml")

MAX_WORKERS = 64
_REMOTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR_REF = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


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
    poll_interval: float = 30.0
    rescan_interval: float = 3600.0
    settle: float = 1.0
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """One ``[remotes.NAME]`` table. Holds the *name* of the secret, never the secret."""

    name: str
    kind: RemoteKind
    user_id: str
    url: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    requests_per_minute: int = 0
    #: The file this came from, for error messages only.
    config_path: Path | None = field(default=None, repr=False, compare=False)

    def api_key(self, env: Mapping[str, str] = os.environ) -> str | None:
        """The API key, read now: `$api_key_env`, else ``$CREDENTIALS_DIRECTORY/<api_key_env>``.

        None when the remote names no key. Raises ConfigError (naming the key and
        the variable, never a value) when it names one that is not provided.
        """
        var = self.api_key_env
        if var is None:
            return None
        value = env.get(var, "")
        if value:
            return value
        where = f"{self.config_path}: " if self.config_path else ""
        key = f"remotes.{self.name}.api_key_env"
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


@dataclass(frozen=True, slots=True)
class FolderConfig:
    """One ``[[folders]]`` entry."""

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


#: Remote kinds whose collections have folders, so that `recursive = true` can mean something.
#: A chat's file list (bdd, embedded) is one flat list of names.
TREE_KINDS: frozenset[str] = frozenset()


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


# -- finding and loading --------------------------------------------------------------


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
    return _Loader(Path(os.path.abspath(path)), shown, env).config(data)


# -- validation -----------------------------------------------------------------------

_TOP_KEYS = ("daemon", "remotes", "folders")
# The keys each table accepts are its dataclass's fields, so the two cannot drift.
_DAEMON_KEYS = tuple(f.name for f in fields(DaemonConfig))
_REMOTE_KEYS = tuple(f.name for f in fields(RemoteConfig) if f.name not in ("name", "config_path"))
#: The TOML keys of a folder: its fields, `place` spelled `chat_id` as the file has always said.
_FOLDER_KEYS = tuple("chat_id" if f.name == "place" else f.name for f in fields(FolderConfig))
_MISSING = object()
_C = TypeVar("_C", bound=str)


class _Loader:
    """Turns the parsed TOML into a `Config`, raising on the first mistake."""

    def __init__(self, path: Path, shown: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.shown = shown
        self.env = env

    def fail(self, key: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.shown}: {key}: {what}" if key else f"{self.shown}: {what}")

    def config(self, data: dict[str, object]) -> Config:
        self.check_keys("", data, _TOP_KEYS)
        daemon = self.daemon(self.table(data, "daemon", "daemon"))
        remotes_table = self.table(data, "remotes", "remotes")
        remotes = {name: self.remote(name, raw) for name, raw in remotes_table.items()}
        raw_folders = data.get("folders", [])
        if not isinstance(raw_folders, list) or not all(isinstance(f, dict) for f in raw_folders):
            self.fail("folders", f"must be an array of tables, [[folders]] (got {_describe(raw_folders)})")
        folders = tuple(self.folder(i, raw, remotes) for i, raw in enumerate(raw_folders))
        self.check_folder_paths(folders, daemon.state_dir)
        return Config(self.path, daemon, types.MappingProxyType(remotes), folders)

    def daemon(self, t: dict[str, object]) -> DaemonConfig:
        self.check_keys("daemon", t, _DAEMON_KEYS)
        raw_state = self.get_str(t, "daemon", "state_dir", None)
        state_dir = (
            self.path_value("daemon.state_dir", raw_state)
            if raw_state is not None
            else Path(os.path.normpath(default_state_dir(self.env)))
        )
        return DaemonConfig(
            state_dir=state_dir,
            workers=self.get_int(t, "daemon", "workers", 4, lo=1, hi=MAX_WORKERS),
            poll_interval=self.get_float(t, "daemon", "poll_interval", 30.0, positive=True),
            rescan_interval=self.get_float(t, "daemon", "rescan_interval", 3600.0, positive=True),
            settle=self.get_float(t, "daemon", "settle", 1.0, positive=False),
            log_format=self.get_choice(t, "daemon", "log_format", "auto", LOG_FORMATS),
            log_level=self.get_choice(t, "daemon", "log_level", "info", LOG_LEVELS),
        )

    def remote(self, name: str, raw: object) -> RemoteConfig:
        prefix = f"remotes.{_toml_key(name)}"
        if not _REMOTE_NAME.fullmatch(name):
            self.fail(
                prefix,
                "remote names must be simple identifiers (letters, digits, '_' or '-',"
                " not starting with a digit or '-', at most 64 characters)",
            )
        if not isinstance(raw, dict):
            self.fail(prefix, f"must be a table, [{prefix}] (got {_describe(raw)})")
        self.check_keys(prefix, raw, _REMOTE_KEYS)
        kind = self.get_choice(raw, prefix, "kind", _MISSING, REMOTE_KINDS)
        user_id = self.get_text(raw, prefix, "user_id")
        url = self.get_str(raw, prefix, "url", None)
        if kind == "bdd":
            if url is None:
                self.fail(f"{prefix}.url", "missing (a bdd remote needs the service's base URL)")
            url = self.check_url(f"{prefix}.url", url)
        elif url is not None:
            self.fail(f"{prefix}.url", "not allowed for an embedded remote (it runs in-process)")
        api_key_env = self.get_str(raw, prefix, "api_key_env", None, secret=True)
        if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
            # Never echo the value: people paste the key itself here.
            self.fail(
                f"{prefix}.api_key_env",
                "must be the name of an environment variable (letters, digits and '_',"
                " not starting with a digit), not the secret itself",
            )
        return RemoteConfig(
            name=name,
            kind=kind,
            user_id=user_id,
            url=url,
            api_key_env=api_key_env,
            timeout=self.get_float(raw, prefix, "timeout", 60.0, positive=True),
            requests_per_minute=self.get_int(raw, prefix, "requests_per_minute", 0, lo=0),
            config_path=self.path,
        )

    def folder(self, i: int, raw: dict[str, object], remotes: Mapping[str, RemoteConfig]) -> FolderConfig:
        prefix = f"folders[{i}]"
        self.check_keys(prefix, raw, _FOLDER_KEYS)
        path = self.path_value(f"{prefix}.path", self.get_text(raw, prefix, "path"))
        name = self.get_str(raw, prefix, "name", None)
        if name is None:
            name = path.name
            if not name:
                self.fail(f"{prefix}.name", f"missing, and {str(path)!r} has no last component to use")
        bad = _unsafe_folder_name(name)
        if bad:
            self.fail(f"{prefix}.name", f"{bad} (got {name!r})")
        remote = self.get_text(raw, prefix, "remote")
        if remote not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            self.fail(f"{prefix}.remote", f"no remote named {remote!r} (defined: {known})")
        mode = self.get_choice(raw, prefix, "mode", "two-way", MODES)
        after_raw = self.get_str(raw, prefix, "after_upload", "keep") or ""
        try:
            after = AfterUpload.parse(after_raw)
        except ValueError as exc:
            self.fail(f"{prefix}.after_upload", str(exc))
        if after.action != "keep" and mode != "upload":
            self.fail(f"{prefix}.after_upload", f'{str(after)!r} needs mode = "upload" (mode is {mode!r})')
        recursive = self.get_bool(raw, prefix, "recursive", False)
        if recursive and remotes[remote].kind not in TREE_KINDS:
            self.fail(
                f"{prefix}.recursive",
                f"remote {remote!r} (kind {remotes[remote].kind}) has no folders, so only the top level"
                " of a folder can sync to it; remove the key or set it to false",
            )
        return FolderConfig(
            name=name,
            path=path,
            remote=remote,
            place=self.get_text(raw, prefix, "chat_id"),
            mode=mode,
            delete=self.get_bool(raw, prefix, "delete", False),
            max_delete=self.get_int(raw, prefix, "max_delete", 50, lo=0, hi=100),
            conflict=self.get_choice(raw, prefix, "conflict", "keep-both", CONFLICT_POLICIES),
            after_upload=after,
            ignore=self.ignore_list(f"{prefix}.ignore", raw.get("ignore", [])),
            recursive=recursive,
        )

    def check_folder_paths(self, folders: tuple[FolderConfig, ...], state_dir: Path) -> None:
        # Compare resolved forms so symlinks and `..` cannot hide an overlap.
        state = _resolved(state_dir)
        seen: list[tuple[FolderConfig, Path]] = []
        names: dict[str, int] = {}
        for i, folder in enumerate(folders):
            key = f"folders[{i}]"
            if folder.name in names:
                self.fail(
                    f"{key}.name",
                    f"{folder.name!r} is already used by folders[{names[folder.name]}]"
                    " (a folder without a name takes its path's last component)",
                )
            names[folder.name] = i
            here = _resolved(folder.path)
            if here == state:
                self.fail(f"{key}.path", f"{str(folder.path)!r} is daemon.state_dir; keep the two apart")
            if state in here.parents:
                self.fail(f"{key}.path", f"{str(folder.path)!r} is inside daemon.state_dir ({state_dir})")
            for j, (other, there) in enumerate(seen):
                if here == there:
                    self.fail(f"{key}.path", f"same folder as folders[{j}] ({other.name!r})")
                if there in here.parents:
                    self.fail(f"{key}.path", f"inside folders[{j}] ({other.name!r}); folders may not nest")
                if here in there.parents:
                    self.fail(f"{key}.path", f"contains folders[{j}] ({other.name!r}); folders may not nest")
            seen.append((folder, here))

    # -- typed getters: each names the key and what it got ------------------------------

    def check_keys(self, prefix: str, table: Mapping[str, object], known: tuple[str, ...]) -> None:
        for key in table:
            if key not in known:
                hint = ""
                if key in ("api_key", "token", "password", "secret"):
                    hint = " (secrets never go in the file: set api_key_env to a variable's name)"
                elif close := difflib.get_close_matches(key, known, n=1):
                    hint = f" (did you mean {close[0]!r}?)"
                shown = _toml_key(key)
                self.fail(f"{prefix}.{shown}" if prefix else shown, f"unknown key{hint}")

    def table(self, parent: Mapping[str, object], key: str, path: str) -> dict[str, object]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.fail(path, f"must be a table, [{path}] (got {_describe(value)})")
        return value

    def get_str(
        self, t: Mapping[str, object], prefix: str, key: str, default: str | None, *, secret: bool = False
    ) -> str | None:
        value = t.get(key, default)
        if value is not None and not isinstance(value, str):
            self.fail(f"{prefix}.{key}", f"must be a string (got {_describe(value, secret=secret)})")
        return value

    def get_text(self, t: Mapping[str, object], prefix: str, key: str) -> str:
        """A required, non-empty string."""
        path = f"{prefix}.{key}"
        if key not in t:
            self.fail(path, "missing")
        value = t[key]
        if key.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
            # TOML reads `chat_id = 114514` as a number; ids are strings on the wire.
            self.fail(path, f'must be a string (got integer {value}); quote it: "{value}"')
        if not isinstance(value, str):
            self.fail(path, f"must be a string (got {_describe(value)})")
        if not value.strip():
            self.fail(path, "must not be empty")
        return value

    def get_choice(
        self, t: Mapping[str, object], prefix: str, key: str, default: object, choices: tuple[_C, ...]
    ) -> _C:
        path = f"{prefix}.{key}"
        value = t.get(key, default)
        if value is _MISSING:
            self.fail(path, f"missing (one of {', '.join(choices)})")
        for choice in choices:
            if value == choice:
                return choice
        self.fail(path, f"must be one of {', '.join(choices)} (got {_describe(value, bare=True)})")

    def get_bool(self, t: Mapping[str, object], prefix: str, key: str, default: bool) -> bool:
        value = t.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{prefix}.{key}", f"must be true or false (got {_describe(value)})")
        return value

    def get_int(
        self, t: Mapping[str, object], prefix: str, key: str, default: int, *, lo: int, hi: int | None = None
    ) -> int:
        path = f"{prefix}.{key}"
        value = t.get(key, default)
        # bool is an int subclass in Python, but `workers = true` is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer (got {_describe(value)})")
        if value < lo or (hi is not None and value > hi):
            bounds = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            self.fail(path, f"must be {bounds} (got {value})")
        return value

    def get_float(
        self, t: Mapping[str, object], prefix: str, key: str, default: float, *, positive: bool
    ) -> float:
        path = f"{prefix}.{key}"
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"must be a number of seconds (got {_describe(value)})")
        number = float(value)
        if not math.isfinite(number):
            self.fail(path, f"must be a finite number (got {value})")
        if positive and number <= 0:
            self.fail(path, f"must be greater than 0 (got {value})")
        if number < 0:
            self.fail(path, f"must be 0 or more (got {value})")
        return number

    def ignore_list(self, path: str, value: object) -> tuple[str, ...]:
        """gitignore-style patterns, each compiled here so a bad one is named at start."""
        if not isinstance(value, list):
            self.fail(path, f"must be a list of gitignore-style pattern strings (got {_describe(value)})")
        for n, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{path}[{n}]", f"must be a string (got {_describe(item)})")
            if not item:
                self.fail(f"{path}[{n}]", "must not be empty")
            problem = pattern_problem(item)
            if problem is not None:
                self.fail(f"{path}[{n}]", problem)
        return tuple(value)

    def check_url(self, path: str, url: str) -> str:
        # Messages avoid echoing the URL: it may carry credentials or a token.
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            self.fail(path, "is not a valid URL")
        if parts.scheme not in ("http", "https") or not host:
            self.fail(path, "must be an http:// or https:// URL with a host, e.g. https://files.example.com")
        if parts.username is not None or parts.password is not None:
            self.fail(path, "must not contain a user name or password (use api_key_env for the secret)")
        if parts.query or parts.fragment:
            self.fail(path, "must be a base URL without a query (?...) or fragment (#...)")
        return url.rstrip("/")

    def path_value(self, key: str, raw: str) -> Path:
        """Expand ``$VAR``/``${VAR}`` and ``~``, anchor relative paths at the config's directory."""
        if not raw.strip():
            self.fail(key, "must not be empty")
        if "\x00" in raw:
            self.fail(key, "must not contain NUL")

        def substitute(m: re.Match[str]) -> str:
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if not _ENV_NAME.fullmatch(name):
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


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}


def _describe(value: object, *, bare: bool = False, secret: bool = False) -> str:
    """A value as TOML would name it, for 'got ...' in messages."""
    kind = _TOML_TYPES.get(type(value), "date/time")
    if secret or isinstance(value, list | dict):
        return kind
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    if len(text) > 60:
        text = text[:57] + "..."
    return text if bare else f"{kind} {text}"


def _toml_key(key: str) -> str:
    """`key` as it would be written in a TOML dotted key: bare if it can be, else quoted."""
    if _BARE_KEY.fullmatch(key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def _xdg_dir(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / fallback
