"""What the unit tests of the state database and the queue share: a state dir and an open state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.state.db import State, open_state


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def state(state_dir: Path) -> Iterator[State]:
    with open_state(state_dir) as opened:
        yield opened
