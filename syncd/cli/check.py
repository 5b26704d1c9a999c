"""`syncd check [--json]`: everything a run needs, checked in the order a run needs it.

1. ``config``: the file loads (a mistake is a config error: exit 2, the message names the key);
2. ``secret``: every variable (or systemd credential) a used remote names for a secret is
   set; a missing one is a failed check like any other, never an ``ok`` followed by an error;
3. ``folder``: each folder's path exists, or will be created on the first run because its
   parent exists (`syncd.sync.firstrun`); a folder that has synced before must be there;
4. ``remote``: each folder's remote, probed at the folder's place: reachable, authorised, can
   list. A remote whose secret is missing is not probed (its check fails, saying why).

Every check is printed as it completes, one line each with ``ok`` or ``FAILED``; ``--json``
prints one document instead: ``{"ok", "config", "checks": [{"check", "name", "ok",
"detail"}]}``. Exit 0 when every check passed, 1 when one failed. Secrets are read to see
that they are there, never shown: messages name the config key and the variable only.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.cli.logs import configure as configure_logs
from syncd.cli.parser import log_level
from syncd.config import MARKER_DIR, Config, find_config_path, load_config, read_secret
from syncd.config.reader import toml_key
from syncd.core.words import counted
from syncd.errors import ConfigError, FatalError, SyncdError, TransientError
from syncd.remote import kinds
from syncd.sync.firstrun import missing_parent, not_created

CheckKind = Literal["config", "secret", "folder", "remote"]


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome. `detail` says what was seen or what is wrong (JSON and humans);
    `label` is what the human line starts with, `said` its detail when that differs."""

    check: CheckKind
    name: str
    ok: bool
    detail: str
    label: str
    said: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "name": self.name, "ok": self.ok, "detail": self.detail}

    def line(self) -> str:
        said = self.detail if self.said is None else self.said
        return escaped(f"{self.label} ok ({said})" if self.ok else f"{self.label} FAILED: {said}")


def escaped(text: str) -> str:
    """`text` with control characters (a newline in a path) written as escapes: one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def command(args: argparse.Namespace) -> int:
    path: Path | None = None
    try:
        path = find_config_path(args.config)
        config = load_config(path)
    except ConfigError as exc:
        if args.json:  # the document still says what failed; the message goes to stderr (exit 2)
            failed = Check("config", str(path or ""), False, str(exc), "config")
            print(json.dumps(document(path, [failed]), ensure_ascii=False))
        raise
    # Retries while probing are logged like any command's; stdout is the report.
    configure_logs(config.daemon.log_format, log_level(args, "error" if args.json else "warning"))
    checks: list[Check] = []
    for check in run_checks(config):
        checks.append(check)
        if not args.json:
            print(check.line(), flush=True)
    if args.json:
        print(json.dumps(document(config.path, checks), ensure_ascii=False))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


def document(path: Path | None, checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok for c in checks), "config": str(path) if path else None,
            "checks": [c.as_json() for c in checks]}


def run_checks(config: Config) -> Iterator[Check]:
    """The checks, in order, each yielded as soon as it is known."""
    yield Check("config", str(config.path), True,
                f"{counted(len(config.folders), 'folder')}, {counted(len(config.remotes), 'remote')}",
                f"config {config.path}")
    lacking: dict[str, str] = {}  # remote -> the key of a secret it lacks
    for remote, key, var in named_secrets(config):
        check = secret_check(remote, key, var)
        if not check.ok:
            lacking.setdefault(remote, check.name)
        yield check
    has_synced = synced_folders(config)
    for i, folder in enumerate(config.folders):
        yield folder_check(i, folder.name, folder.path, has_synced(folder.name))
    yield from probe_remotes(config, lacking)


def named_secrets(config: Config) -> list[tuple[str, str, str]]:
    """(remote, key, variable) of every secret a remote some folder uses names.

    A remote key ending in ``_env`` names a secret's variable (`TableReader.env_name` reads
    every one of them); it is read back from the file, which just loaded, because the parsed
    settings are the kind's own and spell their fields as they like."""
    with open(config.path, "rb") as fh:
        tables = tomllib.load(fh).get("remotes", {})
    used = {f.remote for f in config.folders}
    found = []
    for name, remote in config.remotes.items():
        table = tables.get(name, {})
        if name not in used:
            continue
        for key in kinds.get(remote.kind).remote_keys:
            var = table.get(key)
            if key.endswith("_env") and isinstance(var, str):
                found.append((name, key, var))
    return found


