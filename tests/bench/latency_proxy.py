"""A TCP proxy that puts a modelled network between a client and `syncd serve` on loopback.

What it models, per accepted connection:

- **Propagation delay.** Every chunk read from either side is forwarded RTT/2 after it was read
  (a delay line: chunks in flight overlap, order is kept). A request that fits in one round trip
  therefore costs at least one RTT, however the client splits it into writes, and a response
  streamed in many chunks costs RTT/2 once, not per chunk. At most WINDOW bytes per direction
  and connection are in flight (a large TCP window; the reader stops reading beyond it).
- **Handshake.** Nothing the client sends is forwarded before `handshake_rtts` x RTT have passed
  since the connection was accepted: TCP's SYN / SYN-ACK plus TLS 1.3's one round trip is 2.
  A new connection's first request costs (handshake_rtts + 1) x RTT; a reused one's costs 1 RTT.
- **Bandwidth (optional).** One shared link per direction: a chunk's transmission starts when the
  previous chunk in that direction (on any connection) has been sent, and takes len / bandwidth
  seconds; the propagation delay follows. The reader waits for each chunk's transmission to end
  before reading the next, so a capped link pushes back on the sender as a real one does.

It counts the connections it accepted and the bytes it carried each way, so a benchmark can
show how well a client reuses connections.

Two ways to run it: `LatencyProxy` (an asyncio loop in a thread of this process) and
`ProxyProcess` (the same proxy in a child process, so its CPU is not charged to, and its
interpreter lock not shared with, a client measured in this process). As a script it is the
child process: it prints `{"port": N}`, then answers every `stats` line on stdin with one JSON
line, and stops at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

#: Bytes read at a time from either side.
CHUNK = 64 * 1024
#: Bytes in flight per direction and connection before the reader stops reading.
WINDOW = 16 * 1024 * 1024


@dataclass(frozen=True)
class Network:
    """The network a proxy models: round-trip time (s), round trips per new connection, and the
    link's bytes/s per direction (None: unlimited)."""

    rtt: float = 0.0
    handshake_rtts: int = 2
    bandwidth: float | None = None


@dataclass(frozen=True)
class Stats:
    """What a proxy carried so far."""

    connections: int
    bytes_up: int
    bytes_down: int


class Link:
    """One direction of the shared link: when each chunk has been transmitted."""

    def __init__(self, bandwidth: float | None) -> None:
        self.bandwidth, self.free_at = bandwidth, 0.0

    def transmit(self, size: int, now: float) -> float:
        """When a chunk of `size` bytes handed over `now` has been sent (`now` if unlimited)."""
        if self.bandwidth is None:
            return now
        self.free_at = max(self.free_at, now) + size / self.bandwidth
        return self.free_at


class LatencyProxy:
    """The proxy in a daemon thread of this process, listening on a free loopback port.

    Use as a context manager, or call `start()` / `stop()`. `url` is the proxy's http URL.
    """

    def __init__(self, upstream_host: str, upstream_port: int, network: Network) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.network = network
        self.port = 0
        self._connections = self._up = self._down = 0
        self._lock = threading.Lock()
        self._links = {"up": Link(network.bandwidth), "down": Link(network.bandwidth)}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> Stats:
        with self._lock:
            return Stats(self._connections, self._up, self._down)

    def start(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("latency proxy did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(10)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        self._loop.call_later(0.05, self._loop.stop)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        accepted = time.monotonic()
        with self._lock:
            self._connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        handshake_done = accepted + self.network.handshake_rtts * self.network.rtt
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, "up", handshake_done),
                self._pipe(server_r, client_w, "down", accepted),
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str, opens: float) -> None:
        """Carry one direction: read, wait for the link, deliver RTT/2 later; half-close at EOF."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        in_flight = asyncio.Semaphore(max(1, WINDOW // CHUNK))
        half = self.network.rtt / 2

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await _sleep_until(due)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                in_flight.release()

        delivering = asyncio.ensure_future(deliver())
        try:
            await _sleep_until(opens)
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await in_flight.acquire()
                sent = self._links[way].transmit(len(data), time.monotonic())
                with self._lock:
                    if way == "up":
                        self._up += len(data)
                    else:
                        self._down += len(data)
                queue.put_nowait((sent + half, data))
                await _sleep_until(sent)
            queue.put_nowait((time.monotonic() + half, b""))
            await delivering
        except BaseException:
            delivering.cancel()
            raise


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# -- in a child process ----------------------------------------------------------------------


class ProxyProcess:
    """A `LatencyProxy` in a child process (this file run as a script), same `url` and `stats()`."""

    def __init__(self, upstream_host: str, upstream_port: int, network: Network) -> None:
        argv = [sys.executable, __file__, "--upstream", f"{upstream_host}:{upstream_port}",
                "--rtt", str(network.rtt), "--handshake-rtts", str(network.handshake_rtts)]
        if network.bandwidth is not None:
            argv += ["--bandwidth", str(network.bandwidth)]
        self.network = network
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"latency proxy exited {self.proc.wait()}")
        self.port = int(json.loads(line)["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> Stats:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return Stats(**json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A latency proxy in front of HOST:PORT (see the module doc).")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    parser.add_argument("--rtt", type=float, default=0.0, help="round-trip time in seconds")
    parser.add_argument("--handshake-rtts", type=int, default=2, help="round trips per new connection (2)")
    parser.add_argument("--bandwidth", type=float, help="bytes/s per direction (unlimited)")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    with LatencyProxy(host, int(port), Network(args.rtt, args.handshake_rtts, args.bandwidth)) as proxy:
        print(json.dumps({"port": proxy.port}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                s = proxy.stats()
                print(json.dumps({"connections": s.connections, "bytes_up": s.bytes_up, "bytes_down": s.bytes_down}),
                      flush=True)


if __name__ == "__main__":
    main()
