"""Harness for attacking `syncd serve` from outside, as a hostile client would.

- `start_serve(data, *options, nofile=, memory=)`: the service as a subprocess with extra
  options and resource limits. With `SYNCD_ATTACKS_BASELINE=1` the options this build of
  `syncd serve --help` does not list are dropped (`.dropped`), so the suite can describe a
  build that predates them.
- `Watch`: around one attack, the server's peak resident set (`VmHWM`, reset at the start),
  the worst `/health` latency seen by a poller thread, the log lines written meanwhile
  (tracebacks, growth); on leaving it records a row in `ATTACKS`, whatever happened, so the
  results table also describes a server that fails the guarantees.
- `Raw`: a raw socket client for slow, silent and half-finished requests; `Api`: an ordinary
  client (httpx) for the protocol's endpoints; multipart bodies built by hand.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.serve import ServeProcess, _child_env

BASELINE = os.environ.get("SYNCD_ATTACKS_BASELINE") == "1"
MiB = 1024 * 1024
GiB = 1024 * MiB
RSS_LIMIT_MB = 200.0
HEALTH_LIMIT_S = 1.0
CHAT = "attacks"
TRACEBACK_MARKS = (b"Traceback (most recent call last)", b"<traceback object at")

# -- the server ------------------------------------------------------------------------------


@functools.cache
def supported_options() -> frozenset[str]:
    """The long options `syncd serve --help` lists in the code under test."""
    out = subprocess.run(
        [sys.executable, "-m", "syncd", "serve", "--help"], capture_output=True, text=True, env=_child_env(),
        timeout=60, check=True,
    ).stdout
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", out))


def _filter_options(options: Iterable[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped): in baseline mode, options unknown to this build go, with their value."""
    items = list(options)
    if not BASELINE:
        return items, []
    known = supported_options()
    kept: list[str] = []
    dropped: list[str] = []
    i = 0
    while i < len(items):
        name = items[i]
        takes_value = i + 1 < len(items) and not items[i + 1].startswith("--") and "=" not in name
        chunk = items[i : i + 2] if takes_value else items[i : i + 1]
        (kept if name.split("=", 1)[0] in known else dropped).extend(chunk)
        i += len(chunk)
    return kept, dropped


class AttackServer(ServeProcess):
    """A `ServeProcess` that knows its peak memory and reads its own log."""

    def __init__(self, data: Path, *options: str, nofile: int | None = None, memory: int | None = None) -> None:
        kept, self.dropped = _filter_options(options)
        limits: dict[int, tuple[int, int]] = {}
        if nofile is not None:
            limits[resource.RLIMIT_NOFILE] = (nofile, nofile)
        if memory is not None:
            limits[resource.RLIMIT_AS] = (memory, memory)
        super().__init__(data, kept, limits=limits)

    def peak_rss_mb(self) -> float | None:
        """`VmHWM` (the peak resident set since start or the last reset) in MB, None once gone."""
        if not self.alive():
            return None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def reset_peak_rss(self) -> None:
        """Start the high-water mark again from the current resident set (Linux >= 4.0)."""
        if self.alive():
            with contextlib.suppress(OSError), open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_count(self, needle: bytes, start: int = 0, limit: int = 512 * MiB) -> int:
        """Occurrences of `needle` in the log from byte `start` (reading at most `limit` bytes)."""
        count = 0
        tail = b""
        with contextlib.suppress(FileNotFoundError), open(self.log, "rb") as f:
            f.seek(start)
            left = limit
            while left > 0 and (chunk := f.read(min(4 * MiB, left))):
                left -= len(chunk)
                data = tail + chunk
                count += data.count(needle)
                tail = data[-(len(needle) - 1) :] if len(needle) > 1 else b""  # too short to hold one
        return count

    def log_text(self, start: int = 0, limit: int = MiB) -> str:
        with contextlib.suppress(FileNotFoundError), open(self.log, "rb") as f:
            f.seek(start)
            return f.read(limit).decode("utf-8", "replace")
        return ""

    def healthy(self, timeout: float = 3.0) -> bool:
        if not self.alive():
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False


def start_serve(data: Path, *options: str, nofile: int | None = None, memory: int | None = None) -> AttackServer:
    """`syncd serve` on `data` with `options`, started and healthy."""
    server = AttackServer(data, *options, nofile=nofile, memory=memory)
    server.start()
    return server


