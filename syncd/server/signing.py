"""HMAC-signed, expiring download URLs.

The signature covers the file id, its owner and the expiry, so a URL works for
exactly one file, needs no headers, and stops working at `expires`. The key is
generated once per data dir and kept there (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_or_create_key(path: Path) -> bytes:
    """The signing key stored at `path`, created on first use."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
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
