"""The starter config ships inside the package, so `syncd init` has it however syncd was
installed; the repository's top-level config.example.toml is the same file (a link)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from syncd.cli.init import starter_config
from syncd.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_the_starter_config_is_package_data() -> None:
    shipped = resources.files("syncd.data").joinpath("config.example.toml")
    assert shipped.is_file()
    assert starter_config() == shipped.read_bytes()
    with open(REPO / "pyproject.toml", "rb") as fh:
        package_data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]
    assert "config.example.toml" in package_data["syncd.data"]
    assert (REPO / "syncd" / "data" / "__init__.py").is_file()  # a package: found by packages.find


def test_the_top_level_example_is_a_link_to_it() -> None:
    top = REPO / "config.example.toml"
    assert top.is_symlink()
    assert top.resolve() == (REPO / "syncd" / "data" / "config.example.toml").resolve()
    assert top.read_bytes() == starter_config()


def test_the_starter_config_loads_and_its_folders_can_be_created_on_any_home(tmp_path: Path) -> None:
    # The first-run rule creates a folder only in an existing directory: every starter folder
    # sits directly in the home, which exists.
    config = load_config(REPO / "config.example.toml", env={"HOME": str(tmp_path)})
    assert config.folders and all(f.path.parent == tmp_path for f in config.folders)
    assert [r.kind for r in config.remotes.values()] == ["embedded"]
