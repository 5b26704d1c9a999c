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


class Capability(enum.Flag):
    """What a remote can do, as the planner and executor may rely on it.

    A remote declares its set once (`Remote.capabilities`); callers read the flags, never the
    remote's kind. An operation outside a remote's capabilities raises `ItemError` ("... not
    supported by this remote") before it changes anything: retrying cannot help.

    LIST
        The remote enumerates a place's files (`list_chat`), and can so say which copy an
        ambiguous upload left (`find_copy`). Without it the journal is the only listing: what
        syncd did not upload itself is never seen.
    TREE
        Names may hold folders: `/`-separated paths whose every component is a safe name,
        folders created as files need them. Without it a name is one safe component and a name
        with a `/` is refused.
    DELETE
        A file can be deleted (`delete`; a file already gone counts as deleted). Without it a
        local deletion cannot be sent: it is reported, never retried.
    RENAME
        A file can be moved to another name in one call, keeping its content and its id (key),
        so a local rename is sent as a rename. Without it a rename is upload-then-delete.
    SHA256
        Every listed `ok` file carries the sha256 of its content (`RemoteFile.hashcode`, hex), so
        equal content is provable without a transfer and a download can be checked. Without it
        the hashcode is empty: only the size (and a byte comparison) can tell.
    MTIME
        The remote reports each file's own modification time (set from the uploaded file, given
        to a downloaded one), not the time of the upload.
    SERVER_KEYS
        The server chooses the id (key) of what is put: every upload yields a new id, ids are
        never reused, and an id names one immutable version. Without it the caller names the
        key (a path) and a put writes to that key.
    OVERWRITE
        A put to a name that exists replaces it in place: a name holds one file, never several
        versions side by side. Without it an upload adds a version next to the others (several
        `ok` files may share a name) and the caller deletes the superseded one.
    RESUMABLE
        An interrupted upload can be resumed: `upload` reports a resume token (`on_resume`) and,
        given it back (`resume=`), sends only what the remote still lacks. Without it the tokens
        are ignored and every upload starts afresh.
    SIGN_URL
        The remote signs a URL that downloads a file without credentials until it expires
        (`download_url`, `syncd link`).
    """

    LIST = enum.auto()
    TREE = enum.auto()
    DELETE = enum.auto()
    RENAME = enum.auto()
    SHA256 = enum.auto()
    MTIME = enum.auto()
    SERVER_KEYS = enum.auto()
    OVERWRITE = enum.auto()
    RESUMABLE = enum.auto()
    SIGN_URL = enum.auto()


#: Called with the number of bytes moved so far; may raise to abort a transfer.
Progress = Callable[[int], None]

#: Called with a resume token as soon as a transfer has one: the remote's own JSON text saying
#: what a later call needs to go on where this one stopped. The caller keeps it (durably) and
#: passes it back as `resume`; a token the remote cannot use costs nothing but a fresh start.
OnResume = Callable[[str], object]


class Remote(Protocol):
    """What syncd needs from a file service, for one user.

    The methods outside `capabilities` raise `ItemError` (not supported by this remote), except
    the resume arguments of `upload`, which a remote that cannot resume ignores."""

    @property
    def capabilities(self) -> Capability:
        """What this remote can do (see `Capability`); fixed for the remote's lifetime."""
        ...

    def list_chat(self, chat_id: str) -> list[RemoteFile]:
        """Every file of the chat, all pages walked, in the service's order. Needs LIST."""
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

        A name with a `/` needs TREE (an unsafe name is an `ItemError`, refused before anything
        is sent). Every upload returns a new id (SERVER_KEYS); with OVERWRITE it also replaces
        the files that held the name.
        """
        ...

    def download(
        self, file_id: int, out: BinaryIO, *, progress: Progress | None = None, limit: int | None = None
    ) -> int:
        """Stream the file's bytes into `out`; return how many were written. A body longer than
        `limit` bytes is cut off there (a transient error: the file is not what was listed).
        An unknown (or deleted) id is an `ItemError`."""
        ...

    def find_copy(self, chat_id: str, filename: str, size: int, sha256: str) -> RemoteFile | None:
        """The newest `ok` file of the chat with exactly this name, size and sha256, if any:
        the copy an upload that failed ambiguously may have made (SPEC, "No duplicates").
        Needs LIST; without SHA256 no listed file can prove it holds these bytes (None)."""
        ...

    def delete(self, file_id: int) -> None:
        """Delete the file (a file already gone counts as deleted). Needs DELETE."""
        ...

    def download_url(self, file_id: int, expires_in: int = 600) -> str:
        """A URL that fetches the file without headers until it expires. Needs SIGN_URL."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
