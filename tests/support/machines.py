"""Several machines syncing one chat: each a folder, its own state dir and config, a recording
proxy between it and the file service (so a test can see when this machine listed or uploaded),
and its own `syncd run`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.daemon import DaemonProcess, wait_for
from tests.support.faultproxy import FaultProxy
from tests.support.syncd_cli import write_config

_FILENAME = re.compile(rb'"filename"\s*:\s*"((?:[^"\\]|\\.)*)"')
_UPLOADS = ("/uploadSimpleFile", "/initMultipartUploadFile")


class Machine:
    """One machine: folder `ROOT/NAME`, state `ROOT/NAME-state`, config `ROOT/NAME.toml`."""

    def __init__(
        self,
        root: Path,
        name: str,
        upstream: str,
        chat: str,
        *,
        settle: float,
        daemon: Mapping[str, object],
        folder: Mapping[str, object] | None = None,
    ) -> None:
        self.name = name
        self.folder = root / name
        self.proxy = FaultProxy(upstream).start()
        self.config = write_config(
            root / f"{name}.toml", state_dir=root / f"{name}-state", url=self.proxy.url,
            folders=[{"name": name, "path": self.folder, "chat_id": chat, **(folder or {})}],
            settle=settle, workers=2, daemon=daemon,
        )
        self.daemon: DaemonProcess | None = None

    def launch(self) -> DaemonProcess:
        """Start `syncd run` (without waiting for it: see `DaemonProcess.wait_ready`)."""
        self.daemon = DaemonProcess(self.config)
        return self.daemon

    @property
    def d(self) -> DaemonProcess:
        assert self.daemon is not None, f"{self.name} was not started"
        return self.daemon

    # -- what this machine asked of the service -------------------------------------------------

    def listings(self, since: float = 0.0) -> list[float]:
        """When (time.monotonic()) this machine listed the chat."""
        return [s.at for s in self.proxy.seen("/listChatFiles") if s.at >= since and s.query.get("offset", "0") == "0"]

    def uploads(self, since: float = 0.0) -> list[str]:
        """Names this machine started uploading (simple or multipart), in order."""
        names = []
        for seen in self.proxy.seen():
            if seen.path in _UPLOADS and seen.at >= since:
                match = _FILENAME.search(seen.body)
                if match:
                    names.append(json.loads(b'"' + match[1] + b'"'))
        return names

    def wait_for_poll(self, quiet: float = 1.0, timeout: float = 30.0) -> float:
        """The time of this machine's next listing that follows `quiet` seconds without any
        request from it: with nothing changing, that is its periodic poll, and the next one is
        `poll_interval` later."""

        def poll() -> float | None:
            seen = self.proxy.seen()
            for before, after in zip(seen, seen[1:], strict=False):
                if after.path == "/listChatFiles" and after.at - before.at >= quiet and after.at >= started:
                    return after.at
            return None

        started = time.monotonic()
        return float(wait_for(poll, timeout, what=f"{self.name} to poll the chat"))

    def close(self) -> None:
        """Kill the daemon if it still runs, stop the proxy (test cleanup)."""
        try:
            if self.daemon is not None:
                self.daemon.kill()
        finally:
            self.proxy.stop()