# -- watching an attack ------------------------------------------------------------------------


class HealthMonitor:
    """Polls `/health` in a thread (fresh connection each time, or one kept alive) and samples the
    server's peak RSS. `worst` is the longest time `/health` went without an answer: a request's
    latency, or, across failed requests, from the first failure until the next answer."""

    def __init__(self, server: AttackServer, *, keepalive: bool = False, interval: float = 0.1,
                 timeout: float = 3.0, probe: bool = True) -> None:
        self.server = server
        self.keepalive = keepalive
        self.interval = interval
        self.timeout = timeout
        self.worst = 0.0
        self.probes = 0
        self.failures = 0
        self.peak_rss_mb: float | None = None
        self._stall_since: float | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._rss_loop, name="attack-rss", daemon=True)]
        if probe:
            self._threads.append(threading.Thread(target=self._probe_loop, name="attack-health", daemon=True))

    def _probe_loop(self) -> None:
        client = httpx.Client(timeout=self.timeout) if self.keepalive else None
        url = f"{self.server.url}/health"
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.get(url) if client else httpx.get(url, timeout=self.timeout)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                ended = time.monotonic()
                self.probes += 1
                if ok:
                    since = self._stall_since if self._stall_since is not None else began
                    self.worst = max(self.worst, ended - since)
                    self._stall_since = None
                else:
                    self.failures += 1
                    if self._stall_since is None:
                        self._stall_since = began
                self._stop.wait(self.interval)
        finally:
            if client is not None:
                client.close()

    def sample_rss(self) -> None:
        rss = self.server.peak_rss_mb()
        if rss is not None:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, rss)

    def _rss_loop(self) -> None:
        while not self._stop.wait(0.05):
            self.sample_rss()

    def start(self) -> HealthMonitor:
        self.sample_rss()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self.sample_rss()
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        if self._stall_since is not None:
            self.worst = max(self.worst, time.monotonic() - self._stall_since)

    def __enter__(self) -> HealthMonitor:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class AttackRow:
    attack: str
    peak_rss_mb: float | None
    worst_health_s: float | None
    outcome: str


ATTACKS: list[AttackRow] = []


class Watch:
    """One attack on `server`: resets its peak RSS, polls `/health`, notes where the log was; on
    exit records a row in `ATTACKS` with `outcome` (set by the test as it learns things)."""

    def __init__(self, name: str, server: AttackServer, *, keepalive: bool = False, health: bool = True) -> None:
        self.name = name
        self.server = server
        self.outcome = ""
        self.health = health  # False: the attack restarts the server, so /health is not watched
        self.monitor = HealthMonitor(server, keepalive=keepalive, probe=health)
        self.log_start = 0
        self.started = 0.0

    def __enter__(self) -> Watch:
        self.server.reset_peak_rss()
        self.log_start = self.server.log_size()
        self.started = time.monotonic()
        self.monitor.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.monitor.stop()
        outcome = self.outcome
        if exc is not None and not isinstance(exc, AssertionError):
            outcome = f"{outcome}; attack stopped by {type(exc).__name__}: {exc}".lstrip("; ")
        if self.server.log_count(b"MemoryError", self.log_start):
            outcome += "; MemoryError in the log"
        code = self.server.proc.returncode if self.server.proc is not None else None
        if code not in (None, 0, -9):
            outcome += f"; the server died (exit status {code})"
        if self.server.dropped:
            outcome = f"{outcome} (options dropped: {' '.join(self.server.dropped)})"
        worst = round(self.monitor.worst, 3) if self.health else None
        ATTACKS.append(AttackRow(self.name, self.peak_rss_mb, worst, outcome))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def peak_rss_mb(self) -> float | None:
        return None if self.monitor.peak_rss_mb is None else round(self.monitor.peak_rss_mb, 1)

    def tracebacks(self) -> int:
        """Unhandled exceptions logged since the attack began: a formatted traceback, or (uvicorn's
        own "Exception in ASGI application", rendered as JSON) the exception info."""
        return sum(self.server.log_count(mark, self.log_start) for mark in TRACEBACK_MARKS)

    def log_growth(self) -> int:
        return self.server.log_size() - self.log_start

    def check(self, *, rss_mb: float = RSS_LIMIT_MB, health_s: float = HEALTH_LIMIT_S) -> None:
        """The guarantees every attack keeps: bounded memory, `/health` answering, no traceback."""
        problems = []
        if self.monitor.peak_rss_mb is not None and self.monitor.peak_rss_mb > rss_mb:
            problems.append(f"server peak RSS {self.monitor.peak_rss_mb:.0f} MB > {rss_mb:.0f} MB")
        if self.health and self.monitor.worst > health_s:
            problems.append(f"/health went {self.monitor.worst:.2f} s without an answer (limit {health_s} s)")
        if self.health and self.monitor.probes == 0:
            problems.append("/health was never probed")
        tracebacks = self.tracebacks()
        if tracebacks:
            first = self.server.log_text(self.log_start)
            at = min((i for m in TRACEBACK_MARKS if (i := first.find(m.decode())) >= 0), default=0)
            problems.append(f"{tracebacks} traceback(s) in the serve log, e.g. {first[max(0, at - 300):at + 700]}")
        assert not problems, f"{self.name} ({self.outcome}): " + "; ".join(problems)


