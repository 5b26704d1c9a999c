"""Fixtures of the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.support.box import Sync
from tests.support.watching import make as make  # the watcher tests' fixture


@pytest.fixture
def box(tmp_path: Path, server_url: str, sdk: BddFileClient) -> Sync:
    """Folder `f` synced with chat `chat-1` by the real `syncd reconcile`."""
    return Sync(tmp_path, server_url, sdk)
