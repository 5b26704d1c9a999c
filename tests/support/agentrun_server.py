"""A stand-in AgentRun sandbox data-plane server for tests, on loopback, answering what the published SDK expects.

`AgentRunServer(root=...)` serves, on a free 127.0.0.1 port, the sandbox data API of the wire protocol
(docs: the AgentRun protocol page): `GET /sandboxes/{id}` ("sandbox"), `GET .../health` ("health"), and
the filesystem calls `GET .../filesystem?path=&depth=` ("list"), `GET .../filesystem/stat?path=` ("stat"),
`POST .../filesystem/upload` (multipart: parts `file` and `path`; "upload"), `GET
.../filesystem/download?path=` ("download"), and `POST .../filesystem/move`, `/remove`, `/mkdir` (JSON;
"move", "remove", "mkdir"). The lifecycle calls are not served.

Each sandbox is a directory `root/{id}` holding its file system: the sandbox path `/home/user/a.txt` is
`root/{id}/home/user/a.txt`. Removing that directory makes the sandbox gone: every call on it answers
`404 SandboxNotFound`. Sandbox paths must be absolute POSIX paths without `.`, `..` or NUL (else `400
InvalidParameter`), and no path is followed out of its sandbox's directory through a symlink. Entries are
the protocol's stand-in shape `{"name","path","type","size","mode","mtime"}`, directories carrying
`children` down to the listing's `depth`. Uploads are parsed as they arrive (no `cgi`), sized or chunked,
streamed to a temporary file, and renamed into place with the server's clock as their mtime; downloads
are streamed with `Content-Length` and `Last-Modified`. Errors are `{"code","message","requestId"}` with an
`x-acs-request-id` header, with the protocol page's statuses and codes.

Signatures: given `keys` (key id -> secret), every request must carry a valid `Agentrun-Authorization`
(AGENTRUN4-HMAC-SHA256), recomputed from the request line as received (raw path and query), the signed
headers and the secret: `401 Unauthorized` (no header), `401 InvalidAuthorization` (malformed, or `host`,
`x-acs-date`, `x-acs-content-sha256` or a sent `x-acs-security-token` not signed), `403
InvalidAccessKeyId.NotFound`, `403 SignatureDoesNotMatch` (also a wrong scope date, region or product),
`403 RequestTimeTooSkewed` (`x-acs-date` more than 15 minutes from the server's clock) and `403
InvalidSecurityToken` (an STS token not in `sts_tokens`). Without `keys`, requests need no signature.

Test hooks: `create_sandbox(id)` (-> the directory of its file system), `remove_sandbox(id)`,
`host_path(id, path)`, `write_file(id, path, data, mtime=)`, `set_mtime(id, path, mtime)`, `seen()` (every
request: method, target as sent, headers), `fail_next(name, ...)` (the next request to an endpoint fails:
any status and body, after the work is done, a reset, a stall, a truncated download), `verify(method,
target, headers)` (the signature check alone), `keys` and `sts_tokens` (settable: revoke a key), and
`advance(seconds)`, which moves the server's clock (injectable as `clock`).
"""

from __future__ import annotations

import email.parser
import email.utils
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, unquote_plus

from tests.support.standin import BodyError, Fault, SeenRequest, StandIn, StandInHandler, StandInServer

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_CHUNK = 64 * KiB
MAX_JSON = 1 * MiB
MAX_DEPTH = 32
MAX_SKEW = 15 * 60  # seconds
DEFAULT_LIST_PATH = "/home/user"
ALGORITHM = "AGENTRUN4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
PRODUCT = "agentrun"
_SCOPE_END = "aliyun_v4_request"
_REQUIRED_SIGNED = ("host", "x-acs-content-sha256", "x-acs-date")
_STS_HEADER = "x-acs-security-token"
_AUTH_HEADER = "agentrun-authorization"
_SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

# the endpoints: name -> (method, path under /sandboxes/{id})
ENDPOINTS = {
    "sandbox": ("GET", ""),
    "health": ("GET", "/health"),
    "list": ("GET", "/filesystem"),
    "stat": ("GET", "/filesystem/stat"),
    "upload": ("POST", "/filesystem/upload"),
    "download": ("GET", "/filesystem/download"),
    "move": ("POST", "/filesystem/move"),
    "remove": ("POST", "/filesystem/remove"),
    "mkdir": ("POST", "/filesystem/mkdir"),
}
_ROUTES = {suffix: (name, method) for name, (method, suffix) in ENDPOINTS.items()}


