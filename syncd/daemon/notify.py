"""The systemd notify protocol (sd_notify), for `syncd run` under `Type=notify`.

systemd hands a service the address of a datagram socket in `$NOTIFY_SOCKET`; the service
reports its state there as newline-separated `KEY=VALUE` lines: `READY=1` once it is watching,
`STATUS=...` for `systemctl status`, `WATCHDOG=1` as a keep-alive, `RELOADING=1` and
`STOPPING=1` around reloads and shutdown. Outside systemd (no `$NOTIFY_SOCKET`) every call is a
no-op.

A send never blocks and never raises: the daemon must neither die nor hang because its
supervisor went away or reads slowly. Each notifier keeps one non-blocking socket, made on the
first send and shared by every thread; a message the socket cannot take at once (the
receiver's queue is full, the socket is gone, the supervisor refuses it) is dropped and
counted in `dropped`. The first drop is logged as a warning, later ones at debug level, so a
supervisor that stays away costs one log line, not one per status update.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    """Sends sd_notify datagrams to one socket address (or nowhere, when `address` is None)."""

    def __init__(self, address: str | None) -> None:
        # A leading "@" names a socket in the abstract namespace: the kernel wants a NUL byte there.
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address: str | None = address or None
        self.dropped = 0  # messages not delivered since this notifier was made
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asked for, through `$NOTIFY_SOCKET`; a no-op one without it."""
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str, **fields: object) -> bool:
        """Send `lines` (`"KEY=VALUE"`) and `fields` (`KEY=value`) in one datagram; True if it was sent."""
        if self.address is None:
            return False
        payload = "\n".join([*lines, *(f"{key}={value}" for key, value in fields.items())])
        if not payload:
            return False
        data = payload.encode()
        with self._lock:  # held for one non-blocking call, never longer
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._sock.setblocking(False)
                self._sock.sendto(data, self.address)
                return True
            except OSError as exc:
                if not isinstance(exc, BlockingIOError):
                    self._close()  # start afresh next time: the supervisor may be back by then
                self.dropped += 1
                dropped, error = self.dropped, exc
        reason = error.strerror or str(error)
        if dropped == 1:
            log.warning(
                "sd_notify to %r failed (%s): message dropped; further drops are logged at debug level",
                self.address, reason,
            )
        else:
            log.debug("sd_notify to %r failed (%s): message dropped (%d so far)", self.address, reason, dropped)
        return False

    def close(self) -> None:
        """Release the socket; a later send makes a new one."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def ready(self) -> bool:
        return self.send(READY=1)

    def status(self, text: str) -> bool:
        # STATUS is one line: a newline would start a new (bogus) assignment.
        return self.send(STATUS=" ".join(text.splitlines()))

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def reloading(self) -> bool:
        # systemd >= 253 requires MONOTONIC_USEC with RELOADING=1 for Type=notify-reload.
        return self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)


def watchdog_interval(env: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between `WATCHDOG=1` pings (half of `$WATCHDOG_USEC`), or None if none are wanted."""
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
