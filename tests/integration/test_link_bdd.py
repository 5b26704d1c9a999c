"""`syncd link` on a BDD folder: the service's own signed download URL for the synced version."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.syncd_cli import reconcile, run_syncd, write_config


def test_link_gives_the_services_signed_url_of_the_synced_version(tmp_path: Path, server_url: str) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(b"the synced notes")
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", url=server_url,
                          folders=[{"name": "f", "path": folder, "chat_id": "links"}])
    assert reconcile(config).code == 0
    made = run_syncd("link", "-c", config, folder / "notes.txt", "--expires", "120")
    assert made.code == 0, made.stderr
    assert httpx.get(made.stdout.strip()).content == b"the synced notes"  # no headers, no key
    # Edited but not synced yet: the link still serves what was synced.
    (folder / "notes.txt").write_bytes(b"edited, not synced")
    again = run_syncd("link", "-c", config, folder / "notes.txt")
    assert again.code == 0 and httpx.get(again.stdout.strip()).content == b"the synced notes"
