"""`RagentRemote`: a ragent-oss gateway read as a `Remote` (protocol notes: ragent-oss.md).

The gateway keeps objects under keys it chooses and cannot list them, so a folder's journal is
its listing: each path maps to the object key (the version) syncd uploaded. What it can do:

* TREE: a path with folders is sent as the object's ``filename``, `/` and all;
* DELETE: by key (a key already gone counts as deleted);
* SERVER_KEYS: every put makes a new key; an edited file is a new object, the old key deleted
  once the new one is recorded (the core does that, never the other way round);
* SIGN_URL: `syncd link`;
* RESUMABLE: an upload's token holds its presigned URL, so a retry of a PUT whose answer was
  lost lands on the same key (no duplicate), and the keys an expired URL may have filled are
  deleted once the upload is done (`token.py`).

No LIST (nor stat, nor find_copy), no SHA256 (nothing the gateway says proves content), no
RENAME (a rename is a new object and the deletion of the old), no OVERWRITE, no MTIME.

What cannot be made safe, written down: an upload cut short, then never retried because the
file changed or vanished first (its queued work replaced), leaves the keys its token held
unknown to syncd; and a gateway that stores an object and then answers 5xx to every PUT of its
URL until it expires leaves one key for the next presign's upload to delete, which it does.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import structlog

from syncd.errors import ItemError, RemoteError, TransientError, Unsupported
from syncd.remote.base import OnResume, Progress, RemoteFile, refuse_unsafe
from syncd.remote.ragent.client import RagentClient
from syncd.remote.ragent.errors import UrlRefused
from syncd.remote.ragent.kind import CAPABILITIES
from syncd.remote.ragent.token import UploadToken

log = structlog.get_logger("syncd.remote.ragent")

#: How long the URL a download signs for itself lives.
DOWNLOAD_URL_LIFETIME = 300


#: What a compressed file is, whatever it holds (`report.tar.gz` is gzip data, not a tar).
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
               "compress": "application/x-compress", "br": "application/x-brotli"}


def content_type(path: str) -> str:
    """The MIME type the object is uploaded with, guessed from its name."""
    guessed, encoding = mimetypes.guess_type(path.rsplit("/", 1)[-1], strict=False)
    if encoding is not None:
        return _COMPRESSED.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"


class RagentRemote:
    """The objects of one gateway; a folder's place is its ``category``."""

    capabilities = CAPABILITIES

    def __init__(self, client: RagentClient, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"RagentRemote({self.client!r})"

    # -- what a gateway cannot do --------------------------------------------------------------

    def list(self, place: str) -> list[RemoteFile]:
        raise _no_list("list")

    def stat(self, place: str, path: str) -> RemoteFile | None:
        raise _no_list(f"stat {path!r}")

    def find_copy(self, place: str, path: str, size: int, sha256: str) -> RemoteFile | None:
        raise _no_list(f"look for a copy of {path!r}")

    def move(self, place: str, file: RemoteFile, new_path: str) -> RemoteFile:
        raise Unsupported(f"move {file.path!r}: not supported by this remote (objects cannot be renamed)",
                          capability="RENAME")

    # -- uploads -------------------------------------------------------------------------------

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
        refuse_unsafe("upload", path)
        token = UploadToken.loads(resume)
        if token is not None and not token.fits(place, path, size, sha256):
            token = None
        if token is not None and not token.usable(self._clock()):
            token = token.expired()
        for fresh in (False, True):
            if token is None or fresh or not token.usable(self._clock()):
                token = self._presign(place, path, size, sha256, token, on_resume)
            try:
                self.client.put_object(token.presigned, source, size, label=path, progress=progress)
                break
            except UrlRefused:
                if fresh:
                    raise
                token = token.expired()  # whatever an earlier try stored under it is an orphan now
        assert token is not None
        self._delete_orphans(path, token)
        now = datetime.now(UTC)
        return RemoteFile(path=path, version=token.presigned.key, size=size, written_at=now, seq=time.time_ns())

    def _presign(
        self, place: str, path: str, size: int, sha256: str | None, before: UploadToken | None,
        on_resume: OnResume | None,
    ) -> UploadToken:
        presigned = self.client.presign(path, content_type(path), place)
        orphans = before.orphans if before is not None else ()
        token = UploadToken(place, path, size, sha256 or "", presigned, self._clock(), orphans)
        if on_resume is not None and sha256 is not None:  # no sha256: a retry could not tell its content
            on_resume(token.dumps())
        return token

    def _delete_orphans(self, path: str, token: UploadToken) -> None:
        """Delete the keys earlier tries of this upload may have filled (never the one it used)."""
        for key in token.orphans:
            if key == token.presigned.key:
                continue
            try:
                self.client.delete(key)
            except RemoteError as exc:
                log.warning("could not delete an object an interrupted upload may have left",
                            name=path, object_key=key, error=str(exc))

    # -- downloads, deletions, links -----------------------------------------------------------

    def get(
        self,
        place: str,
        file: RemoteFile,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
        limit: int | None = None,
    ) -> int:
        for fresh in (False, True):
            url = self.client.sign(file.version, DOWNLOAD_URL_LIFETIME)
            try:
                return self.client.get_object(url, out, label=file.path, limit=limit, progress=progress)
            except ItemError as exc:
                if exc.status == 404:
                    raise _gone(file) from None
                raise
            except UrlRefused:
                if fresh:
                    raise TransientError(f"download {file.path!r} failed: the gateway refused two fresh URLs") from None
        raise AssertionError("unreachable")

    def delete(self, place: str, path: str, version: str) -> None:
        self.client.delete(version)

    def sign_url(self, place: str, file: RemoteFile, expires_in: int | None = None) -> str:
        """A URL for the object, once the gateway has shown it still holds it (it signs any key:
        a link to an object deleted there must say so, not pretend). `expires_in` None: the
        gateway's own default lifetime (a day)."""
        url = self.client.sign(file.version, expires_in)
        try:
            self.client.check_object(url, label=file.path)
        except ItemError as exc:
            if exc.status == 404:
                raise _gone(file) from None
            raise
        return url

    def watch(self, place: str, on_hint: Callable[[], object], stop: threading.Event) -> bool:
        return False  # no event stream: polling finds remote changes

    def probe(self, place: str) -> str:
        """Reachable and authorised, without leaving anything behind (`syncd check`): health,
        then a signature for a key that need not exist (signing writes nothing)."""
        self.client.health()
        self.client.sign("syncd-check", 60)
        return "reachable, key accepted"

    def close(self) -> None:
        self.client.close()


def _gone(file: RemoteFile) -> ItemError:
    return ItemError(f"{file.path!r}: object {file.version!r} is not on the gateway any more (HTTP 404)", status=404)


def _no_list(what: str) -> Unsupported:
    return Unsupported(f"{what}: not supported by this remote (a gateway cannot list its objects)",
                       capability="LIST")
