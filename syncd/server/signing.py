"""HMAC-signed, expiring download URLs.

The signature covers the file id, its owner and the expiry, so a URL works for
exactly one file, needs no headers, and stops working at `expires`. The key is
generated once per data dir and kept there (mode 0600), written atomically
(temp file, fsync, rename, fsync of the directory). A key file that is damaged
(empty, cut short, not hex, under 32 bytes) is never used: a new key replaces
it, which only invalidates links signed with the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import structlog

from syncd.local.durable import fsync_dir

KEY_BYTES = 32

log = structlog.get_logger(__name__)


def load_or_create_key(path: Path) -> bytes:
    """The signing key stored at `path`, created on first use, replaced when damaged."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _write_new_key(path)
    except UnicodeDecodeError:  # other trouble reading it (permissions, I/O) is raised, not papered over
        text = ""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        log.warning("signing key damaged: a new one replaces it (links signed before stop working)",
                    path=str(path))
        return _write_new_key(path)
    return key


def _write_new_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return key


def sign(key: bytes, file_id: int, user_id: str, expires: int) -> str:
    """The signature of (file, owner, expiry)."""
    message = f"{file_id}\n{user_id}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify(key: bytes, file_id: int, user_id: str, expires: int, signature: str, now: float) -> bool:
    """True when the signature is right and `expires` has not passed."""
    if now > expires:
        return False
    return hmac.compare_digest(sign(key, file_id, user_id, expires), signature)
