"""What the contract tests share: the fault proxy in front of the reference service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    """A `FaultProxy` in front of the test's `syncd serve`."""
    with FaultProxy(server_url) as running:
        yield running
