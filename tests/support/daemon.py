"""`syncd run` as a real subprocess, with its JSON log lines collected as they come."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEADLINE = 20.0


def wait_for(
    predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition", every: float = 0.02
) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy; fail after
    `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class DaemonProcess:
    """`syncd run -c CONFIG`, stderr parsed line by line into `events`."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.raw.append(line)
                with contextlib.suppress(ValueError):  # a stray non-JSON line: kept in `raw` only
                    self.events.append(json.loads(line))

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """Logged events named `event` whose fields include `fields`."""
        with self._lock:
            return [e for e in self.events if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def transfers(self, name: str, action: str | None = None, outcome: str = "done") -> list[dict[str, Any]]:
        found = self.find("transfer", name=name, outcome=outcome)
        return [e for e in found if action is None or e.get("action") == action]

    def wait_ready(self) -> None:
        wait_for(lambda: self.find("watching") or self.proc.poll() is not None, what="the daemon to start")
        assert self.proc.poll() is None, self.log_text()

    def log_text(self) -> str:
        with self._lock:
            return "".join(self.raw)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s\n{self.log_text()}") from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
