"""A chat and a folder as the tests look at them: through the published SDK, and on disk."""

from __future__ import annotations

import io
import re
from pathlib import Path

import requests
from bdd_file import BddFileClient, BddFileError
from bdd_file.models import FileInfo


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


#: `NAME (conflicted copy YYYY-MM-DD HHMMSS).EXT` (SPEC, "Conflicts").
CONFLICTED_COPY = re.compile(r"(?P<stem>.*) \(conflicted copy \d{4}-\d{2}-\d{2} \d{6}\)(?P<ext>.*)")


def conflicted_copy_of(name: str) -> str | None:
    """The name `name` is a conflicted copy of, or None when it is not one."""
    match = CONFLICTED_COPY.fullmatch(name)
    return match["stem"] + match["ext"] if match else None


def fetch(sdk: BddFileClient, file_id: int) -> bytes:
    """One remote file's bytes, through the SDK."""
    buf = io.BytesIO()
    sdk.download(file_id=file_id, stream=buf)
    return buf.getvalue()


def ok_files(sdk: BddFileClient, chat: str, *, looks: int = 5) -> list[tuple[FileInfo, bytes]]:
    """Every `ok` file of the chat with its bytes, duplicates included. A daemon may replace a
    file between our listing and our download of it (404 on the old version, or an answer cut
    short when it is deleted mid-stream): then look again."""
    for attempt in range(looks):
        try:
            return [(info, fetch(sdk, info.id)) for info in sdk.list_chat_files(chat_id=chat) if info.status == "ok"]
        except requests.exceptions.ChunkedEncodingError:
            if attempt == looks - 1:
                raise
        except BddFileError as exc:
            if " 404 " not in str(exc) or attempt == looks - 1:
                raise
    raise AssertionError("unreachable")