class Request(SeenRequest):
    """One request the server saw."""

    @property
    def sandbox_id(self) -> str:
        """The sandbox the request is about ("" if none)."""
        return _split_route(self.route)[0]

    @property
    def name(self) -> str:
        """What `fail_next` calls it ("list", "upload", ...), or "" for anything not served."""
        found = _ROUTES.get(_split_route(self.route)[1])
        return found[0] if found is not None and found[1] == self.method else ""


class AuthFailure(NamedTuple):
    """Why a request's signature was refused: the HTTP status, the error code and a message."""

    status: int
    code: str
    message: str


class ApiError(Exception):
    """An error answer: `status` with `{"code", "message", "requestId"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _split_route(route: str) -> tuple[str, str]:
    """(sandbox id, the rest of the path) of `/sandboxes/{id}{rest}`; ("", route) for anything else."""
    if not route.startswith("/sandboxes/"):
        return "", route
    sandbox, _, rest = route[len("/sandboxes/") :].partition("/")
    sandbox = unquote(sandbox)
    return (sandbox, "/" + rest if rest else "") if sandbox else ("", route)


# -- signing (steps 1-9 of the protocol page) ---------------------------------------------------------


def _encode(text: str) -> str:
    """Percent-encode everything but A-Z a-z 0-9 - _ . ~ (UTF-8, upper-case hex)."""
    return quote(text, safe="")


def canonical_query(raw_query: str) -> str:
    """Step 4: the canonical query of a raw query string (as sent, without the `?`)."""
    pairs: dict[str, str] = {}
    for piece in raw_query.split("&"):
        if "=" not in piece:
            continue
        key, value = piece.split("=", 1)
        pairs[unquote_plus(key)] = unquote_plus(value)
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs.items()))


def canonical_request(method: str, target: str, headers: Mapping[str, str], signed: list[str]) -> str:
    """Step 5: the canonical request of `method` on `target` (raw path and query, as sent), with the
    `signed` headers (lower-case names) taken from `headers` (lower-case names)."""
    path, _, query = target.partition("?")
    block = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join([method.upper(), path or "/", canonical_query(query), block, ";".join(signed), UNSIGNED_PAYLOAD])


def signing_key(secret: str, date: str, region: str, product: str = PRODUCT) -> bytes:
    """Step 7: kSigning for the scope `date` (yyyymmdd) / `region` / `product`."""
    key = hmac.new(("aliyun_v4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, product, _SCOPE_END):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, date: str, region: str, canonical: str, product: str = PRODUCT) -> str:
    """Steps 6 and 8: the hex signature of a canonical request."""
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    return hmac.new(signing_key(secret, date, region, product), to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_authorization(value: str) -> tuple[list[str], list[str], str] | None:
    """(credential parts, signed headers, signature) of an Agentrun-Authorization value, or None."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.strip().split(","):
        name, eq, content = item.strip().partition("=")
        if not eq or name in fields:
            return None
        fields[name] = content
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        return None
    credential = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    if len(credential) != 5 or not all(credential) or not all(signed):
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        return None
    return credential, signed, fields["Signature"]


# -- sandbox paths --------------------------------------------------------------------------------------


def _components(path: object) -> list[str]:
    """The components of an absolute sandbox path; ApiError 400 InvalidParameter for anything else."""
    if not isinstance(path, str) or not path:
        raise ApiError(400, "InvalidParameter", "path must be a non-empty string")
    if not path.startswith("/"):
        raise ApiError(400, "InvalidParameter", f"path must be absolute: {path!r}")
    if "\0" in path:
        raise ApiError(400, "InvalidParameter", "path must not contain NUL")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "InvalidParameter", "path must be valid Unicode") from None
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ApiError(400, "InvalidParameter", f"path must not contain '.' or '..': {path!r}")
    return parts


