"""A chat's file as the BDD service lists it, and how syncd reads it as a `RemoteFile`.

BDD's own vocabulary stays inside this package: integer ids, a `hashcode` that is a sha256
only when it looks like one, `upload_at`, and a status of which only `ok` files take part.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from syncd.core.frozen import maker
from syncd.remote.base import Capability, RemoteFile

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: What a chat's file list can do (`BddRemote`'s, and so its kinds'): listed with a sha256 per
#: file (the service computes it when the client sends none), server-chosen ids, deletable,
#: multipart uploads that resume, signed download URLs. No folders (a name is one component),
#: no rename, no file times of its own (`upload_at` is the upload's), no overwrite (a name may
#: hold several versions).
CAPABILITIES = (
    Capability.LIST
    | Capability.DELETE
    | Capability.SHA256
    | Capability.SERVER_KEYS
    | Capability.RESUMABLE
    | Capability.SIGN_URL
)


class FileStatus(enum.StrEnum):
    """A chat file's state; only `ok` files are complete."""

    OK = "ok"
    UPLOADING = "uploading"
    MERGING = "merging"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ChatFile:
    """One entry of a chat's file list (a FileInfo), as the service reports it."""

    id: int
    filename: str
    size: int
    hashcode: str
    upload_at: datetime
    status: FileStatus

    def entry(self) -> RemoteFile:
        """This file in syncd's words: the id is its version (and orders same-instant uploads),
        the hashcode its sha256 only when it is one (a service may store any text there)."""
        # path, version, size, sha256, mtime, written_at, seq (a listing makes one per file)
        return _make_remote_file(
            self.filename, str(self.id), self.size, sha256_of_hashcode(self.hashcode), None, self.upload_at, self.id
        )


_make_remote_file = maker(RemoteFile)


def sha256_of_hashcode(hashcode: str | None) -> str | None:
    """The sha256 a hashcode proves (lower-case hex), or None when it is not one."""
    if not hashcode or len(hashcode) != 64:
        return None
    if _SHA256.fullmatch(hashcode):
        return hashcode  # lower-case already: the same string, not a copy (a listing has many)
    text = hashcode.lower()
    return text if _SHA256.fullmatch(text) else None
