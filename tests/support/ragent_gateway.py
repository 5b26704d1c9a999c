"""A stand-in ragent-oss storage gateway for tests, on loopback, answering what the published client expects.

`RagentGateway(api_key, root=...)` serves, on a free 127.0.0.1 port, what the published
`ragent-oss` client talks to: `GET /api/health`, `POST /api/presign`, `/api/sign` and
`/api/delete` (JSON, `X-API-Key` checked), and the URLs those hand out, `/blob/<key>?exp=&sig=`,
where a signed `PUT` stores an object and a signed `GET` serves it. Keys are
`{category}/{32 hex}/{filename}`, opaque: in a URL they are quoted with no safe characters (so a
`..` never turns into a dot-segment), and on disk an object lives under `root` in a file named by
the key's sha256, never by the key. Signatures are an HMAC (a random secret per gateway) over the
method, the key, the expiry and the `Content-Type`; a wrong or expired one gets `403`. PUT bodies
may be sized or chunked; they are streamed to a temporary file and renamed into place.

Test hooks: `objects()` (key -> size, sha256), `stored(key)`, `read(key)`, `seen()` (every request:
method, target as sent, headers), `fail_next(name, ...)` (the next request to `name` - "health",
"presign", "sign", "delete", "PUT" or "GET" - fails: any status, after the work is done
(`after_store`, the ambiguous PUT), a reset, a stall, a truncated download), `api_key` (settable:
revoke a key), and `advance(seconds)`, which moves the gateway's clock (injectable as `clock`) so
URLs expire without waiting.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote, unquote_to_bytes, urlsplit

from tests.support.standin import BodyError, Fault, SeenRequest, StandIn, StandInHandler, StandInServer

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_CHUNK = 64 * KiB
MAX_FILENAME = 1024  # UTF-8 bytes
MAX_EXPIRES = 604800  # seconds (7 days)
DEFAULT_EXPIRES = 86400  # seconds (1 day)
_BLOB = "/blob/"
_ENDPOINTS = {
    "/api/health": ("health", "GET"),
    "/api/presign": ("presign", "POST"),
    "/api/sign": ("sign", "POST"),
    "/api/delete": ("delete", "POST"),
}


class Request(SeenRequest):
    """One request the gateway saw."""

    @property
    def name(self) -> str:
        """What `fail_next` calls it: "health", "presign", "sign", "delete", "PUT", "GET", or ""."""
        return _name(self.method, self.route)


@dataclass(frozen=True)
class Stored:
    """One object in the index."""

    size: int
    sha256: str
    content_type: str
    stored_at: float  # the gateway's clock


@dataclass
class _Reply:
    status: int
    payload: object = None  # JSON, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def _name(method: str, route: str) -> str:
    if route.startswith(_BLOB):
        return method if method in ("PUT", "GET") else ""
    endpoint = _ENDPOINTS.get(route)
    return endpoint[0] if endpoint is not None and endpoint[1] == method else ""


def _utf8(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        return None


def _field_value(text: str) -> bool:
    """Whether `text` can be sent as an HTTP header value (visible ASCII and spaces)."""
    return all(" " <= c <= "~" for c in text) and text == text.strip()


class RagentGateway(StandIn["Request", "Fault"]):
    """A threaded ragent-oss gateway on loopback, storing objects under `root`."""

    def __init__(
        self,
        api_key: str = "ragent-test-key",
        *,
        root: Path,
        upload_ttl: float = 900,
        clock: Callable[[], float] = time.time,
        max_object: int = GiB,
        max_json: int = 64 * KiB,
    ) -> None:
        self.api_key = api_key
        self.upload_ttl = upload_ttl
        self._start_record(clock)
        self.max_object = max_object
        self.max_json = max_json
        self.root = Path(root)
        self._objects_dir = self.root / "objects"
        self._tmp_dir = self.root / "tmp"
        self._objects_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self._secret = secrets.token_bytes(32)
        self._index: dict[str, Stored] = {}
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="ragent-gateway"
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # -- the clock -------------------------------------------------------------------------------

    # -- signing ---------------------------------------------------------------------------------

    def _signature(self, method: str, key: str, expires: int, content_type: str) -> str:
        message = "\n".join([method, key, str(expires), content_type]).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, method: str, key: str, expires_in: float, content_type: str = "") -> str:
        """An absolute `/blob/` URL for `method` on `key`, valid for `expires_in` seconds."""
        expires = int(self.now() + expires_in)
        sig = self._signature(method, key, expires, content_type)
        return f"{self.url}{_BLOB}{quote(key, safe='')}?exp={expires}&sig={sig}"

    def _check(self, method: str, target: str, content_type: str) -> tuple[str | None, str]:
        """(key, "") if `target` is a valid, unexpired URL for `method`; else (None, error)."""
        split = urlsplit(target)
        raw = split.path[len(_BLOB) :]
        query = parse_qs(split.query)
        try:
            key = unquote_to_bytes(raw).decode("utf-8")
            expires = int(query["exp"][0])
            sig = query["sig"][0]
        except (KeyError, ValueError):
            return None, "SignatureDoesNotMatch"
        if quote(key, safe="") != raw:  # the URL was rebuilt or re-encoded on the way
            return None, "SignatureDoesNotMatch"
        if not hmac.compare_digest(sig, self._signature(method, key, expires, content_type)):
            return None, "SignatureDoesNotMatch"
        if self.now() > expires:
            return None, "Request has expired"
        return key, ""

    # -- the index -------------------------------------------------------------------------------

    def _path_of(self, key: str) -> Path:
        return self._objects_dir / hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _commit(self, key: str, temp: Path, size: int, sha256: str, content_type: str) -> None:
        with self._lock:
            os.replace(temp, self._path_of(key))
            self._index[key] = Stored(size, sha256, content_type, self.clock() + self._offset)

    def _remove(self, key: str) -> None:
        with self._lock:
            if self._index.pop(key, None) is not None:
                self._path_of(key).unlink(missing_ok=True)

    def _open(self, key: str) -> tuple[Stored, BinaryIO] | None:
        with self._lock:
            entry = self._index.get(key)
            if entry is None:
                return None
            return entry, self._path_of(key).open("rb")  # an open file outlives a replace or delete

    def objects(self) -> dict[str, tuple[int, str]]:
        """Every stored key -> (size, sha256 hex)."""
        with self._lock:
            return {key: (entry.size, entry.sha256) for key, entry in self._index.items()}

    def stored(self, key: str) -> Stored | None:
        """The index entry of `key` (size, sha256, content type, time stored), if any."""
        with self._lock:
            return self._index.get(key)

    def read(self, key: str) -> bytes:
        """The bytes stored under `key` (KeyError if there are none)."""
        opened = self._open(key)
        if opened is None:
            raise KeyError(key)
        with opened[1] as stream:
            return stream.read()

    # -- the record and the faults ---------------------------------------------------------------

    def _name(self, name: str) -> str:
        return _canonical(name)  # "put" and "PUT" alike

    def fail_next(
        self,
        name: str,
        *,
        status: int = 503,
        after_store: bool = False,
        reset: bool = False,
        stall: float | None = None,
        truncate: int | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next request to `name` ("health", "presign", "sign", "delete", "PUT", "GET")
        fail; several calls queue faults for the requests after it, first in first out.

        By default it is answered `status` with `body` (else `{"error": "injected fault"}`) and
        `headers` (e.g. Retry-After), its body read and nothing done. `after_store`: the request
        takes effect first (the PUT stores, the delete deletes), then fails. `reset`: the
        connection is closed with a RST instead of an answer (after the body was read). `stall`:
        nothing is said for that many seconds (or until the gateway stops), then the connection is
        closed. `truncate` (GET only): the answer announces the whole object, sends this many
        bytes of it, and closes."""
        if truncate is not None and _canonical(name) != "GET":
            raise ValueError("truncate is for GET only")
        fault = Fault(status, after_store, reset, stall, truncate, body, dict(headers or {}))
        with self._lock:
            self._faults[_canonical(name)].append(fault)

    # -- the endpoints ---------------------------------------------------------------------------

    def _authorised(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.api_key.encode())

    def presign(self, body: Mapping[str, Any]) -> _Reply:
        filename, content_type, category = body.get("filename"), body.get("contentType"), body.get("category")
        if not (
            isinstance(filename, str)
            and isinstance(content_type, str)
            and isinstance(category, str)
            and filename
            and content_type
            and category
        ):
            return _Reply(422, {"error": "filename, contentType, category required"})
        encoded = _utf8(filename)
        if encoded is None or _utf8(category) is None:
            return _Reply(422, {"error": "filename and category must be valid Unicode"})
        if len(encoded) > MAX_FILENAME:
            return _Reply(422, {"error": f"filename longer than {MAX_FILENAME} bytes"})
        if not _field_value(content_type):
            return _Reply(422, {"error": "contentType must be a valid header value"})
        key = f"{category}/{uuid.uuid4().hex}/{filename}"
        url = self.signed_url("PUT", key, self.upload_ttl, content_type)
        return _Reply(200, {"objectKey": key, "uploadUrl": url, "headers": {"Content-Type": content_type}})

    def sign(self, body: Mapping[str, Any]) -> _Reply:
        key = body.get("objectKey")
        if not isinstance(key, str) or not key or _utf8(key) is None:
            return _Reply(422, {"error": "objectKey required"})
        expires_in = body.get("expiresIn")
        if expires_in is None:
            expires_in = DEFAULT_EXPIRES
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRES:
            return _Reply(422, {"error": f"expiresIn must be an integer from 1 to {MAX_EXPIRES}"})
        return _Reply(200, {"url": self.signed_url("GET", key, expires_in)})

    def delete(self, body: Mapping[str, Any]) -> _Reply:
        key = body.get("objectKey")
        if not isinstance(key, str) or not key:
            return _Reply(422, {"error": "objectKey required"})
        self._remove(key)
        return _Reply(200, {"success": True})

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RagentGateway:
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
        self._thread.join(timeout=10)

    def __enter__(self) -> RagentGateway:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _canonical(name: str) -> str:
    upper = name.upper()
    return upper if upper in ("PUT", "GET") else name.lower()