def secret_check(remote: str, key: str, var: str) -> Check:
    full = f"remotes.{toml_key(remote)}.{key}"
    try:
        read_secret(var, key=full)
    except ConfigError as exc:
        return Check("secret", full, False, str(exc).removeprefix(f"{full}: "), f"secret {full}")
    return Check("secret", full, True, f"{var} is set", f"secret {full}")


def synced_folders(config: Config) -> Callable[[str], bool]:
    """Whether a folder has synced before (the journal tracks files of it), read without the
    writer lock, next to a running daemon too; nothing has synced without a state database."""
    from syncd.state.db import open_state

    if not (config.daemon.state_dir / "syncd.db").exists():
        return lambda name: False
    state = open_state(config.daemon.state_dir, writer=False)
    try:
        tracked = {f.name for f in config.folders if state.journal_count(f.name) > 0}
    finally:
        state.close()
    return tracked.__contains__


def folder_check(index: int, name: str, path: Path, synced: bool) -> Check:
    """Whether a pass could use the folder at `path` (see the module's doc)."""

    def result(ok: bool, what: str) -> Check:
        return Check("folder", name, ok, f"{path}: {what}", f"{name}: folder {path}", what)

    if os.path.lexists(path) and not path.is_dir():
        return result(False, "not a directory")
    if path.is_dir():
        if synced and not (path / MARKER_DIR).is_dir():
            return result(False, f"its {MARKER_DIR} marker is missing (an empty mount point?); syncd pauses "
                                 "a folder that has synced before until its marker is back")
        return result(True, "exists")
    if synced:
        return result(False, "missing (a disk not mounted, or a wrong path?); syncd pauses a folder that "
                             "has synced before until it is back")
    parent = missing_parent(path)
    if parent is not None:
        what = not_created(path, parent)
        return Check("folder", name, False, f"folders[{index}].path: {what}", f"{name}: folder {path}",
                     f"folders[{index}].path: {what}")
    return result(True, "missing; its parent exists, so the first run creates it")


def probe_remotes(config: Config, lacking: dict[str, str]) -> Iterator[Check]:
    """Reachable, authorised (and can list, where the remote lists): each remote, through each
    folder's place. Each remote is opened on its own, so one that cannot be opened fails its
    folders' checks alone."""
    from syncd.app import RemoteSet

    def result(folder: str, remote: str, ok: bool, what: str) -> Check:
        return Check("remote", folder, ok, f"remote {remote}: {what}", f"{folder}: remote {remote}", what)

    with ExitStack() as stack:
        remote_set = RemoteSet(config.daemon.state_dir, stack, probe=True)
        for name in dict.fromkeys(f.remote for f in config.folders):
            folders = tuple(f for f in config.folders if f.remote == name)
            if name in lacking:
                for folder in folders:
                    yield result(folder.name, name, False, f"not probed: the secret {lacking[name]} names is missing")
                continue
            try:
                client = remote_set.build(replace(config, folders=folders))[name]
            except (SyncdError, OSError) as exc:
                for folder in folders:
                    yield result(folder.name, name, False, f"cannot be opened: {exc}")
                continue
            for folder in folders:
                try:
                    seen = client.probe(folder.place)
                except FatalError as exc:
                    yield result(folder.name, name, False, f"refused us: {exc}")
                except TransientError as exc:
                    yield result(folder.name, name, False, f"unreachable: {exc}")
                except SyncdError as exc:
                    yield result(folder.name, name, False, str(exc))
                else:
                    yield result(folder.name, name, True, seen)
