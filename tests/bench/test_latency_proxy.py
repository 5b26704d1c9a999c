"""Opt-in (`-m bench`): the latency proxy costs what it models and counts what it carries.

The upstream is a small HTTP/1.1 keep-alive server in a thread of this process. Lower bounds are
exact (the proxy never forwards early); upper bounds leave room for a loaded machine.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from latency_proxy import LatencyProxy, Network, ProxyProcess  # noqa: E402

pytestmark = pytest.mark.bench


class Handler(BaseHTTPRequestHandler):
    """GET /N answers N bytes; POST answers the length of what it read."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"x" * int(self.path.strip("/") or 0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = str(len(self.rfile.read(int(self.headers["Content-Length"])))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", int(server.server_address[1])
    server.shutdown()
    server.server_close()


def timed_get(client: httpx.Client, path: str) -> float:
    t0 = time.monotonic()
    client.get(path).raise_for_status()
    return time.monotonic() - t0


def test_request_costs_rtt_and_new_connection_costs_handshake(upstream: tuple[str, int]) -> None:
    rtt = 0.1
    with LatencyProxy(*upstream, Network(rtt=rtt, handshake_rtts=2)) as proxy:
        with httpx.Client(base_url=proxy.url) as client:
            first = timed_get(client, "/10")
            second = timed_get(client, "/10")
        assert first >= 3 * rtt  # handshake (2 RTT) + the request (1 RTT)
        assert rtt <= second < 2.5 * rtt  # the kept-alive connection: no handshake
        assert proxy.stats().connections == 1
        with httpx.Client(base_url=proxy.url) as other:
            assert timed_get(other, "/10") >= 3 * rtt
        assert proxy.stats().connections == 2


def test_a_40ms_proxy_delays_every_request(upstream: tuple[str, int]) -> None:
    with LatencyProxy(*upstream, Network(rtt=0.04, handshake_rtts=0)) as proxy, httpx.Client(base_url=proxy.url) as c:
        times = [timed_get(c, "/100") for _ in range(5)]
    assert min(times) >= 0.04


def test_a_streamed_response_pays_the_delay_once(upstream: tuple[str, int]) -> None:
    size = 4 << 20  # 64 chunks: per-chunk serial delays would take 64 x RTT/2 = 3.2 s
    with LatencyProxy(*upstream, Network(rtt=0.1, handshake_rtts=0)) as proxy, httpx.Client(base_url=proxy.url) as c:
        t0 = time.monotonic()
        assert len(c.get(f"/{size}").content) == size
        elapsed = time.monotonic() - t0
        assert proxy.stats().bytes_down >= size
    assert 0.1 <= elapsed < 1.5


def test_bandwidth_cap_each_way(upstream: tuple[str, int]) -> None:
    rate, size = 2e6, 1_000_000
    network = Network(bandwidth=rate, handshake_rtts=0)
    with LatencyProxy(*upstream, network) as proxy, httpx.Client(base_url=proxy.url) as client:
        down = timed_get(client, f"/{size}")
        t0 = time.monotonic()
        assert client.post("/", content=b"y" * size).text == str(size)
        up = time.monotonic() - t0
    assert down >= size / rate
    assert up >= size / rate
    assert down < 4 * size / rate and up < 4 * size / rate


def test_in_a_child_process(upstream: tuple[str, int]) -> None:
    with ProxyProcess(*upstream, Network(rtt=0.04, handshake_rtts=2)) as proxy:
        assert proxy.stats().connections == 0
        with httpx.Client(base_url=proxy.url) as client:
            assert timed_get(client, "/10") >= 3 * 0.04
            assert timed_get(client, "/10") >= 0.04
        stats = proxy.stats()
        assert stats.connections == 1
        assert stats.bytes_up > 0 and stats.bytes_down > 20
    assert proxy.proc.returncode == 0