class _Server(StandInServer["RagentGateway"]):
    def __init__(self, address: tuple[str, int], gateway: RagentGateway) -> None:
        super().__init__(address, gateway, _Handler)
        self.gateway = gateway


_BodyError = BodyError


class _Handler(StandInHandler):
    server: _Server

    # -- dispatch --------------------------------------------------------------------------------

    def _handle(self) -> None:
        gateway = self.server.gateway
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, self.path, headers)
        gateway._note(request)
        route, name = request.route, request.name
        try:
            if not name:
                allowed = _ENDPOINTS.get(route)
                if allowed is not None or route.startswith(_BLOB):
                    self.drain()
                    self._json(_Reply(405, {"detail": "Method Not Allowed"}))
                else:
                    self.drain()
                    self._json(_Reply(404, {"detail": "Not Found"}))
                return
            fault = gateway._next_fault(name)
            if name == "GET":
                self._download(fault)
                return
            if fault is not None and not fault.after:
                self.drain()
                self._fail(fault)
                return
            reply = self._upload() if name == "PUT" else self._endpoint(name)
            if reply.close:
                self.close_connection = True
            if fault is not None:
                self._fail(fault)
            elif name == "PUT":
                self._empty(reply)
            else:
                self._json(reply)
        except _BodyError as exc:
            if exc.status:
                self._json(_Reply(exc.status, {"error": exc.message}, close=True))
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _endpoint(self, name: str) -> _Reply:
        gateway = self.server.gateway
        if name == "health":
            self.drain()
            return _Reply(200, {"status": "ok", "storage": "local"})
        raw = self.read_small(gateway.max_json)
        if not gateway._authorised(self.headers.get("X-API-Key")):
            return _Reply(401, {"error": "invalid api key"}, close=raw is None)
        if raw is None:
            return _Reply(413, {"error": f"request body larger than {gateway.max_json} bytes"}, close=True)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _Reply(422, {"error": "body must be JSON"})
        if not isinstance(body, dict):
            return _Reply(422, {"error": "body must be a JSON object"})
        if name == "presign":
            return gateway.presign(body)
        if name == "sign":
            return gateway.sign(body)
        return gateway.delete(body)

    # -- blobs -----------------------------------------------------------------------------------

    def _upload(self) -> _Reply:
        gateway = self.server.gateway
        content_type = self.headers.get("Content-Type", "")
        key, error = gateway._check("PUT", self.path, content_type)
        if key is None:
            return _Reply(403, {"error": error}, close=not self.drain())
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if not chunked:
            if length is None:
                return _Reply(411, {"error": "MissingContentLength"}, close=True)
            if not length.isdigit():
                return _Reply(400, {"error": "bad Content-Length"}, close=True)
            if int(length) > gateway.max_object:
                return _Reply(413, {"error": "EntityTooLarge"}, close=True)
        fd, name = tempfile.mkstemp(dir=gateway._tmp_dir, prefix="put-")
        temp = Path(name)
        try:
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                chunks = self.read_chunks() if chunked else self.read_sized(int(length or 0))
                for chunk in chunks:
                    size += len(chunk)
                    if size > gateway.max_object:
                        return _Reply(413, {"error": "EntityTooLarge"}, close=True)
                    digest.update(chunk)
                    out.write(chunk)
            sha256 = digest.hexdigest()
            gateway._commit(key, temp, size, sha256, content_type)
            return _Reply(200, None, {"ETag": f'"{sha256}"'})
        finally:
            temp.unlink(missing_ok=True)

    def _download(self, fault: Fault | None) -> None:
        gateway = self.server.gateway
        self.drain()
        if fault is not None and fault.truncate is None:
            self._fail(fault)
            return
        key, error = gateway._check("GET", self.path, "")
        if key is None:
            self._json(_Reply(403, {"error": error}))
            return
        opened = gateway._open(key)
        if opened is None:
            self._json(_Reply(404, {"error": "not found"}))
            return
        entry, stream = opened
        with stream:
            self.send_response(200)
            self.send_header("Content-Type", entry.content_type)
            self.send_header("Content-Length", str(entry.size))
            self.send_header("ETag", f'"{entry.sha256}"')
            self.send_header("Last-Modified", email.utils.formatdate(entry.stored_at, usegmt=True))
            self.end_headers()
            left = entry.size if fault is None or fault.truncate is None else min(entry.size, fault.truncate)
            while left > 0:
                block = stream.read(min(left, _CHUNK))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
            self.wfile.flush()
        if fault is not None:
            self.close_connection = True

    # -- bodies ----------------------------------------------------------------------------------

    # -- answers ---------------------------------------------------------------------------------

    def _fail(self, fault: Fault) -> None:
        gateway = self.server.gateway
        if fault.reset:
            self.reset()
            return
        if fault.stall is not None:
            gateway.stopping.wait(fault.stall)
            self.close_connection = True
            return
        body = fault.body if fault.body is not None else json.dumps({"error": "injected fault"}).encode()
        self.send_bytes(fault.status, body, {"Content-Type": "application/json", **fault.headers})

    def _json(self, reply: _Reply) -> None:
        body = json.dumps(reply.payload).encode()
        self.send_bytes(reply.status, body, {**reply.headers, "Content-Type": "application/json"}, close=reply.close)

    def _empty(self, reply: _Reply) -> None:
        """A PUT's answer: empty on success, the JSON error otherwise."""
        if reply.status != 200:
            self._json(reply)
            return
        self.send_response(200)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()


__all__ = ["Fault", "RagentGateway", "Request", "Stored"]
