"""What several commands share: finding and loading the config, choosing folders."""

from __future__ import annotations

import argparse

from syncd.config import Config, FolderConfig, find_config_path, load_config


def config_of(args: argparse.Namespace) -> Config:
    return load_config(find_config_path(args.config))


def folders_of(config: Config, names: list[str] | None) -> list[FolderConfig]:
    """The folders named (each must exist: a ConfigError lists the known ones), or all."""
    return [config.folder(n) for n in names] if names else list(config.folders)