def _normal(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def _within(base: Path, candidate: str) -> bool:
    return candidate == str(base) or candidate.startswith(str(base) + os.sep)


def _entry(host: Path, path: str, st: os.stat_result) -> dict[str, Any]:
    """The stand-in entry of `host` (sandbox path `path`) from its lstat."""
    if stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "type": kind,
        "size": st.st_size,
        "mode": oct(stat.S_IMODE(st.st_mode)),
        "mtime": _seconds(st.st_mtime_ns),
    }


def _seconds(ns: int) -> float:
    """Epoch nanoseconds as float seconds, exact to the float's precision (1767225600.25 stays that)."""
    return ns // 10**9 + (ns % 10**9) / 1e9


def _set_mtime(host: Path, mtime: float) -> None:
    """Set both times of `host` (not following a symlink) to `mtime` seconds, to the nanosecond."""
    whole = int(mtime // 1)
    ns = whole * 10**9 + round((mtime - whole) * 1e9)
    os.utime(host, ns=(ns, ns), follow_symlinks=False)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Reply:
    status: int
    payload: object = None
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


class AgentRunServer(StandIn["Request", "Fault"]):
    """A threaded AgentRun sandbox data plane on loopback, keeping each sandbox under `root/{id}`."""

    def __init__(
        self,
        *,
        root: Path,
        keys: Mapping[str, str] | None = None,
        region: str = "cn-hangzhou",
        clock: Callable[[], float] = time.time,
        sts_tokens: Collection[str] = (),
        template_name: str = "code-interpreter-test",
        max_upload: int = GiB,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys: dict[str, str] | None = dict(keys) if keys is not None else None
        self.sts_tokens: set[str] = set(sts_tokens)
        self.region = region
        self._start_record(clock)
        self.template_name = template_name
        self.max_upload = max_upload
        self._tmp = Path(tempfile.mkdtemp(prefix=".agentrun-tmp-", dir=self.root))  # never a sandbox id
        self._fs = threading.RLock()  # one file-system change at a time
        self._created: dict[str, float] = {}
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="agentrun-server"
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # -- the clock -------------------------------------------------------------------------------------

    # -- sandboxes -------------------------------------------------------------------------------------

    def create_sandbox(self, sandbox_id: str, *, home: str = "/home/user") -> Path:
        """Make a running sandbox `sandbox_id` (with `home` created in it); the directory of its file system."""
        if not _SANDBOX_ID.fullmatch(sandbox_id):
            raise ValueError(f"not a sandbox id: {sandbox_id!r}")
        base = self.root / sandbox_id
        with self._fs:
            base.mkdir(exist_ok=True)
            base.joinpath(*_components(home)).mkdir(parents=True, exist_ok=True)
            self._created.setdefault(sandbox_id, self.now())
        return base

    def remove_sandbox(self, sandbox_id: str) -> None:
        """Make the sandbox gone: its files are deleted and every call on it answers 404 SandboxNotFound."""
        with self._fs:
            shutil.rmtree(self.root / sandbox_id, ignore_errors=True)
            self._created.pop(sandbox_id, None)

    def _sandbox(self, sandbox_id: str) -> Path:
        """The directory of a live sandbox; ApiError 404 SandboxNotFound otherwise."""
        base = self.root / sandbox_id
        if not _SANDBOX_ID.fullmatch(sandbox_id) or base.is_symlink() or not base.is_dir():
            raise ApiError(404, "SandboxNotFound", f"sandbox not found: {sandbox_id}")
        return base

    def _resolve(self, base: Path, parts: list[str], *, follow: bool = False) -> Path:
        """The host path of sandbox path `parts` under `base`. Its parent (and with `follow`, itself)
        must resolve inside the sandbox: a symlink pointing out of it is refused (400 InvalidParameter)."""
        host = base.joinpath(*parts)
        real_base = Path(os.path.realpath(base))
        checked = host if follow else host.parent
        if parts and not _within(real_base, os.path.realpath(checked)):
            raise ApiError(400, "InvalidParameter", "path leads out of the sandbox")
        return host

    def host_path(self, sandbox_id: str, path: str) -> Path:
        """Where the sandbox path `path` of `sandbox_id` lives on this machine."""
        return self._resolve(self._sandbox(sandbox_id), _components(path))

    def write_file(self, sandbox_id: str, path: str, data: bytes, *, mtime: float | None = None) -> Path:
        """Put `data` at `path` in the sandbox (parents made), with `mtime` if given; its host path."""
        host = self.host_path(sandbox_id, path)
        with self._fs:
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(data)
            if mtime is not None:
                _set_mtime(host, mtime)
        return host

    def set_mtime(self, sandbox_id: str, path: str, mtime: float) -> None:
        """Set the mtime of `path` in the sandbox."""
        host = self.host_path(sandbox_id, path)
        with self._fs:
            _set_mtime(host, mtime)

    # -- the record and the faults ---------------------------------------------------------------------

    def fail_next(
        self,
        name: str,
        *,
        status: int = 503,
        after: bool = False,
        reset: bool = False,
        stall: float | None = None,
        truncate: int | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next request to endpoint `name` ("list", "stat", "upload", "download", "move",
        "remove", "mkdir", "sandbox", "health") fail; several calls queue faults, first in first out.

        By default it is answered `status` with `body` (else a JSON error with code "InjectedFault")
        and `headers` (e.g. Retry-After), its body read and nothing done. `after`: the request takes
        effect first (the upload stores, the move moves), then fails. `reset`: the connection is closed
        with a RST instead of an answer. `stall`: nothing is said for that many seconds (or until the
        server stops), then the connection is closed. `truncate` (download only): the answer announces
        the whole file, sends this many bytes of it, and closes. Faults come before any signature check."""
        if name not in ENDPOINTS:
            raise ValueError(f"no endpoint named {name!r}")
        if truncate is not None and name != "download":
            raise ValueError("truncate is for download only")
        fault = Fault(status, after, reset, stall, truncate, body, dict(headers or {}))
        with self._lock:
            self._faults[name].append(fault)

    # -- signatures ------------------------------------------------------------------------------------

    def verify(self, method: str, target: str, headers: Mapping[str, str]) -> AuthFailure | None:
        """Check a request's signature as the server does: None if it is accepted (always, without
        `keys`), else why not. `target` is the path and query exactly as sent."""
        keys = self.keys
        if keys is None:
            return None
        lower = {name.lower(): value for name, value in headers.items()}
        value = lower.get(_AUTH_HEADER)
        if value is None:
            return AuthFailure(401, "Unauthorized", "the Agentrun-Authorization header is missing")
        parsed = _parse_authorization(value)
        if parsed is None:
            return AuthFailure(401, "InvalidAuthorization", "the Agentrun-Authorization header is malformed")
        (key_id, date, region, product, end), signed, given = parsed
        if end != _SCOPE_END:
            return AuthFailure(401, "InvalidAuthorization", "the credential scope is malformed")
        missing = [name for name in _REQUIRED_SIGNED if name not in signed]
        if _STS_HEADER in lower and _STS_HEADER not in signed:
            missing.append(_STS_HEADER)
        if missing:
            return AuthFailure(401, "InvalidAuthorization", f"headers not signed: {', '.join(missing)}")
        if any(name not in lower for name in signed):
            return AuthFailure(401, "InvalidAuthorization", "a signed header is missing from the request")
        stamp = lower["x-acs-date"].strip()
        if not _DATE.fullmatch(stamp):
            return AuthFailure(401, "InvalidAuthorization", "x-acs-date is not YYYY-MM-DDTHH:MM:SSZ")
        try:
            sent_at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return AuthFailure(401, "InvalidAuthorization", "x-acs-date is not a valid time")
        secret = keys.get(key_id)
        if secret is None:
            return AuthFailure(403, "InvalidAccessKeyId.NotFound", "the access key id does not exist")
        canonical = canonical_request(method, target, lower, signed)
        expected = signature(secret, date, region, canonical, product)
        scope_ok = date == sent_at.strftime("%Y%m%d") and region == self.region and product == PRODUCT
        if not (hmac.compare_digest(expected, given) and scope_ok):
            return AuthFailure(403, "SignatureDoesNotMatch", "the request signature does not match")
        if abs(sent_at.timestamp() - self.now()) > MAX_SKEW:
            return AuthFailure(403, "RequestTimeTooSkewed", "x-acs-date is more than 15 minutes off")
        if _STS_HEADER in lower and lower[_STS_HEADER].strip() not in self.sts_tokens:
            return AuthFailure(403, "InvalidSecurityToken", "the security token is not valid")
        return None

    # -- the endpoints ---------------------------------------------------------------------------------

    def sandbox_info(self, sandbox_id: str) -> _Reply:
        base = self._sandbox(sandbox_id)
        created = self._created.get(sandbox_id, base.stat().st_mtime)
        data = {
            "sandboxId": sandbox_id,
            "templateName": self.template_name,
            "status": "Running",
            "createdAt": _iso(created),
            "lastUpdatedAt": _iso(self.now()),
            "sandboxIdleTimeoutSeconds": 600,
        }
        return _Reply(200, {"code": "SUCCESS", "requestId": _request_id(), "data": data})

    def list_dir(self, base: Path, query: Mapping[str, str]) -> _Reply:
        parts = _components(query.get("path", DEFAULT_LIST_PATH))
        raw_depth = query.get("depth", "1")
        if not raw_depth.isdigit() or not 1 <= int(raw_depth) <= MAX_DEPTH:
            raise ApiError(400, "InvalidParameter", f"depth must be an integer from 1 to {MAX_DEPTH}")
        host = self._resolve(base, parts, follow=True)
        path = _normal(parts)
        with self._fs:
            if not os.path.lexists(host):
                raise ApiError(404, "FileNotFound", f"no such file or directory: {path}")
            if not host.is_dir():
                raise ApiError(400, "NotADirectory", f"not a directory: {path}")
            entries = self._walk(host, path, int(raw_depth))
        return _Reply(200, {"path": path, "entries": entries})

    def _walk(self, host: Path, path: str, depth: int) -> list[dict[str, Any]]:
        entries = []
        prefix = path.rstrip("/")
        with os.scandir(host) as scan:
            found = sorted(scan, key=lambda e: e.name)
        for item in found:
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            entry = _entry(Path(item.path), f"{prefix}/{item.name}", st)
            if entry["type"] == "directory" and depth > 1:
                entry["children"] = self._walk(Path(item.path), entry["path"], depth - 1)
            entries.append(entry)
        return entries

    def stat_path(self, base: Path, query: Mapping[str, str]) -> _Reply:
        parts = _components(query.get("path"))
        host = self._resolve(base, parts)
        path = _normal(parts)
        try:
            st = host.lstat()
        except FileNotFoundError:
            raise ApiError(404, "FileNotFound", f"no such file or directory: {path}") from None
        except NotADirectoryError:
            raise ApiError(404, "FileNotFound", f"no such file or directory: {path}") from None
        return _Reply(200, _entry(host, path, st))

    def mkdir(self, base: Path, body: Mapping[str, Any]) -> _Reply:
        parts = _components(body.get("path"))
        parents = body.get("parents", True)
        mode_text = body.get("mode", "0755")
        if not isinstance(parents, bool):
            raise ApiError(400, "InvalidParameter", "parents must be a boolean")
        if mode_text is None:
            mode_text = "0755"
        if not isinstance(mode_text, str) or not re.fullmatch(r"(0o?)?[0-7]{1,4}", mode_text):
            raise ApiError(400, "InvalidParameter", "mode must be an octal string such as 0755")
        mode = (int(mode_text.removeprefix("0o"), 8) & 0o777) | 0o700  # the owner keeps access
        host = self._resolve(base, parts)
        path = _normal(parts)
        with self._fs:
            if os.path.lexists(host):
                if parents and host.is_dir() and not host.is_symlink():
                    return _Reply(200, {"success": True, "path": path})
                raise ApiError(409, "FileAlreadyExists", f"file exists: {path}")
            self._make_parents(base, parts, create=parents)
            host.mkdir()
            host.chmod(mode)
        return _Reply(200, {"success": True, "path": path})

    def _make_parents(self, base: Path, parts: list[str], *, create: bool = True) -> None:
        """Make sure the parent directories of `parts` exist (making them if `create`)."""
        current = base
        for index, part in enumerate(parts[:-1]):
            current = current / part
            shown = _normal(parts[: index + 1])
            if current.is_symlink() or (os.path.lexists(current) and not current.is_dir()):
                if current.is_symlink() and current.is_dir():
                    self._resolve(base, parts[: index + 1], follow=True)
                    continue
                raise ApiError(400, "NotADirectory", f"not a directory: {shown}")
            if not current.exists():
                if not create:
                    raise ApiError(404, "FileNotFound", f"no such directory: {shown}")
                current.mkdir()

    def move(self, base: Path, body: Mapping[str, Any]) -> _Reply:
        source, destination = body.get("source"), body.get("destination")
        src_parts, dst_parts = _components(source), _components(destination)
        src, dst = self._resolve(base, src_parts), self._resolve(base, dst_parts)
        src_path, dst_path = _normal(src_parts), _normal(dst_parts)
        if not src_parts or not dst_parts:
            raise ApiError(400, "InvalidParameter", "cannot move the root directory")
        if dst_parts[: len(src_parts)] == src_parts and dst_parts != src_parts:
            raise ApiError(400, "InvalidParameter", "cannot move a directory into itself")
        with self._fs:
            if not os.path.lexists(src):
                raise ApiError(404, "FileNotFound", f"no such file or directory: {src_path}")
            if dst_parts != src_parts:
                if os.path.lexists(dst) and (dst.is_dir() and not dst.is_symlink()):
                    raise ApiError(409, "FileAlreadyExists", f"destination is a directory: {dst_path}")
                if os.path.lexists(dst) and src.is_dir() and not src.is_symlink():
                    raise ApiError(409, "FileAlreadyExists", f"destination exists: {dst_path}")
                self._make_parents(base, dst_parts)
                os.replace(src, dst)  # a rename keeps the mtime
        return _Reply(200, {"success": True, "source": source, "destination": destination})

    def remove(self, base: Path, body: Mapping[str, Any]) -> _Reply:
        parts = _components(body.get("path"))
        if not parts:
            raise ApiError(400, "InvalidParameter", "cannot remove the root directory")
        host = self._resolve(base, parts)
        path = _normal(parts)
        with self._fs:
            if not os.path.lexists(host):
                raise ApiError(404, "FileNotFound", f"no such file or directory: {path}")
            if host.is_dir() and not host.is_symlink():
                shutil.rmtree(host)
            else:
                host.unlink()
        return _Reply(200, {"success": True, "path": path})

    def store_upload(self, base: Path, target: object, temp: Path, size: int) -> _Reply:
        parts = _components(target)
        if not parts:
            raise ApiError(409, "IsADirectory", "is a directory: /")
        host = self._resolve(base, parts)
        path = _normal(parts)
        with self._fs:
            if host.is_dir() and not host.is_symlink():
                raise ApiError(409, "IsADirectory", f"is a directory: {path}")
            self._make_parents(base, parts)
            _set_mtime(temp, self.now())
            os.replace(temp, host)
        return _Reply(200, {"success": True, "path": target, "size": size})

    def open_download(self, base: Path, query: Mapping[str, str]) -> tuple[os.stat_result, Any]:
        parts = _components(query.get("path"))
        host = self._resolve(base, parts, follow=True)
        path = _normal(parts)
        with self._fs:
            if not os.path.lexists(host):
                raise ApiError(404, "FileNotFound", f"no such file or directory: {path}")
            if not host.is_file():
                raise ApiError(400, "NotAFile", f"not a file: {path}")
            stream = host.open("rb")  # an open file outlives a replace or remove
        return os.fstat(stream.fileno()), stream

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> AgentRunServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end stalls, cut idle keep-alive connections, and join every thread."""
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.cut_connections()
        self._server.server_close()  # joins the handler threads
        if self._thread.ident is not None:  # it was started
            self._thread.join(timeout=10)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> AgentRunServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


class _Server(StandInServer["AgentRunServer"]):
    def __init__(self, address: tuple[str, int], owner: AgentRunServer) -> None:
        super().__init__(address, owner, _Handler)


_BodyError = BodyError


class _Body:
    """The request body as a buffered stream of bytes, sized or chunked."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buffer = bytearray()
        self._ended = False

    def _more(self) -> bool:
        if self._ended:
            return False
        block = next(self._blocks, None)
        if block is None:
            self._ended = True
            return False
        self._buffer += block
        return True

    def until(self, delimiter: bytes, sink: Callable[[bytes], None]) -> None:
        """Pass everything before `delimiter` to `sink` and drop the delimiter; 400 if it never comes."""
        keep = len(delimiter) - 1
        while True:
            at = self._buffer.find(delimiter)
            if at >= 0:
                sink(bytes(self._buffer[:at]))
                del self._buffer[: at + len(delimiter)]
                return
            if len(self._buffer) > keep:
                sink(bytes(self._buffer[: len(self._buffer) - keep]))
                del self._buffer[: len(self._buffer) - keep]
            if not self._more():
                raise _BodyError(400, "truncated multipart body")

    def take(self, count: int) -> bytes:
        while len(self._buffer) < count and self._more():
            pass
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def drain(self) -> None:
        self._buffer.clear()
        while self._more():
            self._buffer.clear()


class _Handler(StandInHandler):
    server: _Server

    # -- dispatch --------------------------------------------------------------------------------------

    def _handle(self) -> None:
        owner = self.server.owner
        self._body_iter: Iterator[bytes] | None = None  # one handler serves every request of a connection
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, self.path, headers)
        owner._note(request)
        name = request.name
        try:
            fault = owner._next_fault(name) if name else None
            if fault is not None and fault.truncate is None and not (fault.after and name != "download"):
                self.drain()
                self._fail(fault)
                return
            failure = owner.verify(self.command, self.path, headers)
            if failure is not None:
                self._error(ApiError(failure.status, failure.code, failure.message), close=not self.drain())
                return
            sandbox_id, rest = _split_route(request.route)
            if not sandbox_id:
                self.drain()
                self._error(ApiError(404, "NotFound", f"no such endpoint: {request.route}"))
                return
            base = owner._sandbox(sandbox_id)
            if not name:
                self.drain()
                if rest in _ROUTES:
                    self._error(ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed here"))
                else:
                    self._error(ApiError(404, "NotFound", f"no such endpoint: {request.route}"))
                return
            if name == "download":
                self.drain()
                self._download(base, fault)
                return
            reply = self._endpoint(name, sandbox_id, base)
            if fault is not None:
                self._fail(fault)
            else:
                self._json(reply)
        except ApiError as exc:
            self._error(exc, close=not self._drain_quietly())
        except _BodyError as exc:
            if exc.status:
                self._error(ApiError(exc.status, "InvalidParameter", exc.message), close=True)
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _query(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        _, _, raw = self.path.partition("?")
        for piece in raw.split("&"):
            if "=" not in piece:
                continue
            key, value = piece.split("=", 1)
            try:
                pairs[unquote_plus(key, errors="strict")] = unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                raise ApiError(400, "InvalidParameter", "the query is not valid UTF-8") from None
        return pairs

    def _endpoint(self, name: str, sandbox_id: str, base: Path) -> _Reply:
        owner = self.server.owner
        if name == "upload":
            return self._upload(base)
        if name in ("move", "remove", "mkdir"):
            body = self._json_body()
            if name == "move":
                return owner.move(base, body)
            if name == "remove":
                return owner.remove(base, body)
            return owner.mkdir(base, body)
        self.drain()
        if name == "sandbox":
            return owner.sandbox_info(sandbox_id)
        if name == "health":
            return _Reply(200, {"status": "ok"})
        if name == "list":
            return owner.list_dir(base, self._query())
        return owner.stat_path(base, self._query())

    def _json_body(self) -> dict[str, Any]:
        raw = self.read_small(MAX_JSON)
        if raw is None:
            raise ApiError(413, "EntityTooLarge", f"request body larger than {MAX_JSON} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "InvalidParameter", "the body must be JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidParameter", "the body must be a JSON object")
        return body

    # -- upload ----------------------------------------------------------------------------------------

    def _upload(self, base: Path) -> _Reply:
        owner = self.server.owner
        content_type = self.headers.get("Content-Type", "")
        found = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
        if not content_type.lower().startswith("multipart/form-data") or found is None:
            raise ApiError(400, "InvalidParameter", "the body must be multipart/form-data with a boundary")
        boundary = (found.group(1) or found.group(2)).encode("latin-1")
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > owner.max_upload + 64 * KiB:
            raise ApiError(413, "EntityTooLarge", "the upload is too large")
        body = _Body(self._with_leading_crlf(self._body()))
        fd, temp_name = tempfile.mkstemp(dir=owner._tmp, prefix="upload-")
        temp = Path(temp_name)
        try:
            target: str | None = None
            size = -1
            with os.fdopen(fd, "wb") as out:
                delimiter = b"\r\n--" + boundary
                body.until(delimiter, lambda _: None)  # the preamble
                while True:
                    after = body.take(2)
                    if after == b"--":
                        break
                    if after != b"\r\n":
                        raise _BodyError(400, "malformed multipart body")
                    head = bytearray()

                    def keep_head(block: bytes, head: bytearray = head) -> None:
                        head.extend(block)
                        if len(head) > 16 * KiB:
                            raise _BodyError(400, "multipart headers too large")

                    body.until(b"\r\n\r\n", keep_head)
                    part = email.parser.BytesHeaderParser().parsebytes(bytes(head) + b"\r\n\r\n")
                    field_name = part.get_param("name", header="content-disposition")
                    if field_name == "file" and size < 0:
                        size = 0

                        def write(block: bytes) -> None:
                            nonlocal size
                            size += len(block)
                            if size > owner.max_upload:
                                raise ApiError(413, "EntityTooLarge", "the upload is too large")
                            out.write(block)

                        body.until(delimiter, write)
                    else:
                        value = bytearray()

                        def keep_value(block: bytes, value: bytearray = value) -> None:
                            value.extend(block)
                            if len(value) > 64 * KiB:
                                raise _BodyError(400, "form field too large")

                        body.until(delimiter, keep_value)
                        if field_name == "path":
                            try:
                                target = value.decode("utf-8")
                            except UnicodeDecodeError:
                                raise ApiError(400, "InvalidParameter", "path must be UTF-8") from None
            body.drain()  # the epilogue
            if size < 0 or target is None:
                raise ApiError(400, "InvalidParameter", "the upload needs a 'file' part and a 'path' part")
            return owner.store_upload(base, target, temp, size)
        finally:
            temp.unlink(missing_ok=True)

    @staticmethod
    def _with_leading_crlf(blocks: Iterator[bytes]) -> Iterator[bytes]:
        yield b"\r\n"  # so that the first boundary looks like every other one
        yield from blocks

    # -- download --------------------------------------------------------------------------------------

    def _download(self, base: Path, fault: Fault | None) -> None:
        owner = self.server.owner
        st, stream = owner.open_download(base, self._query())
        with stream:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.send_header("x-acs-request-id", _request_id())
            self.end_headers()
            left = st.st_size if fault is None or fault.truncate is None else min(st.st_size, fault.truncate)
            while left > 0 and self.command != "HEAD":
                block = stream.read(min(left, _CHUNK))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
            self.wfile.flush()
        if fault is not None:
            self.close_connection = True

    # -- bodies ----------------------------------------------------------------------------------------

    def _body(self) -> Iterator[bytes]:
        """The request's body, block by block; a second call goes on from where the first one stopped."""
        if self._body_iter is None:
            self._body_iter = super()._body()
        return self._body_iter

    def _drain_quietly(self) -> bool:
        try:
            return self.drain()
        except _BodyError:
            self.close_connection = True
            return False

    # -- answers ---------------------------------------------------------------------------------------

    def _fail(self, fault: Fault) -> None:
        owner = self.server.owner
        if fault.reset:
            self.reset()
            return
        if fault.stall is not None:
            owner.stopping.wait(fault.stall)
            self.close_connection = True
            return
        request_id = _request_id()
        payload = {"code": "InjectedFault", "message": "injected fault", "requestId": request_id}
        body = fault.body if fault.body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **fault.headers, "x-acs-request-id": request_id}
        self.send_bytes(fault.status, body, headers)

    def _error(self, error: ApiError, *, close: bool = False) -> None:
        request_id = _request_id()
        payload = {"code": error.code, "message": error.message, "requestId": request_id}
        self._json(_Reply(error.status, payload, {"x-acs-request-id": request_id}, close=close))

    def _json(self, reply: _Reply) -> None:
        headers = {"x-acs-request-id": _request_id(), **reply.headers, "Content-Type": "application/json"}
        self.send_bytes(reply.status, json.dumps(reply.payload).encode(), headers, close=reply.close)


__all__ = [
    "ENDPOINTS",
    "AgentRunServer",
    "ApiError",
    "AuthFailure",
    "Fault",
    "Request",
    "canonical_query",
    "canonical_request",
    "signature",
    "signing_key",
]
