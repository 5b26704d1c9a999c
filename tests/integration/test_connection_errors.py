"""A remote that cannot be reached is named in the error: an embedded remote whose service is
gone, by the Unix socket it was reached through (the HTTP kinds by URL: see
test_init_and_check.py and tests/unit/test_connection_messages.py)."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.errors import TransientError
from syncd.remote.bdd.embedded import start_embedded
from syncd.remote.bdd.kind import embedded_client

REPO = Path(__file__).resolve().parents[2]


def test_a_gone_embedded_service_is_named_by_its_socket(short_home: Path) -> None:
    config = load_config(REPO / "config.example.toml", env={"HOME": str(short_home)})
    folder = config.folders[0]
    with ExitStack() as stack:
        service = start_embedded(config.daemon.state_dir, stack)
        gave_up = threading.Event()
        gave_up.set()  # one attempt, no retries
        remote = embedded_client(config.remotes[folder.remote], service, abort=gave_up)
        assert remote.list(folder.place) == []
    # The stack stopped the service and removed its socket: the client cannot connect.
    try:
        with pytest.raises(TransientError) as caught:
            remote.list(folder.place)
    finally:
        remote.close()
    assert f"could not connect to embedded (unix socket {service.socket_path})" in str(caught.value)
