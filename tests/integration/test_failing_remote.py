"""A remote that lists but fails every transfer (SPEC, "A failing remote").

The reference file service sits behind a `FaultProxy` that answers 500 to every upload and
download while passing listings through. `syncd reconcile` (a real subprocess) must give up
on that remote within two minutes with exit 1, keep every piece of work queued (pending, not
failed) and say, per item, that the remote is failing and the work will be retried; once the
proxy heals, the next `reconcile` finishes everything. The daemon stops sending the remote
work, says so in `status` (text and JSON) with the time it backs off until, and finishes the
work by itself once a probe transfer succeeds after the cool-down.

The give-up times are printed (`-s` shows them); the 2,000-item run is opt-in (`-m slow`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.support.chat import chat_files, local_files, put
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.faultproxy import FaultProxy, Respond, Seen
from tests.support.syncd_cli import Result, reconcile, run_syncd, write_config

#: The contract: `reconcile` against a failing remote ends within this many seconds.
GIVE_UP = 120.0
TRANSFERS = frozenset(
    {"/uploadSimpleFile", "/initMultipartUploadFile", "/uploadFilePart", "/completeMultipartUpload", "/downloadFile"}
)


def fail_transfers(seen: Seen) -> Respond | None:
    """500 to every upload and download; listings (and everything else) pass."""
    if seen.path in TRANSFERS:
        return Respond(500, b"internal error", {"Content-Type": "text/plain"})
    return None


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(server_url) as running:
        yield running


def configure(tmp_path: Path, url: str, folder: Path, chat: str) -> Path:
    folder.mkdir(exist_ok=True)
    return write_config(
        tmp_path / "c.toml", state_dir=tmp_path / "state", url=url, workers=4,
        folders=[{"name": "f", "path": folder, "chat_id": chat}],
    )


def status(config: Path) -> dict[str, object]:
    doc = run_syncd("status", "--json", "-c", config).doc
    assert doc is not None
    [folder] = doc["folders"]
    assert isinstance(folder, dict)
    return folder


def give_up(config: Path, what: str) -> tuple[float, Result]:
    """`syncd reconcile` against the failing remote; its wall time and result, printed."""
    started = time.monotonic()
    result = reconcile(config, timeout=GIVE_UP + 60)
    elapsed = time.monotonic() - started
    print(f"\ngive-up time, {what}: {elapsed:.1f} s (exit {result.code})")
    return elapsed, result


def assert_given_up(elapsed: float, result: Result, names: set[str], config: Path) -> None:
    assert result.code == 1, result.stderr[-3000:]
    assert elapsed < GIVE_UP
    actions = result.folder("f").actions
    assert set(actions) == names
    for name, action in actions.items():
        assert action["status"] == "failed", action
        assert "remote r is failing" in action["error"] and "will retry" in action["error"], (name, action)
    row = status(config)
    assert (row["pending"], row["running"], row["failed"]) == (len(names), 0, 0)
    assert "remote r is failing" in str(row["last_error"]) and "until" in str(row["last_error"])


@pytest.mark.parametrize(
    "count",
    [200, pytest.param(3, marks=pytest.mark.slow), pytest.param(2000, marks=pytest.mark.slow)],
    ids=lambda n: f"{n} files",
)
@pytest.mark.timeout(600)
def test_reconcile_gives_up_on_a_remote_failing_every_upload_and_keeps_the_work(
    tmp_path: Path, proxy: FaultProxy, sdk: BddFileClient, count: int
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    names = {f"file-{i:04d}.txt" for i in range(count)}
    for name in names:
        (folder / name).write_text(f"content of {name}\n")
    config = configure(tmp_path, proxy.url, folder, "broken-up")
    proxy.rule = fail_transfers

    elapsed, result = give_up(config, f"{count} uploads")
    assert_given_up(elapsed, result, names, config)
    # The breaker held the work back: most files were never even tried.
    if count >= 200:
        assert proxy.count("/uploadSimpleFile") < count

    proxy.rule = None
    healed = reconcile(config, timeout=GIVE_UP)
    assert healed.code == 0, healed.stdout[-3000:] + healed.stderr[-3000:]
    assert chat_files(sdk, "broken-up") == local_files(folder)
    row = status(config)
    assert (row["pending"], row["failed"], row["last_error"]) == (0, 0, None)


@pytest.mark.timeout(600)
def test_reconcile_gives_up_on_a_remote_failing_every_download_and_keeps_the_work(
    tmp_path: Path, proxy: FaultProxy, sdk: BddFileClient
) -> None:
    names = {f"remote-{i:03d}.txt" for i in range(200)}
    for name in names:
        put(sdk, "broken-down", name, f"remote {name}\n".encode())
    folder = tmp_path / "f"
    config = configure(tmp_path, proxy.url, folder, "broken-down")
    proxy.rule = fail_transfers

    elapsed, result = give_up(config, "200 downloads")
    assert_given_up(elapsed, result, names, config)
    assert proxy.count("/downloadFile") < len(names)
    assert local_files(folder) == {}

    proxy.rule = None
    healed = reconcile(config, timeout=GIVE_UP)
    assert healed.code == 0, healed.stdout[-3000:] + healed.stderr[-3000:]
    assert local_files(folder) == chat_files(sdk, "broken-down")
    assert status(config)["pending"] == 0


@pytest.mark.timeout(300)
def test_the_daemon_backs_off_a_failing_remote_shows_it_in_status_and_recovers(
    tmp_path: Path, proxy: FaultProxy, sdk: BddFileClient
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    names = {f"d-{i:02d}.txt" for i in range(12)}
    for name in names:
        (folder / name).write_text(name)
    config = write_config(
        tmp_path / "c.toml", state_dir=tmp_path / "state", url=proxy.url, workers=4,
        daemon={"poll_interval": 1, "rescan_interval": 3600},
        folders=[{"name": "f", "path": folder, "chat_id": "broken-daemon"}],
    )
    proxy.rule = fail_transfers
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()

        def failing_and_settled() -> dict[str, object] | None:
            row = status(config)
            return row if "remote r is failing" in str(row["last_error"]) and row["running"] == 0 else None

        failing = wait_for(failing_and_settled, timeout=GIVE_UP, what="status to show the failing remote")
        assert "until" in str(failing["last_error"])
        assert failing["pending"] == len(names) and failing["failed"] == 0  # kept, none given up
        text = run_syncd("status", "-c", config)
        assert text.code == 0
        assert "remote r is failing" in text.stdout and "until" in text.stdout, text.stdout
        assert daemon.find("remote failing")  # logged once when it opened

        # Backing off: while the cool-down lasts no transfer is sent (a closed breaker would keep
        # every worker retrying), while the poller's listings still go through.
        sent = proxy.count("/uploadSimpleFile")
        seen_before = proxy.count()
        wait_for(lambda: proxy.count() >= seen_before + 2, what="two more listings by the poller")
        assert proxy.count("/uploadSimpleFile") == sent

        proxy.rule = None  # healed: after the cool-down one probe succeeds, and the rest follows
        wait_for(lambda: set(chat_files(sdk, "broken-daemon")) == names, timeout=120, what="every upload")
        wait_for(lambda: status(config)["last_error"] is None, what="status to clear")
        assert daemon.find("remote recovered")
        assert chat_files(sdk, "broken-daemon") == local_files(folder)
    finally:
        daemon.stop()
