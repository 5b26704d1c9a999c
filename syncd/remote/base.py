"""The `Remote` protocol: the one seam between syncd and a file service.

Every implementation converts its own failures into `syncd.errors` before they
leave it (transient / item / fatal), so callers never see transport errors.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from syncd.core.paths import path_reason
from syncd.errors import ItemError

#: Before every version any remote reports: the `written_at` of a file whose remote gave none.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One complete file of a place on the remote, in syncd's words.

    `path` is the remote's own spelling, `/`-joined and relative to the folder's place (one
    component unless the remote has TREE). `version` is opaque: whatever names this content
    there (a server-chosen id, an object key, a path's size+mtime); a new version of a path has
    a new one. `sha256` (lower-case hex) only where the remote proves content (SHA256); `mtime`
    the file's own modification time (MTIME). `written_at` and `seq` order the versions one
    path holds side by side (remotes without OVERWRITE): later written, or written in the same
    instant with a larger `seq`, is newer. Incomplete uploads are never listed.
    """

    path: str
    version: str
    size: int
    sha256: str | None = None
    mtime: datetime | None = None
    written_at: datetime = EPOCH
    seq: int = 0


class Capability(enum.Flag):
    """What a remote can do, as the planner and executor may rely on it.

    A remote declares its set once (`Remote.capabilities`); callers read the flags, never the
    remote's kind. An operation outside a remote's capabilities raises `ItemError` ("... not
    supported by this remote") before it changes anything: retrying cannot help.

    LIST
        The remote enumerates a place's files (`list`), and can so say which copy an
        ambiguous put left (`find_copy`). Without it the journal is the only listing: what
        syncd did not upload itself is never seen.
    TREE
        Names may hold folders: `/`-separated paths whose every component is a safe name,
        folders created as files need them. Without it a name is one safe component and a name
        with a `/` is refused.
    DELETE
        A file can be deleted (`delete`; a file already gone counts as deleted). Without it a
        local deletion cannot be sent: it is reported, never retried.
    RENAME
        A file can be moved to another path in one call (`move`), keeping its content,
        so a local rename is sent as a rename. Without it a rename is upload-then-delete.
    SHA256
        Every listed file carries the sha256 of its content (`RemoteFile.sha256`), so
        equal content is provable without a transfer and a download can be checked. Without it
        `sha256` is None: only the size and version (and a byte comparison) can tell.
    MTIME
        The remote reports each file's own modification time, which a downloaded file is given.
        Where the remote can set it, an upload carries the local file's (a sandbox that stamps
        every write with its own clock reports that instead: still the file's time, not the
        moment it was listed).
    SERVER_KEYS
        The server chooses the version (key) of what is put: every put yields a new one, never
        reused, naming one immutable content. Without it the caller names the
        key (a path) and a put writes to that key.
    OVERWRITE
        A put to a name that exists replaces it in place: a name holds one file, never several
        versions side by side. Without it a put adds a version next to the others (several
        files may share a path) and the caller deletes the superseded one.
    RESUMABLE
        An interrupted put can be resumed: `put` reports a resume token (`on_resume`) and,
        given it back (`resume=`), sends only what the remote still lacks. Without it the tokens
        are ignored and every upload starts afresh.
    SIGN_URL
        The remote signs a URL that downloads a file without credentials until it expires
        (`sign_url`, `syncd link`).
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

    Every file lives at a *place* (`FolderConfig.place`: opaque text the remote's kind parsed
    from the folder's config, e.g. a chat) and is named there by a path. The methods outside
    `capabilities` raise `Unsupported` (an `ItemError`: not supported by this remote) and change
    nothing, except the resume arguments of `put`, which a remote that cannot resume ignores."""

    @property
    def capabilities(self) -> Capability:
        """What this remote can do (see `Capability`); fixed for the remote's lifetime."""
        ...

    def list(self, place: str) -> list[RemoteFile]:
        """Every complete file at the place, in the remote's order (oldest first where versions
        stand side by side). Needs LIST."""
        ...

    def stat(self, place: str, path: str) -> RemoteFile | None:
        """The current file at `path` (the newest version), None when there is none: what a
        caller checks right before it overwrites or deletes a path. Needs LIST."""
        ...

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
        """Send `size` bytes of the local file `source` to `path` at the place; return the file
        it became.

        `resume`: a token an earlier, interrupted put reported; the put goes on from what the
        remote already has when the token is for this very content (SPEC, "Resumable uploads"),
        and starts afresh otherwise. `on_resume` gets the token of a resumable put before any of
        its content is sent. Remotes that cannot resume ignore both.

        A path with a `/` needs TREE (an unsafe path is an `ItemError`, refused before anything
        is sent). With SERVER_KEYS every put makes a new version; with OVERWRITE it replaces the
        files that held the path, without it the new version stands next to them.
        """
        ...

    def get(
        self,
        place: str,
        file: RemoteFile,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
        limit: int | None = None,
    ) -> int:
        """Stream the version's bytes into `out`; return how many were written. A body longer
        than `limit` bytes is cut off there (a transient error: the file is not what was
        listed). A version that is gone is an `ItemError`."""
        ...

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        """The newest file at `path` with exactly this size and sha256, if any: the copy a put
        that failed ambiguously may have made (SPEC, "No duplicates"). Needs LIST; without SHA256
        no listed file can prove it holds these bytes (None)."""
        ...

    def delete(self, place: str, path: str, version: str) -> None:
        """Delete that version of `path` (a version already gone counts as deleted). Needs DELETE."""
        ...

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        """Give the version another path, keeping its content; return it as it now is. Needs RENAME."""
        ...

    def sign_url(self, place: str, file: RemoteFile, expires_in: int = 600) -> str:
        """A URL that fetches the version without credentials until it expires. Needs SIGN_URL."""
        ...

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        """Call `on_hint` whenever the remote says the place may have changed (an event stream),
        until `stop`; reconnects on its own. False at once for a remote that says nothing: then
        polling alone finds remote changes."""
        ...

    def probe(self, place: str) -> str:
        """Reachable and authorised at the place, found out without changing anything (`syncd
        check`): a few words on what was seen. Raises as any call would (`FatalError`: refused)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def refuse_unsafe(what: str, path: str) -> None:
    """Refuse to ask a remote to write `path` when it is not a safe folder-relative path
    (`syncd.core.paths.path_reason`): an ItemError naming the request (`what`, e.g. "upload")."""
    reason = path_reason(path)
    if reason is not None:
        raise ItemError(f"{what} {path!r} refused: {reason}")
