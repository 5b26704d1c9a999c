"""The Unix domain socket the embedded remote's file service listens on.

The socket (`service.sock`) lives in a directory of mode 0700 owned by this user,
and is itself 0600: connect(2) needs search permission on the directory and
write permission on the socket, so no other uid can reach the service.

`sun_path` holds at most 107 bytes, and a state dir can be longer. A path that
does not fit is bound and connected through ``/proc/self/fd/<fd>/service.sock``,
where ``<fd>`` is this object's descriptor of the directory: it stays open as
long as the `SocketDir` does, so that name keeps working for every client of
this process.

One process at a time serves a directory: it holds an exclusive ``flock`` on
the directory's descriptor (released by the kernel when the process dies). The
holder may replace a socket file left behind by a crashed run, but only when it
is a socket and nobody answers on it; a live socket or anything that is not a
socket is never removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import time
from pathlib import Path
from types import TracebackType

from syncd.errors import ConfigError

SOCKET_NAME = "service.sock"
#: The longest path bind(2)/connect(2) take on Linux (108 bytes of sun_path, NUL included).
SUN_PATH_MAX = 107

_DIR_MODE = 0o700
_SOCKET_MODE = 0o600
_PROBE_TIMEOUT_S = 2.0


def private_dir(path: Path) -> None:
    """Create `path` (mode 0700) or make an existing one 0700; it must belong to this user."""
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _make_private(fd, path)
    finally:
        os.close(fd)


def _make_private(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"daemon.state_dir: {path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()}); "
            "the embedded remote keeps its data and socket only in directories of its own"
        )
    if stat.S_IMODE(st.st_mode) != _DIR_MODE:
        os.fchmod(fd, _DIR_MODE)  # mkdir's mode is filtered by the umask, and the dir may be older


class SocketDir:
    """A private directory holding one service socket (see the module doc).

    Opening it creates the directory (or tightens it to 0700) and keeps a descriptor of it;
    `close` releases the descriptor, and with it the lock.
    """

    def __init__(self, path: Path, name: str = SOCKET_NAME) -> None:
        self.path = Path(path).absolute()
        self.name = name
        self.path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _make_private(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            raise
        self._bound: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket we bound
        self._closed = False

    @property
    def socket_path(self) -> Path:
        """Where the socket is (for messages)."""
        return self.path / self.name

    @property
    def address(self) -> str:
        """What to bind or connect to: the socket's path, or its name through the directory's
        descriptor when the path is too long for sun_path. Valid in this process only, while
        this object is open."""
        plain = str(self.socket_path)
        if len(os.fsencode(plain)) <= SUN_PATH_MAX:
            return plain
        return f"/proc/self/fd/{self._fd}/{self.name}"

    # -- who serves ----------------------------------------------------------------------------

    def try_lock(self) -> bool:
        """Become the one process serving this directory; False when another one is."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def lock(self, timeout: float) -> bool:
        """`try_lock`, retried for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.try_lock():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # -- the socket ----------------------------------------------------------------------------

    def bind(self, backlog: int = 128) -> socket.socket:
        """A listening socket at `socket_path`, mode 0600; call with the lock held.

        A socket file left by a crashed run is replaced; `ConfigError` when something else is
        there: a live socket, or anything that is not a socket."""
        self._clear_leftover()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.address)
            # The directory (0700) already keeps others out; the socket's own mode says it twice.
            os.chmod(self.name, _SOCKET_MODE, dir_fd=self._fd)
            st = os.stat(self.name, dir_fd=self._fd, follow_symlinks=False)
            self._bound = (st.st_dev, st.st_ino)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def remove(self) -> None:
        """Remove the socket file this object bound, if it is still that one."""
        if self._bound is None or self._closed:
            return
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(self.name, dir_fd=self._fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self._bound:
                os.unlink(self.name, dir_fd=self._fd)
        self._bound = None

    def _clear_leftover(self) -> None:
        try:
            st = os.stat(self.name, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(
                f"daemon.state_dir: {self.socket_path} exists and is not a socket; "
                "syncd does not replace it (move it away to use the embedded remote)"
            )
        if self._answers():
            raise ConfigError(
                f"daemon.state_dir: something answers on {self.socket_path} that is not a syncd of this "
                "state dir; syncd does not replace a live socket"
            )
        os.unlink(self.name, dir_fd=self._fd)

    def _answers(self) -> bool:
        """Whether a process accepts connections on the existing socket file."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(_PROBE_TIMEOUT_S)
            try:
                probe.connect(self.address)
            except (ConnectionRefusedError, FileNotFoundError):
                return False
            except TimeoutError:
                return True  # alive, with a full backlog
            except OSError as exc:
                raise ConfigError(
                    f"daemon.state_dir: cannot tell whether {self.socket_path} is in use "
                    f"({exc.strerror or exc}); syncd does not replace it"
                ) from exc
            return True

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the directory's descriptor (and the lock); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> SocketDir:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
