"""`syncd serve` against slow, silent and greedy clients (security finding 2).

A real `syncd serve` subprocess, small limits (`--header-timeout 1` and so on) so that every
case takes a few seconds, and raw sockets as the hostile clients: a connection that never
speaks, a request line or an upload body trickled a byte at a time, a client that never reads
its download, more connections than the service allows, more than its file descriptors allow,
and a SIGTERM while a body trickles in. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from syncd.server.app import build_app
from syncd.server.runner import ServerThread
from syncd.server.servelimits import ServeLimits
from tests.support.attack import FORM_TYPE, form, request_head
from tests.support.daemon import wait_for
from tests.support.serve import ServeProcess

pytestmark = pytest.mark.timeout(120)

#: Small limits: every hostile client below is dealt with within a second or two.
FAST = [
    "--header-timeout", "1", "--body-timeout", "1", "--send-timeout", "1",
    "--keep-alive-timeout", "1", "--shutdown-timeout", "2",
]
#: For the tests where ordinary clients run alongside the hostile one: 3 s, so that a test process
#: held up for a second or two on a busy machine does not look like a slow client itself.
ROOMY = ["--header-timeout", "3", "--body-timeout", "3", "--send-timeout", "3"]
#: Scheduling noise on two shared cores, on top of a limit.
SLACK = 2.0
USER = {"X-User-Id": "u"}
PARAMS = {"filename": "a.bin", "biz": "chat", "biz_params": {"chat_id": "c"}, "hashcode": None}


# -- hostile clients ---------------------------------------------------------------------


def connect(served: ServeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=5)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """Read what the server sends until it closes the connection (FIN or reset): when, and what."""
    end = time.monotonic() + timeout
    got = bytearray()
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server kept the connection open for {timeout}s (sent {bytes(got)[:80]!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic(), bytes(got)
        if not chunk:
            return time.monotonic(), bytes(got)
        got += chunk


def read_until_closed_or_answered(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """Read until the server closes the connection or has sent a whole response with a body."""
    end = time.monotonic() + timeout
    got = bytearray()
    while True:
        head, sep, rest = bytes(got).partition(b"\r\n\r\n")
        fields = (line.partition(b":") for line in head.split(b"\r\n"))
        length = [int(v) for k, _, v in fields if k.lower() == b"content-length"]
        if sep and length and len(rest) >= length[0]:
            return time.monotonic(), bytes(got)
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no whole answer within {timeout}s: {bytes(got)[:200]!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return time.monotonic(), bytes(got)
        got += chunk


class Peer:
    """One raw connection, polled without blocking: has the server closed it yet?"""

    def __init__(self, served: ServeProcess, first_bytes: bytes = b"") -> None:
        self.sock = connect(served)
        self.sock.setblocking(False)
        self.received = bytearray()
        self.closed = False
        if first_bytes:
            self.sock.send(first_bytes)

    def poll(self) -> bool:
        """True once the server closed the connection."""
        while not self.closed and select.select([self.sock], [], [], 0)[0]:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
            self.received += chunk
        return self.closed

    def close(self) -> None:
        self.sock.close()


def trickle(sock: socket.socket, data: bytes, every: float, stop: threading.Event | None = None) -> tuple[int, bool]:
    """Send `data` one byte per `every` seconds until it is all sent, the server closes the
    connection, or `stop` is set: (bytes sent, whether the server closed it)."""
    sent = 0
    for i in range(len(data)):
        if stop is not None and stop.is_set():
            return sent, False
        try:
            sock.sendall(data[i : i + 1])
        except OSError:
            return sent, True
        sent += 1
        if select.select([sock], [], [], every)[0]:  # the server answered or closed: done
            return sent, True
    return sent, False


def multipart(fields: dict[str, str], file_field: str, content: bytes) -> bytes:
    return form(*((name, value.encode(), None) for name, value in fields.items()), (file_field, content, "a.bin"))


def post_head(path: str, body: bytes) -> bytes:
    return request_head("POST", path, host="syncd", user="u", content_type=FORM_TYPE, length=len(body))


# -- the service, seen from outside -----------------------------------------------------------


def health(served: ServeProcess, timeout: float = 1.0) -> int | str:
    """Status of a GET /health on a fresh connection, or the name of the transport error."""
    try:
        return httpx.get(f"{served.url}/health", timeout=timeout).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def healthy_within(served: ServeProcess, seconds: float) -> bool:
    start = time.monotonic()
    return health(served, timeout=seconds) == 200 and time.monotonic() - start < seconds


def log_lines(served: ServeProcess) -> int:
    with open(served.log, "rb") as f:
        return sum(1 for _ in f)


def process(served: ServeProcess) -> psutil.Process:
    assert served.proc is not None
    return psutil.Process(served.proc.pid)


def server_side_of(served: ServeProcess, sock: socket.socket) -> bool:
    """Whether the service still holds its end of `sock`."""
    port = sock.getsockname()[1]
    return any(c.raddr and c.raddr.port == port for c in process(served).net_connections("tcp"))


def leftovers(data: Path) -> list[str]:
    """The temp and part files in the service's data dir."""
    return sorted(str(p.relative_to(data)) for d in ("tmp", "parts") for p in (data / d).iterdir())


