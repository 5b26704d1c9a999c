"""The `Remote` protocol: the one seam between syncd and a file service.

Every implementation converts its own failures into `syncd.errors` before they
leave it (transient / item / fatal), so callers never see transport errors.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol


class FileStatus(enum.StrEnum):
    """A remote file's state; only `ok` files take part in sync."""

    OK = "ok"
    UPLOADING = "uploading"
    MERGING = "merging"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One entry of a chat's file list, as the service reports it."""

    id: int
    filename: str
    size: int
    hashcode: str
    upload_at: datetime
    status: FileStatus


#: Called with the number of bytes moved so far; may raise to abort a transfer.
Progress = Callable[[int], None]

#: Called with a resume token as soon as a transfer has one: the remote's own JSON text saying
#: what a later call needs to go on where this one stopped. The caller keeps it (durably) and
#: passes it back as `resume`; a token the remote cannot use costs nothing but a fresh start.
OnResume = Callable[[str], object]


class Remote(Protocol):
    """What syncd needs from a file service, for one user."""

    def list_chat(self, chat_id: str) -> list[RemoteFile]:
        """Every file of the chat, all pages walked, in the service's order."""
        ...

    def upload(
        self,
        path: Path,
        *,
        chat_id: str,
        filename: str,
        size: int,
        sha256: str | None = None,
        progress: Progress | None = None,
        resume: str | None = None,
        on_resume: OnResume | None = None,
    ) -> int:
        """Upload `size` bytes of `path` as `filename` into the chat; return the new file id.

        `resume`: a token an earlier, interrupted upload reported; the upload goes on from
        what the service already has when the token is for this very content (SPEC,
        "Resumable uploads"), and starts afresh otherwise. `on_resume` gets the token of a
        resumable upload before any of its content is sent. Remotes that cannot resume ignore both.
        """
        ...

    def download(
        self, file_id: int, out: BinaryIO, *, progress: Progress | None = None, limit: int | None = None
    ) -> int:
        """Stream the file's bytes into `out`; return how many were written. A body longer than
        `limit` bytes is cut off there (a transient error: the file is not what was listed)."""
        ...

    def find_copy(self, chat_id: str, filename: str, size: int, sha256: str) -> RemoteFile | None:
        """The newest `ok` file of the chat with exactly this name, size and sha256, if any:
        the copy an upload that failed ambiguously may have made (SPEC, "No duplicates")."""
        ...

    def delete(self, file_id: int) -> None:
        """Delete the file (a file already gone counts as deleted)."""
        ...

    def download_url(self, file_id: int, expires_in: int = 600) -> str:
        """A URL that fetches the file without headers until it expires."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
