"""`syncd init [FILE]`: write the commented starter config (the quickstart's) for a first run.

The text ships inside the package (`syncd/data/config.example.toml`, read through
`importlib.resources`), so a wheel or pipx install has it too. The file is created with
``O_EXCL``: an existing file (or a link, even a dangling one) is never overwritten, not even
by a second `init` racing this one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from syncd.cli.exits import EXIT_OK, EXIT_USAGE
from syncd.cli.parser import UsageError
from syncd.config.locate import _xdg_dir
from syncd.errors import ConfigError

#: Where the starter config lives inside the package.
STARTER = ("syncd.data", "config.example.toml")


def starter_config() -> bytes:
    """The starter config's text, as shipped."""
    package, name = STARTER
    return resources.files(package).joinpath(name).read_bytes()


def default_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where syncd looks first when no ``-c`` is given: ``$SYNCD_CONFIG``, else
    ``$XDG_CONFIG_HOME/syncd/config.toml`` (default ``~/.config/syncd/config.toml``)."""
    given = env.get("SYNCD_CONFIG")
    if given:
        return Path(given).expanduser()
    return _xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "syncd" / "config.toml"


def target_of(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Path:
    """FILE, else ``-c FILE``, else the default config path."""
    file, config = getattr(args, "file", None), getattr(args, "config", None)
    if file and config and Path(file) != Path(config):
        raise UsageError(f"init: two files given ({file} and -c {config}); give one")
    chosen = file or config
    return Path(chosen).expanduser() if chosen else default_path(env)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` holding `data`; FileExistsError if anything is already there. A write
    that fails half-way leaves no file behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def command(args: argparse.Namespace) -> int:
    path = target_of(args)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory {path.parent}: {exc.strerror or exc}") from None
    try:
        write_new(path, starter_config())
    except FileExistsError:
        print(f"syncd: {path} already exists; left as it is (edit it, or write a new one elsewhere: "
              f"syncd init FILE)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    option = "" if path == default_path() else f" -c {shlex.quote(str(path))}"
    print(f"wrote the starter config to {path}")
    print(f"next: syncd check{option} && syncd run{option}")
    return EXIT_OK
