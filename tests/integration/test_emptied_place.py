"""A remote place that lists nothing although files were synced there pauses its folder (SPEC,
"A gone or emptied remote place"): read as deletions, it would trash every local file."""

from __future__ import annotations

from pathlib import Path

from bdd_file import BddFileClient

from tests.support.syncd_cli import reconcile, write_config


def test_an_emptied_chat_pauses_the_folder_and_deletes_nothing(
    tmp_path: Path, server_url: str, sdk: BddFileClient
) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    files = {f"n{i}.txt": f"note {i}".encode() for i in range(3)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", url=server_url,
                          folders=[{"name": "f", "path": folder, "chat_id": "emptied", "delete": True,
                                    "max_delete": 100}])
    assert reconcile(config).code == 0
    for info in sdk.list_chat_files(chat_id="emptied"):
        sdk.delete(file_id=info.id)  # someone cleared the chat

    paused = reconcile(config)
    assert paused.code == 1
    assert "lists no files" in paused.folder("f")["blocked"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == files
    assert not any((folder / ".syncd" / "trash").rglob("*.txt"))

    # On purpose after all: a rebuilt journal makes it a first sync, which deletes nothing.
    rebuilt = reconcile(config, "--rebuild-journal")
    assert rebuilt.code == 0, rebuilt.stderr
    assert sorted(i.filename for i in sdk.list_chat_files(chat_id="emptied")) == sorted(files)
