"""`BddRemote`: a BDD service's chats read as syncd's `Remote`.

A folder's place is a chat id. What makes BDD unlike other remotes stays here and in
`BddClient`: ids as versions, only `ok` files listed, a hashcode that proves content only
when it is a sha256, multipart uploads that resume, `find_copy` for a put whose answer was
lost. The service never overwrites: a name may hold several versions side by side, ordered
by upload time and then id (`RemoteFile.written_at`, `seq`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from syncd.core.names import is_safe
from syncd.core.words import counted
from syncd.errors import Unsupported
from syncd.remote.base import OnResume, Progress, RemoteFile
from syncd.remote.bdd.chatfile import CAPABILITIES, FileStatus
from syncd.remote.bdd.client import BddClient


class BddRemote:
    """The `Remote` of one BDD user (`client`), its places chat ids."""

    capabilities = CAPABILITIES  # what a chat's file list can do (`chatfile.CAPABILITIES`)

    def __init__(self, client: BddClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return repr(self.client)

    def list(self, place: str) -> list[RemoteFile]:
        return [f.entry() for f in self.client.list_chat(place) if f.status is FileStatus.OK]

    def stat(self, place: str, path: str) -> RemoteFile | None:
        # No stat endpoint: the chat's listing says, newest `ok` version first by (upload_at, id).
        found = [f for f in self.client.list_chat(place) if f.filename == path and f.status is FileStatus.OK]
        return max(found, key=lambda f: (f.upload_at, f.id)).entry() if found else None

    def put(
        self,
        place: str,
        path: str,
        source: Path,
        *,
        size: int,
        sha256: str | None = None,
        progress: Progress | None = None,
        resume: str | None = None,
        on_resume: OnResume | None = None,
    ) -> RemoteFile:
        if "/" in path and all(is_safe(part) for part in path.split("/")):
            raise Unsupported(f"put {path!r}: not supported by this remote (a chat has no folders)",
                              capability="TREE")
        file_id = self.client.upload(
            source, chat_id=place, filename=path, size=size, sha256=sha256,
            progress=progress, resume=resume, on_resume=on_resume,
        )
        # The service's own upload time is not in its answer: the next listing has it (until
        # then, now orders this version after every earlier one well enough).
        return RemoteFile(path=path, version=str(file_id), size=size, sha256=sha256,
                          written_at=datetime.now(UTC), seq=file_id)

    def get(
        self,
        place: str,
        file: RemoteFile,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
        limit: int | None = None,
    ) -> int:
        return self.client.download(int(file.version), out, progress=progress, limit=limit)

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        found = self.client.find_copy(place, path, size, sha256)
        return found.entry() if found is not None else None

    def delete(self, place: str, path: str, version: str) -> None:
        self.client.delete(int(version))

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        raise Unsupported(f"move {file.path!r}: not supported by this remote (a chat has no rename)",
                          capability="RENAME")

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        return self.client.download_url(int(file.version), expires_in)

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        return False  # no event stream: polling finds remote changes

    def probe(self, place: str) -> str:
        return f"{counted(len(self.list(place)), 'file')} in the chat"

    def close(self) -> None:
        self.client.close()
