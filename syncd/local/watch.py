"""File events -> "these names in this folder have settled".

`Settler` is pure (no clock, threads or disk; stat is passed in, as in watchdog's dirsnapshot):
it is told about events and asked which names have been quiet for `settle` seconds with an
unchanged (size, mtime_ns). `Watcher` is the edge: one watchdog observer, one watch per folder
(of its top level, or of its whole tree for a `recursive` folder), and one thread that sleeps on
a condition until the next deadline (forever when nothing waits: no polling) and hands each
folder's settled names to `on_settled` in one batch.

Names are keys: the NFC path relative to the folder (a `RelPath`; at the top level, the NFC
name). An event inside `.syncd/`, under an ignored path (an ignored directory covers everything
below it), or (in a recursive folder) on a name that cannot be a key is dropped. A directory
event of a top-level folder names the directory itself (its pass reports it as skipped). In a
recursive folder, a directory event stands for the files it carries, which inotify reports no
event of:

* a directory created or moved in: every file found below it now (so a tree moved in whole,
  or filled before its watch was set up, is noticed);
* a directory renamed inside the folder: every file below its new place, and the same paths
  under its old place (and the old place's own key, as for a directory gone), so that one
  pass sees both ends of each file's rename;
* a directory gone (deleted, or moved out of the folder): its own key, which stands for every
  tracked file below it (`syncd.local.scan.widen`): its content can no longer be listed.

What watchdog 7's inotify emitter makes of a watch:

* a rename inside the folder is one FileMovedEvent (both names are touched);
* a move in from an unwatched place (a download's `.syncd/tmp/X` -> `NAME`) has no partner and
  arrives as FileCreatedEvent(NAME);
* a move out arrives as FileDeletedEvent(source) about 0.5 s late: an unpaired IN_MOVED_FROM is
  held that long for its partner, and the folder's later events queue behind it;
* a recursive watch adds a watch per directory (new ones as they appear), passing over those it
  cannot watch; the inotify limits reached there are reported as trouble by `_Reader`, and the
  IN_MOVE_SELF every subdirectory's watch hears when it is renamed is dropped by `_Emitter`;
* IN_Q_OVERFLOW never reaches handlers (watchdog logs a warning and drops pending move halves),
  and IN_MOVE_SELF is not in its mask, so a folder moved away goes unnoticed. The observer of
  `syncd.local.observer`, the only code touching watchdog internals, reports both as trouble.
  It is Linux only; elsewhere the stock observer runs without those two reports.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog import events as ev
from watchdog.observers.api import BaseObserver, ObservedWatch

from syncd.core.paths import path_reason
from syncd.core.settle import Key, Settler, Stat
from syncd.local.ignore import IgnoreRules, ignore_rules
from syncd.local.observer import make_observer
from syncd.local.tree import files_below, local_key

log = structlog.get_logger("syncd.local.watch")


# No opens or read-only closes: syncd hashing or uploading a file must not look like a change.
_EVENTS: list[type[ev.FileSystemEvent]] = [
    ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileAttribEvent, ev.FileClosedEvent, ev.FileDeletedEvent,
    ev.FileMovedEvent, ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent,
]
#: Watch limits: a directory of a recursive folder left unwatched by them loses its events.
_LIMITS = (errno.ENOSPC, errno.EMFILE)


@dataclass(frozen=True)
class _Folder:
    name: str
    path: Path
    ignore: tuple[str, ...]
    recursive: bool = False

    @property
    def rules(self) -> IgnoreRules:
        return ignore_rules(self.ignore)

    def file_name(self, path: str, *, is_dir: bool = False) -> str | None:
        """The spelled relative path of `path` if it is a name of this folder that is synced:
        directly in it (or, recursive, anywhere below it), not ignored, a possible key."""
        if not self.recursive:
            name = os.path.basename(path)
            inside = bool(path) and os.path.dirname(path) == str(self.path)
            return name if inside and not self.rules.matches(name, is_dir=is_dir) else None
        relative = self.relative(path)
        return relative if relative is not None and self.keeps(relative) else None

    def relative(self, path: str) -> str | None:
        """`path` relative to the folder, `/`-joined, when it is strictly inside it."""
        root = str(self.path)
        if not path.startswith(root + os.sep) or len(path) == len(root) + 1:
            return None
        relative = path[len(root) + 1:]
        return relative if os.sep == "/" else relative.replace(os.sep, "/")

    def keeps(self, relative: str, *, is_dir: bool = False) -> bool:
        """True when the spelled relative path can be a key and is not ignored."""
        return path_reason(relative) is None and not self.rules.covers(relative, is_dir=is_dir)

    def tree_names(self, event: ev.FileSystemEvent, src: str, dest: str) -> list[str]:
        """What a directory event below this (recursive) folder stands for (module docstring)."""
        created = isinstance(event, ev.DirCreatedEvent)
        old = None if created else self.relative(src)
        new = self.relative(src if created else dest) if created or isinstance(event, ev.DirMovedEvent) else None
        names: list[str] = []
        if new is not None and self.keeps(new, is_dir=True):  # an ignored tree is not walked
            for spelled in files_below(self.path, new, self.rules):
                names.append(spelled)
                if old is not None:
                    names.append(old + spelled[len(new):])
        kept = [name for name in names if self.keeps(name)]
        if old is not None and self.keeps(old, is_dir=True):
            kept.append(old)
        return kept


class Watcher:
    """Watches folders (their top levels, or whole trees) and reports the names that settled,
    batched per folder.

    `on_settled(folder, names)` runs on the watcher's thread, with keys (NFC relative paths; in a
    recursive folder a key may be a directory that is gone: see the module docstring). `on_trouble(folder,
    reason)` means the folder's events cannot be trusted any more (the watch failed or stopped,
    events were lost): rescan it. It may run on any thread; keep it short. Exceptions from either
    callback are logged. A Watcher is started at most once.
    """

    def __init__(
        self,
        settle: float,
        on_settled: Callable[[str, set[str]], None],
        on_trouble: Callable[[str, str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settler = Settler(settle)
        self._slack = min(settle / 10, 0.1)  # wait a little past a deadline, so a burst settles as one batch
        self._on_settled, self._on_trouble, self._clock = on_settled, on_trouble, clock
        self._cond = threading.Condition()  # guards everything below and the settler
        self._folders: dict[str, _Folder] = {}  # invariant: every waiting key's folder is here
        self._watches: dict[str, ObservedWatch] = {}
        self._observer: BaseObserver | None = None
        self._broken: OSError | None = None  # why no observer could be made
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, folder_name: str, path: Path, ignore: tuple[str, ...], *, recursive: bool = False) -> None:
        """Watch `path`'s top level (its whole tree with `recursive`) as `folder_name`. A failure
        goes to `on_trouble`, never raised."""
        self.remove(folder_name)
        folder = _Folder(folder_name, path, ignore, recursive)
        with self._cond:
            self._folders[folder_name] = folder
        if self._thread is not None:
            self._schedule(folder)

    def remove(self, folder_name: str) -> None:
        """Stop watching a folder and drop its waiting names."""
        with self._cond:
            watch = self._watches.pop(folder_name, None)
        if watch is not None and self._observer is not None:
            self._observer.unschedule(watch)  # synchronous: none of its events is handled after this
        with self._cond:
            self._folders.pop(folder_name, None)
            self._settler.forget(folder_name)

    def start(self) -> None:
        """Start the observer and the settle thread, and watch the folders added so far."""
        try:
            self._observer = make_observer(self._alarm, self._lost_watch)
            self._observer.start()
        except OSError as exc:  # no inotify instance: every folder is trouble
            self._observer, self._broken = None, exc
        self._thread = threading.Thread(target=self._run, name="syncd-watch", daemon=True)
        self._thread.start()
        with self._cond:
            folders = list(self._folders.values())
        for folder in folders:
            self._schedule(folder)

    def stop(self) -> None:
        """Stop watching and join every thread this started; safe to repeat, not from `on_trouble`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def pending(self) -> int:
        """How many names wait to settle (0 and no callback running: idle)."""
        with self._cond:
            return self._settler.pending()

    def waiting(self, folder_name: str) -> set[str]:
        """The keys (NFC paths) of `folder_name` that wait to settle."""
        with self._cond:
            return self._settler.waiting(folder_name)

    def folders(self) -> set[str]:
        """The folders added and not removed, including any whose watch failed."""
        with self._cond:
            return set(self._folders)

    def _schedule(self, folder: _Folder) -> None:
        try:
            if self._observer is None:
                raise self._broken or OSError(errno.EBADF, "the watcher is stopped")
            if not folder.path.is_dir():  # watchdog would watch a file's parent instead
                raise NotADirectoryError(errno.ENOTDIR, "not an existing directory")
            watch = self._observer.schedule(
                _Handler(self, folder), str(folder.path), recursive=folder.recursive, event_filter=_EVENTS
            )
        except OSError as exc:
            self._trouble(folder.name, _watch_failure(folder.path, exc))
            return
        with self._cond:
            self._watches[folder.name] = watch

    def _on_event(self, folder: _Folder, event: ev.FileSystemEvent) -> None:
        src, dest = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        if event.is_directory:
            if src == str(folder.path):
                self._trouble(folder.name, f"{folder.path} was deleted or moved away; its watch stopped", forget=True)
            elif folder.recursive:
                self._touch(folder, folder.tree_names(event, src, dest))
            else:  # a subfolder of a top-level folder: its pass reports it skipped (or no longer)
                names = (folder.file_name(src, is_dir=True), folder.file_name(dest, is_dir=True))
                self._touch(folder, [name for name in names if name])
            return
        self._touch(folder, [name for name in (folder.file_name(src), folder.file_name(dest)) if name])

    def _touch(self, folder: _Folder, names: list[str]) -> None:
        """Start (again) the quiet period of each spelled relative path in `names`."""
        if not names:
            return
        stats = [_stat(folder.path / name) for name in names]
        with self._cond:
            was_idle = self._settler.pending() == 0
            now = self._clock()
            for name, stat in zip(names, stats, strict=True):
                self._settler.touch((folder.name, name), now, stat)
            if was_idle:  # a touch brings the next deadline closer only when nothing waited
                self._cond.notify()

    def _lost_watch(self, path: str, exc: OSError) -> None:
        """A directory below a watched folder got no watch (the inotify limits): its events are
        lost, so the folder is trouble. (The folder's own root failing is its `schedule`'s
        failure, reported there: only folders already watched are looked at.)"""
        if exc.errno not in _LIMITS:
            return  # gone or unreadable meanwhile: the scanner reports what it cannot read
        with self._cond:
            hit = [
                self._folders[name] for name in self._watches
                if name in self._folders and path.startswith(str(self._folders[name].path) + os.sep)
            ]
        for folder in hit:
            self._trouble(folder.name, _watch_failure(Path(path), exc))

    def _alarm(self, path: str | None, reason: str) -> None:
        with self._cond:
            hit = [f.name for f in self._folders.values() if path in (None, str(f.path))]
        for name in hit:
            self._trouble(name, reason)

    def _trouble(self, folder_name: str, reason: str, *, forget: bool = False) -> None:
        if forget:  # files that vanished with their folder were not each deleted
            with self._cond:
                self._settler.forget(folder_name)
        try:
            self._on_trouble(folder_name, reason)
        except Exception:
            log.exception("watch trouble callback failed", folder=folder_name, reason=reason)

    def _run(self) -> None:
        while (due := self._wait_for_due()) is not None:
            batches: dict[str, set[str]] = {}
            for folder_name, name in due:
                batches.setdefault(folder_name, set()).add(local_key(name))
            for folder_name, names in batches.items():
                try:
                    self._on_settled(folder_name, names)
                except Exception:
                    log.exception("settled callback failed", folder=folder_name, names=len(names))

    def _wait_for_due(self) -> list[Key] | None:
        """Block until some keys are due; None once stopping."""
        with self._cond:
            while not self._stopping:
                deadline = self._settler.next_deadline()
                wait = None if deadline is None else deadline + self._slack - self._clock()
                if wait is None or wait > 0:
                    self._cond.wait(wait)
                elif due := self._settler.due(self._clock(), lambda k: _stat(self._folders[k[0]].path / k[1])):
                    return due
            return None


class _Handler(ev.FileSystemEventHandler):
    def __init__(self, watcher: Watcher, folder: _Folder) -> None:
        self._watcher, self._folder = watcher, folder

    def dispatch(self, event: ev.FileSystemEvent) -> None:
        try:  # an exception here would end watchdog's dispatcher thread, and so every folder's events
            self._watcher._on_event(self._folder, event)
        except Exception:
            log.exception("watch event handling failed", folder=self._folder.name, event=repr(event))


def _stat(path: Path) -> Stat:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:  # gone (or unreadable: the daemon's own look will say so)
        return None
    return st.st_size, st.st_mtime_ns


def _watch_failure(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EMFILE):
        return (
            f"cannot watch {path}: inotify limits reached ({exc.strerror}); raise fs.inotify.max_user_watches "
            "(and fs.inotify.max_user_instances), e.g. `sysctl fs.inotify.max_user_watches=524288`"
        )
    return f"cannot watch {path}: {exc.strerror or exc}"
