"""`syncd serve` as a real subprocess on a free loopback port (the reference file service,
started the way a user starts it), for tests that want the service out of the test's process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`python -m syncd serve --data DATA --port PORT [ARGS]`; `.url` once started.

    `preexec_fn` runs in the child before `syncd` starts (e.g. to lower its resource limits).
    """

    def __init__(
        self, data: Path, args: Sequence[str] = (), *, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        self.data = data
        self.args = list(args)
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"{data.name}-serve.log"  # a file, not a pipe nobody drains
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> ServeProcess:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "serve", "--data", str(self.data), "--port", str(self.port),
                 *self.args],
                stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ), preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"syncd serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("syncd serve never became healthy")
            time.sleep(0.02)  # polling a condition

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
