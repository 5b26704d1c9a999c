"""Durability on disk, shared by the folder side and the reference file service."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of `path` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSync:
    """`fsync_dir` of one directory, shared by the threads that need it at the same moment.

    A directory fsync makes durable every entry change made before it started.
    So a thread that asks while another thread's fsync is already running
    waits for it to finish, then for at most one more, which covers its own
    change and those of every thread that asked meanwhile (group commit).
    Four workers installing downloads into one folder then share fsyncs
    instead of queueing one each on the file system's journal.

    A caller holding a descriptor of the directory passes it to `sync`, and the fsync (should
    this thread be the one to run it) is made on it rather than on a new open of `path`, so no
    path lookup can lead it through a symbolic link put in the directory's place
    (`syncd.local.folderfs` never reopens a folder's subdirectory by path).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._asked = 0  # tickets handed out; ticket n: a change made before asking
        self._covered = 0  # every ticket up to this one is durable
        self._running = False

    def sync(self, fd: int | None = None) -> None:
        """Return once every entry change this thread made before calling is durable (`fd`: the
        caller's descriptor of the directory, see the class docstring)."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
            while self._covered < ticket and self._running:
                self._cond.wait()
            if self._covered >= ticket:
                return
            self._running = True
            covers = self._asked  # this fsync starts after all of these changes were made
        try:
            if fd is None:
                fsync_dir(self.path)
            else:
                os.fsync(fd)
        except BaseException:
            with self._cond:
                self._running = False
                self._cond.notify_all()  # a waiter takes over with a fsync of its own
            raise
        with self._cond:
            self._running = False
            self._covered = max(self._covered, covers)
            self._cond.notify_all()
