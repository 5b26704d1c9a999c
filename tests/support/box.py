"""One folder synced with one chat through the real `syncd reconcile` (a subprocess), and both
sides looked at as they really are: the folder's files on disk, the chat through the published
SDK (the other client, which also changes the remote between passes)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from bdd_file import BddFileClient
from bdd_file.models import FileInfo

from tests.support.syncd_cli import FolderResult, Result, reconcile, write_config

CHAT = "chat-1"
FOLDER = "f"
COUNTS = ("uploaded", "downloaded", "deleted_local", "deleted_remote", "conflicts", "failed")


def conflicted_copy(stem: str, ext: str) -> re.Pattern[str]:
    return re.compile(re.escape(stem) + r" \(conflicted copy \d{4}-\d{2}-\d{2} \d{6}\)" + re.escape(ext))


class Sync:
    """One folder `f` synced with chat `chat-1` through the real `syncd reconcile`."""

    def __init__(self, tmp_path: Path, url: str, sdk: BddFileClient) -> None:
        self.tmp = tmp_path
        self.folder = tmp_path / "f"
        self.state_dir = tmp_path / "state"
        self.config = tmp_path / "syncd.toml"
        self.url = url
        self.sdk = sdk
        self.configure()

    def configure(self, *, settle: float = 0, url: str | None = None, **options: object) -> None:
        """(Re)write the config; `options` are keys of the folder's table."""
        folder = {"name": FOLDER, "path": self.folder, "chat_id": CHAT, **options}
        write_config(self.config, state_dir=self.state_dir, url=url or self.url, folders=[folder], settle=settle)

    def run(self, *args: str, **popen: Any) -> Result:
        """`syncd reconcile --json` (`popen`: extra subprocess arguments, as for `run_syncd`)."""
        return reconcile(self.config, *args, **popen)

    def sync(self, *args: str, **popen: Any) -> FolderResult:
        """A pass that must succeed (exit 0); its report of the folder."""
        result = self.run(*args, **popen)
        assert result.code == 0, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        assert result.doc is not None and result.doc["ok"] is True
        return result.folder(FOLDER)

    def assert_converged(self, unchanged: int | None = None) -> None:
        """A further pass plans nothing (SPEC, "Converges") and changes neither side."""
        before = (self.local(), self.remote_ids())
        report = self.sync()
        assert report["actions"] == []
        assert {k: report[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0)
        if unchanged is not None:
            assert report["unchanged"] == unchanged
        assert (self.local(), self.remote_ids()) == before

    # -- the local side -----------------------------------------------------------------------

    def write(self, name: str, data: bytes, *, mtime: float | None = None) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def local(self) -> dict[str, bytes]:
        """The folder's top-level regular files and their bytes (the marker left out)."""
        if not self.folder.is_dir():
            return {}
        return {
            p.name: p.read_bytes()
            for p in self.folder.iterdir()
            if p.name != ".syncd" and p.is_file() and not p.is_symlink()
        }

    def trash(self) -> list[tuple[str, bytes]]:
        """(name, bytes) of everything in `.syncd/trash/`, sorted."""
        trash = self.folder / ".syncd" / "trash"
        return sorted((p.name, p.read_bytes()) for p in trash.rglob("*") if p.is_file())

    # -- the remote side, through the SDK -------------------------------------------------------

    def put(self, name: str, data: bytes) -> int:
        return self.sdk.upload(stream=io.BytesIO(data), filename=name, size=len(data), biz_params={"chat_id": CHAT})

    def remote_files(self) -> list[FileInfo]:
        return self.sdk.list_chat_files(chat_id=CHAT)

    def remote_ids(self) -> dict[str, list[int]]:
        ids: dict[str, list[int]] = {}
        for f in self.remote_files():
            ids.setdefault(f.filename, []).append(f.id)
        return {name: sorted(v) for name, v in sorted(ids.items())}

    def fetch(self, file_id: int) -> bytes:
        out = io.BytesIO()
        self.sdk.download(file_id=file_id, stream=out)
        return out.getvalue()

    def remote(self) -> dict[str, bytes]:
        """Name -> bytes of the chat's files; fails if any name has more than one file."""
        ids = self.remote_ids()
        duplicated = {name: v for name, v in ids.items() if len(v) > 1}
        assert not duplicated, f"duplicate remote files: {duplicated}"
        return {name: self.fetch(v[0]) for name, v in ids.items()}

    def edit_remote(self, name: str, data: bytes) -> int:
        """What another client does to change a file: upload the new version, delete the old."""
        old = self.remote_ids().get(name, [])
        new_id = self.put(name, data)
        for file_id in old:
            self.sdk.delete(file_id=file_id)
        return new_id

    def delete_remote(self, name: str) -> None:
        for file_id in self.remote_ids()[name]:
            self.sdk.delete(file_id=file_id)


def synced(box: Sync, files: dict[str, bytes], **options: object) -> None:
    """Bring `files` to both sides through a first pass (uploads)."""
    box.configure(**options)
    for name, data in files.items():
        box.write(name, data)
    report = box.sync()
    assert report["uploaded"] == len(files)
    assert box.remote() == files
