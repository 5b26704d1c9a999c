"""A chat and a folder as the tests look at them: through the published SDK, and on disk."""

from __future__ import annotations

import io
from pathlib import Path

from bdd_file import BddFileClient


def put(sdk: BddFileClient, chat: str, name: str, data: bytes) -> int:
    """Upload `data` as `name` into `chat` with the SDK (the other client); the file id."""
    return sdk.upload(stream=io.BytesIO(data), filename=name, size=len(data), biz_params={"chat_id": chat})


def chat_files(sdk: BddFileClient, chat: str) -> dict[str, bytes]:
    """Name -> bytes of the chat's `ok` files (an upload still under way is not a file yet);
    fails on a duplicate name."""
    out: dict[str, bytes] = {}
    for info in sdk.list_chat_files(chat_id=chat):
        if str(getattr(info.status, "value", info.status)) != "ok":
            continue
        assert info.filename not in out, f"duplicate remote file {info.filename}"
        buf = io.BytesIO()
        sdk.download(file_id=info.id, stream=buf)
        out[info.filename] = buf.getvalue()
    return out


def local_files(folder: Path) -> dict[str, bytes]:
    """Name -> bytes of the folder's top-level files (the marker directory is not a file)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temp files and partial downloads anywhere in the folder."""
    tmp = folder / ".syncd" / "tmp"
    found = [str(p) for p in tmp.iterdir()] if tmp.is_dir() else []
    return found + [str(p) for p in folder.rglob("*.part")]
