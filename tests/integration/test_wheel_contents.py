"""The built wheel carries the starter config, and an installed copy finds it: what a pipx
user runs `syncd init` from. Slow (it builds the wheel with pip, whose build step fetches
setuptools from the package index): opt in with `-m slow`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from syncd.cli.init import starter_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_wheel_ships_the_starter_config_and_init_reads_it_from_there(tmp_path: Path) -> None:
    # Built from a copy, so the build's by-products stay out of the checkout.
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(REPO / "syncd", source / "syncd", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)],
                   check=True, timeout=540)
    (wheel,) = wheels.glob("syncd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("syncd/data/config.example.toml") == starter_config()
        installed = tmp_path / "installed"
        zf.extractall(installed)

    # The installed copy alone (not the checkout) on the path: `syncd init` reads its own data.
    written = tmp_path / "out" / "config.toml"
    done = subprocess.run([sys.executable, "-m", "syncd", "init", str(written)], cwd=tmp_path, text=True,
                          capture_output=True, env={"PYTHONPATH": str(installed), "HOME": str(tmp_path)},
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert written.read_bytes() == starter_config()
    probe = subprocess.run([sys.executable, "-c", "import syncd; print(syncd.__file__)"], cwd=tmp_path, text=True,
                           capture_output=True, env={"PYTHONPATH": str(installed)}, check=True)
    assert probe.stdout.strip().startswith(str(installed))
