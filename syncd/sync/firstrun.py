"""A folder's first run: syncd creates a missing folder only inside a directory that exists.

A folder that has never synced may be missing: syncd creates it (and says so in the log). But
when its parent is missing too, the path most likely points at a disk that is not mounted (or
holds a typo), and creating the whole chain would start syncing into whatever file system lies
underneath, usually the root one. So that is refused, and named as the config key it is.

Which folders this applies to depends on the state, not the config file: a folder that has
synced before and whose path vanished is paused by the pass (`Passes.check_folder`) until the
path is back, exactly as an unmounted disk should be, and must never become a config error
(the daemon would refuse to start over a disk that is merely unplugged). Hence the check runs
where the state is open: at start-up (`syncd.app.open_app`, a `ConfigError`, exit 2) and in
each pass (a pause, for a folder added by a reload), not in the config loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from syncd.config import Config
from syncd.errors import ConfigError


def missing_parent(path: Path) -> Path | None:
    """`path`'s parent when neither `path` nor its parent directory exists; else None (the
    folder is there, or it can be created in its parent)."""
    if os.path.lexists(path):
        return None
    parent = path.parent
    return None if parent.is_dir() else parent


def not_created(path: Path, parent: Path) -> str:
    """Why a new folder at `path` is not created (its `parent` is missing)."""
    return (
        f"{path} does not exist and neither does its parent {parent} (a disk not mounted, or a wrong "
        f"path?); syncd creates a new folder only inside an existing directory: mount the disk, or "
        f"create {parent} first"
    )


def check_new_folders(config: Config, has_synced: Callable[[str], bool]) -> None:
    """Raise the `ConfigError` naming ``folders[N].path`` of the first folder that has never
    synced (`has_synced(name)` is False) and cannot be created, because its parent is missing."""
    for i, folder in enumerate(config.folders):
        parent = missing_parent(folder.path)
        if parent is not None and not has_synced(folder.name):
            raise ConfigError(f"{config.path}: folders[{i}].path: {not_created(folder.path, parent)}")