def open_under(served: ServeProcess, *dirs: Path) -> list[str]:
    """The files under `dirs` the service holds open (deleted ones too)."""
    prefixes = tuple(str(d) + os.sep for d in dirs)
    return [f.path for f in process(served).open_files() if f.path.startswith(prefixes)]


@contextmanager
def serving(tmp_path: Path, *args: str, preexec_fn: Callable[[], None] | None = None) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path / "server-data", [*FAST, *args], preexec_fn=preexec_fn) as served:
        yield served


# -- tests ------------------------------------------------------------------------------------


def test_a_silent_connection_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        silent = connect(served)
        opened = time.monotonic()
        for _ in range(3):  # the service answers everyone else meanwhile
            assert healthy_within(served, 1.0)
        closed, sent = read_until_closed(silent, timeout=1 + 2 * SLACK)
        assert 0.8 <= closed - opened <= 1 + SLACK
        assert sent == b""  # nothing was asked, nothing is answered


def test_a_kept_alive_connection_is_closed_when_idle(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        sock = connect(served)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: syncd\r\n\r\n")
        answered = time.monotonic()
        closed, sent = read_until_closed(sock, timeout=1 + 2 * SLACK)
        assert sent.startswith(b"HTTP/1.1 200 ")
        assert closed - answered <= 1 + SLACK


def test_a_trickled_request_line_is_cut(tmp_path: Path) -> None:
    request = b"GET /health?" + b"x" * 100 + b" HTTP/1.1\r\nHost: syncd\r\n\r\n"
    with serving(tmp_path) as served:
        sock = connect(served)
        start = time.monotonic()
        sent, cut = trickle(sock, request, every=0.2)
        assert cut, "the whole request went through at 5 bytes/s"
        assert sent < len(request)
        closed, answer = read_until_closed(sock, timeout=SLACK)
        # 1 s, plus 1 s per 500 bytes received (none to speak of here), at most 2 s
        assert closed - start <= 2 + SLACK
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
        assert healthy_within(served, 1.0)


@pytest.mark.parametrize("endpoint", ["uploadSimpleFile", "uploadFilePart"])
def test_a_trickled_upload_is_cut_and_leaves_nothing_behind(tmp_path: Path, endpoint: str) -> None:
    content = os.urandom(10_000)
    with serving(tmp_path, *ROOMY) as served:
        data = served.data
        client = httpx.Client(base_url=served.url, headers=USER, timeout=10)
        if endpoint == "uploadSimpleFile":
            fields = {"params": json.dumps({**PARAMS, "size": len(content)})}
            file_field = "file"
        else:
            init = {**PARAMS, "size": len(content), "part_size": len(content)}
            file_id = client.post("/initMultipartUploadFile", json=init).json()["data"]
            fields = {"params": json.dumps({"file_id": file_id, "part_number": 1})}
            file_field = "part"
        body = multipart(fields, file_field, content)
        sock = connect(served)
        sock.sendall(post_head(f"/{endpoint}", body) + body[:300])  # a brisk start, then 10 bytes/s
        result: list[tuple[int, bool]] = []
        trickler = threading.Thread(target=lambda: result.append(trickle(sock, body[300:], every=0.1)))
        started = time.monotonic()
        trickler.start()

        # Meanwhile an upload at an ordinary speed goes through.
        normal = os.urandom(300_000)
        ok = client.post(
            "/uploadSimpleFile", files={"file": ("b.bin", normal)},
            data={"params": json.dumps({**PARAMS, "filename": "b.bin", "size": len(normal)})},
        )
        assert ok.json()["code"] == 0, ok.text

        trickler.join(timeout=30)
        sent, cut = result[0]
        assert cut and sent < len(body) - 300
        # 3 s after the headers, plus 1 s per 500 bytes: about 3.6 s for the 300 brisk ones
        assert time.monotonic() - started <= 3.6 + 2 * SLACK

        def clean() -> bool:
            expected = [] if endpoint == "uploadSimpleFile" else [f"parts/{file_id}"]
            return leftovers(data) == expected and open_under(served, data / "tmp", data / "parts") == []

        wait_for(clean, timeout=SLACK, what=f"no leftovers (have {leftovers(data)})")
        files = client.get("/listChatFiles", params={"chat_id": "c"}).json()["data"]["items"]
        if endpoint == "uploadSimpleFile":
            assert [f["filename"] for f in files] == ["b.bin"]
        else:
            status = client.get("/getMultipartUploadFileStatus", params={"file_id": file_id}).json()["data"]
            assert status["uploaded_parts"] == []
        log = served.log.read_text()
        assert "Traceback" not in log and "internal error" not in log


def test_an_upload_at_a_modest_steady_rate_is_not_cut(tmp_path: Path) -> None:
    # 1000 bytes/s, twice the rate that keeps the body deadline where it is, for over twice
    # the body timeout: it arrives whole.
    content = os.urandom(5_000)
    with serving(tmp_path, "--header-timeout", "2", "--body-timeout", "2") as served:
        body = multipart({"params": json.dumps({**PARAMS, "size": len(content)})}, "file", content)
        request = post_head("/uploadSimpleFile", body) + body
        sock = connect(served)
        for i in range(0, len(request), 100):
            sock.sendall(request[i : i + 100])
            assert not select.select([sock], [], [], 0.1)[0] or i + 100 >= len(request), "cut off"
        _, answer = read_until_closed_or_answered(sock, timeout=SLACK)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert b'"code":0' in answer


def test_a_client_that_does_not_read_its_download_is_aborted(tmp_path: Path) -> None:
    size = 24 * 1024 * 1024  # well past what the kernel buffers on both sides hold
    content = os.urandom(size)
    with serving(tmp_path, *ROOMY) as served:
        client = httpx.Client(base_url=served.url, headers=USER, timeout=30)
        up = client.post(
            "/uploadSimpleFile", files={"file": ("big.bin", content)},
            data={"params": json.dumps({**PARAMS, "filename": "big.bin", "size": size})},
        )
        file_id = up.json()["data"]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", served.port))
        sock.sendall(f"GET /downloadFile?file_id={file_id} HTTP/1.1\r\nHost: syncd\r\nX-User-Id: u\r\n\r\n".encode())
        asked = time.monotonic()
        wait_for(lambda: server_side_of(served, sock), timeout=SLACK, what="the download accepted")

        # A reader at an ordinary speed, meanwhile, gets the whole file.
        assert client.get("/downloadFile", params={"file_id": file_id}).content == content

        # The normal download took its time too; the stalled one is cut 3 s after its writes stalled.
        wait_for(lambda: not server_side_of(served, sock), timeout=3 + 2 * SLACK, what="the stalled download cut")
        print(f"\nstalled download cut {time.monotonic() - asked:.1f} s after it was asked for")
        total = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
        except ConnectionResetError:
            pass
        assert total < size
        assert healthy_within(served, 1.0)


def test_connections_over_the_limit_are_refused_at_once_and_health_recovers(tmp_path: Path) -> None:
    limit, attackers_count = 50, 200
    with serving(tmp_path, "--max-connections", str(limit), "--header-timeout", "3") as served:
        fds_before = process(served).num_fds()
        attackers = [Peer(served, b"GET /health HTTP/1.1\r\n") for _ in range(attackers_count)]
        attacked = time.monotonic()
        try:
            # Over the limit: answered (503 or a close) at once, not left hanging.
            wait_for(lambda: sum(a.poll() for a in attackers) >= attackers_count - limit, timeout=SLACK,
                     what="the connections over the limit refused")
            still_open = sum(not a.poll() for a in attackers)
            assert still_open <= limit
            assert process(served).num_fds() <= fds_before + limit + 5
            for a in attackers:
                if a.closed and a.received:
                    assert a.received.startswith(b"HTTP/1.1 503 "), bytes(a.received[:80])
            # A newcomer meanwhile is answered or refused at once, never kept waiting.
            before = time.monotonic()
            assert health(served, timeout=5) in (200, 503, "RemoteProtocolError", "ReadError", "ConnectError")
            assert time.monotonic() - before < 1.0
            # The header timeout (3 s, at most 6 s with the bytes sent) cuts every attacker, while
            # they still hold their ends open; health may answer as soon as the first ones are cut
            # (the connections were accepted over a moment), so each is waited for on its own.
            wait_for(lambda: all(a.poll() for a in attackers), timeout=6 + SLACK, what="every attacker cut")
            wait_for(lambda: health(served) == 200, timeout=SLACK, what="health after the attack")
            assert time.monotonic() - attacked <= 6 + 2 * SLACK
        finally:
            for a in attackers:
                a.close()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_running_out_of_file_descriptors_does_not_flood_the_log(tmp_path: Path) -> None:
    # --max-connections far above what 256 descriptors allow: the connection limit cannot help
    # here, accept() itself fails with "Too many open files".
    args = ["--max-connections", "1000", "--header-timeout", "60"]
    with serving(tmp_path, *args, preexec_fn=_low_fd_limit) as served:
        lines_before = log_lines(served)
        cpu_before = sum(process(served).cpu_times()[:2])
        attackers = [Peer(served, b"POST /uploadSimpleFile HTTP/1.1\r\nHost: syncd\r\n") for _ in range(400)]
        try:
            end = time.monotonic() + 5
            while time.monotonic() < end:  # a window of 5 s, watched as it passes
                assert log_lines(served) - lines_before < 100, served.log.read_text()[-2000:]
                time.sleep(0.1)
            lines = log_lines(served) - lines_before
            cpu = sum(process(served).cpu_times()[:2]) - cpu_before
            assert "Too many open files" in served.log.read_text()  # the trouble is reported
            assert cpu < 2.0, f"the service spent {cpu:.1f} s of CPU in 5 s with no descriptors left"
        finally:
            for a in attackers:
                a.close()
        wait_for(lambda: health(served) == 200, timeout=10, what="health once the attackers left")
        print(f"\nout of descriptors for 5 s: {lines} log lines, {cpu:.2f} s of CPU")


def test_sigterm_while_a_body_trickles_exits_within_the_shutdown_timeout(tmp_path: Path) -> None:
    content = os.urandom(10_000)
    with serving(tmp_path, "--body-timeout", "60") as served:
        assert served.proc is not None
        body = multipart({"params": json.dumps({**PARAMS, "size": len(content)})}, "file", content)
        sock = connect(served)
        sock.sendall(post_head("/uploadSimpleFile", body) + body[:300])
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(sock, body[300:], 0.2, stop))
        trickler.start()
        try:
            wait_for(lambda: leftovers(served.data) != [], timeout=SLACK, what="the upload under way")
            served.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                code = served.proc.wait(timeout=2 + 3 * SLACK)
            except subprocess.TimeoutExpired:
                raise AssertionError("syncd serve is still running long after the shutdown timeout") from None
            assert code == 0
            assert time.monotonic() - signalled <= 2 + SLACK
            assert leftovers(served.data) == []  # the handler saw the disconnect and cleaned up
        finally:
            stop.set()
            trickler.join()


def test_the_embedded_service_has_the_same_guard(server_data: Path) -> None:
    assert ServerThread(build_app(server_data)).limits == ServeLimits()  # `syncd serve`'s defaults
    with ServerThread(build_app(server_data), limits=ServeLimits(header_timeout=0.5)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port))
        opened = time.monotonic()
        closed, sent = read_until_closed(silent, timeout=0.5 + 2 * SLACK)
        assert closed - opened <= 0.5 + SLACK and sent == b""
        assert httpx.get(f"{server.url}/health", timeout=1).status_code == 200
