"""What `status`, `retry`, `reconcile` and `events` use to reach a running daemon.

httpx over the daemon's Unix socket (`httpx.HTTPTransport(uds=...)`). A state dir whose socket
path is longer than a Unix socket address can hold is reached through this process's own
descriptor of the directory (`/proc/self/fd/N/control.sock`), as the daemon binds it.
`syncd.control.address.connect` answers None when no daemon serves the socket, so a command falls back to doing the
work itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from syncd.control.address import SOCKET_NAME, socket_path
from syncd.errors import DaemonRefused

#: The host part of control requests; only the path matters on a Unix socket.
BASE_URL = "http://syncd-control"
#: The longest address connect(2) takes (see `syncd.server.unixsock.SUN_PATH_MAX`).
_SUN_PATH_MAX = 107
#: How long a command waits for a daemon that does not answer at all before doing without it.
CONNECT_TIMEOUT = 5.0


class DaemonClient:
    """A connection to the daemon serving a state dir (see `connect`)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = socket_path(state_dir)
        self._dir_fd: int | None = None
        address = str(self.path)
        if len(os.fsencode(address)) > _SUN_PATH_MAX:
            self._dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            address = f"/proc/self/fd/{self._dir_fd}/{SOCKET_NAME}"
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=address), base_url=BASE_URL,
            timeout=httpx.Timeout(CONNECT_TIMEOUT, read=None),
        )

    # -- requests -----------------------------------------------------------------------------

    def status(self, folders: list[str] | None = None, files: bool = False) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("folder", f) for f in folders or []]
        if files:
            params.append(("files", "1"))
        return self._call("GET", "/status", params=params, timeout=httpx.Timeout(30.0))

    def retry(self, folders: list[str] | None = None) -> int:
        return int(self._call("POST", "/retry", json={"folders": folders or []})["requeued"])

    def pass_now(self, folders: list[str] | None = None) -> list[str]:
        return list(self._call("POST", "/pass", json={"folders": folders or []})["queued"])

    def reconcile(self, folders: list[str] | None = None, max_delete: int | None = None) -> dict[str, Any]:
        return self._call("POST", "/reconcile", json={"folders": folders or [], "max_delete": max_delete})

    def hold(self, folder: str, reason: str | None = None) -> bool:
        return bool(self._call("POST", "/hold", json={"folder": folder, "reason": reason})["held"])

    def release(self, folder: str) -> bool:
        return bool(self._call("POST", "/release", json={"folder": folder})["released"])

    def events(self) -> Iterator[dict[str, Any]]:
        """The daemon's events as they happen, until it stops (or the caller stops reading); the
        first is `hello`, sent as soon as the stream is connected."""
        with self._http.stream("GET", "/events") as response:
            self._check(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        self._check(response)
        doc: dict[str, Any] = response.json()
        return doc

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        try:
            message = str(response.json().get("error"))
        except ValueError:
            message = response.text[:200]
        raise DaemonRefused(f"the running daemon refused the request: {message}")

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()
        if self._dir_fd is not None:
            fd, self._dir_fd = self._dir_fd, None
            os.close(fd)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def reach(state_dir: Path) -> DaemonClient | None:
    """A client of the daemon serving `state_dir`, or None when nothing answers on its socket (a
    socket file left behind by a killed daemon). `syncd.control.address.connect` looks first."""
    client = DaemonClient(state_dir)
    try:
        client._http.get("/health", timeout=httpx.Timeout(CONNECT_TIMEOUT)).raise_for_status()
    except (httpx.HTTPError, OSError):
        client.close()
        return None
    return client
