"""Shared fixtures: a real reference file service on loopback, and the published SDK pointed at it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from bdd_file import BDD_FILE_PROFILES, BddFileClient

from syncd.server.app import build_app
from syncd.server.runner import ServerThread


@pytest.fixture
def server_data(tmp_path: Path) -> Path:
    data = tmp_path / "server-data"
    data.mkdir()
    return data


@pytest.fixture
def file_server(server_data: Path) -> Iterator[ServerThread]:
    """`syncd serve` running in-process on a free loopback port; `.url` is its base URL."""
    with ServerThread(build_app(server_data)) as server:
        yield server


@pytest.fixture
def server_url(file_server: ServerThread) -> str:
    return file_server.url


@pytest.fixture
def sdk(server_url: str) -> Iterator[BddFileClient]:
    """The published SDK (the other client) pointed at the test server, as user `u`."""
    profile = f"syncd-tests-{id(server_url)}"
    BDD_FILE_PROFILES[profile] = server_url
    yield BddFileClient(profile=profile, default_user_id="u", default_biz="chat")
    del BDD_FILE_PROFILES[profile]


@pytest.fixture
def short_home() -> Iterator[Path]:
    """A home directory others may enter (like most homes: mode 0755) with a path short enough
    for a Unix socket deep inside it (pytest's own tmp paths may not be)."""
    with tempfile.TemporaryDirectory(prefix="sd-", dir="/tmp") as base:
        home = Path(base)
        home.chmod(0o755)
        yield home
