"""AGENTRUN4-HMAC-SHA256: the signature of one data-API request (protocol notes, steps 1-9).

`sign(...)` takes the method and the exact URL that will be sent (path and query as they go on
the wire) and returns the headers to add. The body is never hashed (``UNSIGNED-PAYLOAD``). The
data endpoint's host gets ``-ram`` after its first label when signed (`ram_host`), as the
service expects; a host whose first label already ends in ``-ram`` is left as it is.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

ALGORITHM = "AGENTRUN4-HMAC-SHA256"
PRODUCT = "agentrun"
UNSIGNED = "UNSIGNED-PAYLOAD"
_RAM_DOMAINS = (".agentrun-data.", ".funagent-data-pre.")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key (id and secret), and an STS token when the key is temporary. The repr
    never shows the secret or the token."""

    key_id: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def ram_host(url: str) -> str:
    """`url` with ``-ram`` inserted after the host's first label, for data endpoints
    (``*.agentrun-data.*``, ``*.funagent-data-pre.*``) only, and never twice."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not any(domain in host for domain in _RAM_DOMAINS):
        return url
    first, _, rest = host.partition(".")
    if first.endswith("-ram"):
        return url
    netloc = parts.netloc.replace(host, f"{first}-ram.{rest}", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def canonical_query(query: str) -> str:
    """Step 4: pairs decoded (``+`` is a space; the last of a repeated key wins), sorted by
    key, and re-encoded leaving only ``A-Z a-z 0-9 - _ . ~``."""
    pairs: dict[str, str] = {}
    for piece in query.split("&"):
        if "=" not in piece:
            continue
        key, _, value = piece.partition("=")
        pairs[unquote_plus(key)] = unquote_plus(value)
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(pairs.items()))


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def signing_key(secret: str, day: str, region: str) -> bytes:
    """Step 7: the key derived for one day (``yyyymmdd``) and region."""
    k1 = _hmac(("aliyun_v4" + secret).encode(), day)
    k2 = _hmac(k1, region)
    k3 = _hmac(k2, PRODUCT)
    return _hmac(k3, "aliyun_v4_request")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign(method: str, url: str, credentials: Credentials, region: str, now: datetime | None = None) -> dict[str, str]:
    """The headers that sign a request of `method` to `url` (sent exactly as given), at `now`
    (UTC; default the current time): host, x-acs-date, x-acs-content-sha256, the STS token if
    any, and Agentrun-Authorization."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    day = when.strftime("%Y%m%d")
    parts = urlsplit(url)
    headers = {"host": parts.netloc, "x-acs-content-sha256": UNSIGNED, "x-acs-date": stamp}
    if credentials.token:
        headers["x-acs-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join([
        method.upper(),
        parts.path or "/",
        canonical_query(parts.query),
        "".join(f"{name}:{headers[name].strip()}\n" for name in names),
        signed,
        UNSIGNED,
    ])
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    signature = hmac.new(signing_key(credentials.secret, day, region), to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    scope = f"{credentials.key_id}/{day}/{region}/{PRODUCT}/aliyun_v4_request"
    headers["Agentrun-Authorization"] = f"{ALGORITHM} Credential={scope},SignedHeaders={signed},Signature={signature}"
    return headers
