"""`syncd serve` as a real subprocess on a free loopback port (the reference file service,
started the way a user starts it), for tests that want the service out of the test's process."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    """The test's environment, with this checkout first on the path: the child must run the
    code under test, not whatever copy of syncd the interpreter has installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class ServeProcess:
    """`python -m syncd serve --data DATA --port PORT [ARGS...]`; `.url` once started.

    `limits` maps `resource.RLIMIT_*` to the (soft, hard) limits the child starts with (set
    between fork and exec); `preexec_fn` runs there too. The log (stderr) is appended to
    across restarts.
    """

    def __init__(
        self,
        data: Path,
        args: Sequence[str] = (),
        *,
        limits: Mapping[int, tuple[int, int]] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.data = data
        self.args = list(args)
        self.limits = dict(limits or {})
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"{data.name}-serve.log"  # a file, not a pipe nobody drains
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _preexec(self) -> None:  # runs in the child, between fork and exec
        for which, value in self.limits.items():
            resource.setrlimit(which, value)
        if self.preexec_fn is not None:
            self.preexec_fn()

    def start(self, timeout: float = 20.0) -> ServeProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "serve", "--data", str(self.data), "--port", str(self.port),
                 *self.args],
                stdout=subprocess.DEVNULL, stderr=log, env=_child_env(),
                preexec_fn=self._preexec if self.limits or self.preexec_fn else None,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"syncd serve exited {self.proc.returncode}: {self.log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("syncd serve never became healthy")
            time.sleep(0.02)  # polling a condition

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it is still running after `timeout`; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, *, hard: bool = False, timeout: float = 20.0) -> ServeProcess:
        """Stop (SIGTERM, or SIGKILL when `hard`) and start again on the same port and data."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
