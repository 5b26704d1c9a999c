"""Driving the real `syncd` command in a subprocess, the way cron or a script would.

`write_config` writes a TOML config for one remote and some folders;
`run_syncd` runs `python -m syncd ...` and returns its exit code, its output
and, when it printed JSON, the parsed document. `folder_report` picks one
folder out of a `reconcile --json` document and indexes its actions by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long one command may take before the test fails instead of hanging.
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Result:
    """What one `syncd` command did."""

    code: int
    stdout: str
    stderr: str
    doc: dict[str, Any] | None  # the JSON document, when stdout held one

    def folder(self, name: str) -> FolderResult:
        """The report of folder `name` in a `reconcile --json` document."""
        assert self.doc is not None, f"no JSON on stdout; stderr:\n{self.stderr}"
        for folder in self.doc["folders"]:
            if folder["name"] == name:
                return FolderResult(folder)
        raise AssertionError(f"folder {name!r} not in report: {self.doc}")


@dataclass(frozen=True)
class FolderResult:
    """One folder of a `reconcile --json` report."""

    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    @property
    def actions(self) -> dict[str, dict[str, Any]]:
        """The folder's actions by file name."""
        return {a["name"]: a for a in self.raw["actions"]}

    @property
    def pairs(self) -> set[tuple[str, str]]:
        """(name, action) of every reported action."""
        return {(a["name"], a["action"]) for a in self.raw["actions"]}

    def counts(self) -> dict[str, int]:
        """The totals, without the action list."""
        return {k: v for k, v in self.raw.items() if k not in ("name", "actions")}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_config(
    path: Path,
    *,
    state_dir: Path,
    url: str,
    folders: Sequence[Mapping[str, object]],
    settle: float = 0,
    workers: int = 2,
    user_id: str = "u",
    daemon: Mapping[str, object] | None = None,
    api_key_env: str | None = None,
    timeout: float = 10,
) -> Path:
    """A config with one `bdd` remote `r` at `url` and `folders` (each needs name, path, chat_id);
    `timeout` is the remote's, in seconds."""
    lines = [
        "[daemon]",
        f"state_dir = {_toml(state_dir)}",
        f"workers = {workers}",
        f"settle = {_toml(float(settle))}",
        'log_format = "json"',
        *(f"{key} = {_toml(value)}" for key, value in (daemon or {}).items()),
        "",
        "[remotes.r]",
        'kind = "bdd"',
        f"url = {_toml(url)}",
        f"user_id = {_toml(user_id)}",
        f"timeout = {_toml(timeout)}",
        *([f"api_key_env = {_toml(api_key_env)}"] if api_key_env else []),
    ]
    for folder in folders:
        lines += ["", "[[folders]]", 'remote = "r"']
        lines += [f"{key} = {_toml(value)}" for key, value in folder.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_syncd(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float | None = None, **popen: Any
) -> Result:
    """Run `python -m syncd ARGS` to completion (failing the test after `timeout` seconds, by
    default COMMAND_TIMEOUT as it is when called); parse stdout as JSON when it is JSON.

    `popen`: extra subprocess arguments (a `preexec_fn` that limits the child, ...)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SYNCD_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT if timeout is None else timeout,
        env=full_env,
        check=False,
        **popen,
    )
    doc: dict[str, Any] | None = None
    if proc.stdout.lstrip().startswith("{"):
        doc = json.loads(proc.stdout)
    return Result(proc.returncode, proc.stdout, proc.stderr, doc)


def reconcile(config: Path, *args: str, **popen: Any) -> Result:
    """`syncd reconcile --json -c CONFIG ARGS` (`popen`: as for `run_syncd`)."""
    return run_syncd("reconcile", "--json", "-c", config, *args, **popen)