# -- a raw client --------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """One TCP connection to the server, driven byte by byte."""

    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.received = bytearray()
        self.closed = False  # the server hung up (EOF or reset)
        self.sent = 0

    def send(self, data: bytes) -> bool:
        """Send all of `data`; False if the server has hung up."""
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.closed = True
            return False
        self.sent += len(data)
        return True

    def poll(self, wait: float) -> bool:
        """Wait up to `wait` s for the server to answer or hang up; True if it did either."""
        if self.closed:
            return True
        poller = select.poll()  # not select(): the test may hold more than FD_SETSIZE sockets
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(max(0.0, wait) * 1000):
            return False
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError):
            self.closed = True
            return True
        if not data:
            self.closed = True
        self.received += data
        return True

    def wait_closed(self, deadline: float) -> bool:
        """Read (and keep) whatever comes until the server hangs up or `deadline` passes."""
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.5))
        return True

    def response(self, timeout: float = 10.0) -> RawResponse | None:
        """The server's answer (waiting up to `timeout`), or None if it hung up without one. A
        body cut short of its Content-Length comes back short (and `.closed` is True)."""
        deadline = time.monotonic() + timeout
        needed: int | None = None  # the whole answer's length, once its headers are in
        while True:
            if needed is None:
                end = self.received.find(b"\r\n\r\n")
                if end >= 0:
                    head = _parse_response(bytes(self.received[: end + 4]), complete=True)
                    length = head.headers.get("content-length", "") if head else ""
                    needed = end + 4 + int(length) if length.isdigit() else -1
            if (needed is not None and needed >= 0 and len(self.received) >= needed) or self.closed:
                return _parse_response(bytes(self.received), complete=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.poll(min(left, 0.5))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _parse_response(data: bytes, *, complete: bool) -> RawResponse | None:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if len(body) < int(length):
            return RawResponse(status, headers, body) if complete else None
        return RawResponse(status, headers, body[: int(length)])
    return RawResponse(status, headers, body) if complete else None


def request_head(
    method: str,
    path: str,
    *,
    host: str = "127.0.0.1",
    user: str | None = "attacker",
    length: int | None = None,
    chunked: bool = False,
    content_type: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    """A request line and headers, ready to send (through the blank line)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if user is not None:
        lines.append(f"X-User-Id: {user}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Push:
    """How sending a large body went: bytes sent, and why the sending stopped
    (`done`, `answered` = the server answered first, `cut` = it hung up, `deadline`, `stalled`)."""

    sent: int
    stopped: str
    seconds: float


def push(raw: Raw, chunks: Iterable[bytes], *, deadline: float, look_every: int = MiB) -> Push:
    """Send `chunks` as fast as the server takes them, stopping as soon as it answers or hangs
    up; every `look_every` bytes give it a moment to do so (so a refusal is seen early)."""
    began = time.monotonic()
    sent = 0
    since_look = 0
    stopped = "done"
    for chunk in chunks:
        if time.monotonic() > deadline:
            stopped = "deadline"
            break
        since_look += len(chunk)
        if raw.poll(0.002 if since_look >= look_every else 0.0):
            stopped = "cut" if raw.closed and not raw.received else "answered"
            break
        if since_look >= look_every:
            since_look = 0
        try:
            if not raw.send(chunk):
                stopped = "cut"
                break
        except TimeoutError:
            stopped = "stalled"
            break
        sent += len(chunk)
    return Push(sent, stopped, time.monotonic() - began)


def trickle(raw: Raw, data: bytes, *, interval: float, deadline: float,
            stop: threading.Event | None = None) -> bool:
    """Send `data` one byte every `interval` s until done, `deadline`, or `stop`; True as soon as
    the server hangs up."""
    for i in range(len(data)):
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            return False
        if not raw.send(data[i : i + 1]):
            return True
        until = time.monotonic() + interval
        while (left := until - time.monotonic()) > 0:
            raw.poll(left)  # the interval is spent listening: a hang-up ends it at once
            if raw.closed:
                return True
    return raw.closed


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `condition` until it holds (True) or `timeout` s pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)  # polling a condition


def _queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) of the loopback TCP socket local_port -> remote_port."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                ports = int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)
                if ports == (local_port, remote_port):
                    tx, rx = cols[4].split(":")
                    return int(tx, 16), int(rx, 16)
    return None


def server_has_read(raw: Raw, server_port: int) -> bool:
    """Everything sent on `raw` has left it and the server's side has read it all."""
    client_port = raw.sock.getsockname()[1]
    ours, theirs = _queues(client_port, server_port), _queues(server_port, client_port)
    return ours is not None and theirs is not None and ours[0] == 0 and theirs[1] == 0


def holds_open(server: AttackServer, path: Path) -> bool:
    """The server process has `path` open (best effort: False when it cannot tell)."""
    with contextlib.suppress(OSError):
        fds = Path(f"/proc/{server.pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == str(path):
                    return True
    return False


def chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`Transfer-Encoding: chunked` framing of `chunks`, with the last chunk."""
    for chunk in chunks:
        if chunk:
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


# -- multipart bodies --------------------------------------------------------------------------

BOUNDARY = "syncd-attack-7d1f2c"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form_field(name: str, value: bytes, filename: str | None = None) -> bytes:
    """One part of a multipart/form-data body, through the blank line and the value (no CRLF after)."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return (head + "\r\n").encode() + value + b"\r\n"


FORM_END = f"--{BOUNDARY}--\r\n".encode()


def form(*fields: tuple[str, bytes, str | None]) -> bytes:
    return b"".join(form_field(n, v, f) for n, v, f in fields) + FORM_END


def part_form_head(file_id: int, part_number: int) -> bytes:
    """An uploadFilePart body up to where the part's bytes begin."""
    params = json.dumps({"file_id": file_id, "part_number": part_number}).encode()
    head = form_field("params", params) + form_field("part", b"", "part")
    return head[: -len(b"\r\n")]


# -- an ordinary client ------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_params(name: str, size: int, hashcode: str | None, **extra: Any) -> dict[str, Any]:
    return {"filename": name, "biz": "chat", "biz_params": {"chat_id": CHAT}, "size": size,
            "hashcode": hashcode, **extra}


class Api:
    """The protocol's endpoints as user `user`, with httpx."""

    def __init__(self, url: str, user: str, *, timeout: float = 30.0) -> None:
        self.user = user
        self.client = httpx.Client(base_url=url, headers={"X-User-Id": user}, timeout=timeout)

    def upload(self, data: bytes, name: str = "f.bin") -> int:
        params = upload_params(name, len(data), sha256(data))
        answer = self.client.post("/uploadSimpleFile", files={"file": (name, data)},
                                  data={"params": json.dumps(params)})
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        return int(answer.json()["data"])

    def init(self, size: int, part_size: int, hashcode: str | None = None, name: str = "m.bin",
             **extra: Any) -> httpx.Response:
        body = {**upload_params(name, size, hashcode), "part_size": part_size, **extra}
        return self.client.post("/initMultipartUploadFile", json=body)

    def init_ok(self, size: int, part_size: int, hashcode: str | None = None, name: str = "m.bin") -> int:
        answer = self.init(size, part_size, hashcode, name)
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        return int(answer.json()["data"])

    def part(self, file_id: int, number: int, data: bytes) -> httpx.Response:
        params = json.dumps({"file_id": file_id, "part_number": number})
        return self.client.post("/uploadFilePart", files={"part": ("part", data)}, data={"params": params})

    def part_ok(self, file_id: int, number: int, data: bytes) -> None:
        answer = self.part(file_id, number, data)
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text

    def complete(self, file_id: int, timeout: float = 30.0) -> httpx.Response:
        return self.client.post("/completeMultipartUpload", json={"file_id": file_id}, timeout=timeout)

    def abort(self, file_id: int) -> httpx.Response:
        return self.client.post("/abortMultipartUpload", json={"file_id": file_id})

    def delete(self, file_id: int) -> httpx.Response:
        return self.client.delete("/deleteFile", params={"file_id": file_id})

    def status(self, file_id: int, timeout: float = 30.0) -> httpx.Response:
        return self.client.get("/getMultipartUploadFileStatus", params={"file_id": file_id}, timeout=timeout)

    def download(self, file_id: int) -> httpx.Response:
        return self.client.get("/downloadFile", params={"file_id": file_id})

    def link(self, file_id: int, expires_in: int = 600, headers: dict[str, str] | None = None) -> str:
        answer = self.client.get("/getFileDownloadUrl", params={"file_id": file_id, "expires_in": expires_in},
                                 headers=headers)
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        return str(answer.json()["data"])

    def files(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            answer = self.client.get("/listChatFiles", params={"chat_id": CHAT, "offset": len(items), "limit": 1000})
            assert answer.status_code == 200, answer.text
            page = answer.json()["data"]["items"]
            items += page
            if not page:
                return items

    def audit(self) -> list[str]:
        """Every `ok` file of this user downloads to bytes whose sha256 is its hashcode; the
        mismatches otherwise."""
        wrong = []
        for info in self.files():
            if info["status"] != "ok":
                continue
            answer = self.download(int(info["id"]))
            if answer.status_code != 200 or sha256(answer.content) != info["hashcode"]:
                wrong.append(f"file {info['id']} ({info['filename']}): HTTP {answer.status_code}, "
                             f"{len(answer.content)} bytes, sha256 {sha256(answer.content)[:12]} "
                             f"!= hashcode {info['hashcode'][:12]}")
        return wrong

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- refusals ----------------------------------------------------------------------------------

# What Python exception text looks like when it leaks into a message.
_LEAKS = re.compile(
    r"Traceback|Error\b|Exception|errno|object at 0x|<class |\bat index \d+|character \d+|"
    r"line \d+ column \d+|Expecting |invalid literal|too large to convert|maximum recursion"
)


def leaked_exception_text(message: str) -> str | None:
    match = _LEAKS.search(message)
    return None if match is None else match.group(0)


def refusal_problem(status: int, body: bytes, *, names: Iterable[str] = (), allowed: Iterable[int] = ()) -> str | None:
    """Why (status, body) is not a clean refusal: a 4xx (one of `allowed` if given) envelope
    `{"code": status, "data": null, "message": ...}` whose message names one of `names` (if
    given) and carries no Python exception text. None when it is one."""
    allowed = set(allowed)
    if not 400 <= status < 500 or (allowed and status not in allowed):
        return f"HTTP {status} (wanted {sorted(allowed) or '4xx'}): {body[:300]!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"HTTP {status} but not a JSON envelope: {body[:300]!r}"
    if not isinstance(doc, dict) or doc.get("code") != status or doc.get("data") is not None:
        return f"HTTP {status} but not a refusal envelope: {doc!r}"
    message = doc.get("message")
    if not isinstance(message, str) or not message:
        return f"HTTP {status} without a message: {doc!r}"
    leak = leaked_exception_text(message)
    if leak:
        return f"message carries Python exception text ({leak!r}): {message!r}"
    names = list(names)
    if names and not any(n in message for n in names):
        return f"message does not name {' or '.join(names)}: {message!r}"
    return None


@dataclass
class Timer:
    """Deadlines measured from one start."""

    start: float = field(default_factory=time.monotonic)

    def since(self) -> float:
        return time.monotonic() - self.start

    def at(self, seconds: float) -> float:
        return self.start + seconds
