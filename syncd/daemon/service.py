"""`syncd run`: the background service.

Start-up: the state is opened (leftover temp files cleaned, leased jobs put
back), workers start, every folder is watched, a full pass queues whatever
changed while we were away, and only then systemd hears READY=1.

Then one loop on the main thread, woken by the watcher, by signals, or by
its next timer:

* settled names from the watcher are planned (just those names, against a
  fresh listing); a name a worker is writing right now waits for it, so
  syncd's own downloads, renames and trash moves never echo back;
* every `poll_interval` the chats are listed and only names whose remote
  version differs from the journal are planned;
* every `rescan_interval` (jittered), on SIGUSR1, and for a folder whose
  watcher failed (inotify limits, overflow) at every poll: a full pass;
* SIGHUP reloads the config; a bad one is refused and the old one kept;
* SIGTERM/SIGINT: stop taking work, let transfers finish within `GRACE`,
  then abort the rest (their rows are redone on the next start).

Signal handlers only set flags and wake the loop (huey's consumer does the same).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from syncd.app import App, open_app
from syncd.config import Config, FolderConfig, load_config
from syncd.control.server import ControlServer
from syncd.core.names import normalize
from syncd.core.versions import remote_changes, suspects
from syncd.core.words import counted
from syncd.daemon.calls import LoopCalls
from syncd.daemon.controls import DaemonControls
from syncd.daemon.hints import Hints
from syncd.daemon.notify import Notifier, watchdog_interval
from syncd.errors import ConfigError, PlaceGone, SyncdError
from syncd.local.watch import Watcher
from syncd.remote.base import RemoteFile
from syncd.state.queue import JobState
from syncd.sync.gcpause import collection_paused
from syncd.sync.outcome import bases
from syncd.sync.passes import policy_of
from syncd.sync.report import FolderReport

log = structlog.get_logger("syncd.daemon.service")

#: How long in-flight transfers may run on after SIGTERM before they are aborted.
GRACE = 10.0
#: How often the STATUS= line is refreshed while work is queued.
STATUS_EVERY = 2.0
#: A name a worker is busy with is looked at again this much later.
BUSY_RETRY = 0.5


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    full_pass: bool = False


class Daemon:
    """One `syncd run` process."""

    def __init__(self, config_path: Path, config: Config, *, env: Mapping[str, str] = os.environ) -> None:
        self.config_path = config_path
        self.config = config
        self.notifier = Notifier.from_env(env)
        self.watchdog_every = watchdog_interval(env)
        self.flags = _Flags()
        self.wake = threading.Event()
        self.hints = Hints(self.wake.set)
        self._lock = threading.Lock()
        self._settled: dict[str, set[str]] = {}
        self._deferred: dict[str, set[str]] = {}
        self._trouble: dict[str, str] = {}  # watcher trouble reported, not yet handled
        self._unwatched: set[str] = set()  # folders carried by rescans (main thread only)
        self._rng = random.Random()
        #: What the control socket's requests hand to the loop, which alone plans.
        self.calls: LoopCalls[App] = LoopCalls(self.wake.set)
        self.controls: DaemonControls | None = None
        self.pid = os.getpid()

    @property
    def stopping(self) -> bool:
        return self.flags.stop

    # -- signals and watcher callbacks (any thread): set a flag, wake the loop ------------------

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.flags.stop = True
        elif signum == signal.SIGHUP:
            self.flags.reload = True
        elif signum == signal.SIGUSR1:
            self.flags.full_pass = True
        self.wake.set()

    def _on_settled(self, folder: str, names: set[str]) -> None:
        with self._lock:
            self._settled.setdefault(folder, set()).update(names)
        self.wake.set()

    def _on_trouble(self, folder: str, reason: str) -> None:
        with self._lock:
            self._trouble[folder] = reason
        self.wake.set()

    # -- the whole life -----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, self._signal)
        with open_app(self.config) as app:
            stop_workers = threading.Event()
            workers = threading.Thread(
                target=app.engine.work, args=(None, self.config.daemon.workers, stop_workers),
                kwargs={"linger": True, "small_transfers": self.config.daemon.small_transfers},
                name="syncd-workers", daemon=True,
            )
            workers.start()
            watcher = Watcher(self.config.daemon.settle, self._on_settled, self._on_trouble)
            for folder in self.config.folders:
                self._watch(app, watcher, folder)
            watcher.start()
            self.hints.start(app.engine.remotes, self.config.folders)
            control = self._serve_controls(app)
            try:
                for folder in self.config.folders:
                    self._full_pass(app, folder)
                self.notifier.ready()
                log.info("watching", folders=[f.name for f in self.config.folders], pid=os.getpid())
                self._loop(app, watcher)
            finally:
                self.notifier.stopping()
                self.notifier.close()
                log.info("stopping")
                if control is not None:
                    control.stop()
                self.calls.cancel_all()
                self.hints.stop()
                watcher.stop()
                self._stop_workers(app, workers, stop_workers)
        log.info("stopped")
        return 0

    def _serve_controls(self, app: App) -> ControlServer | None:
        """The control socket (`syncd.control`); without it the daemon still syncs, and commands
        next to it fall back to what they do alone."""
        self.controls = DaemonControls(self, app)
        try:
            return ControlServer(self.config.daemon.state_dir, self.controls)
        except (OSError, RuntimeError, ConfigError) as exc:
            log.warning("no control socket: commands cannot hand their work to this daemon", error=str(exc))
            return None

    def _stop_workers(self, app: App, workers: threading.Thread, stop: threading.Event) -> None:
        app.engine.stop_workers(stop)
        workers.join(GRACE)
        if workers.is_alive():
            log.warning("aborting transfers in flight; they are redone at the next start", grace_s=GRACE)
            if app.remote_set is not None:
                app.remote_set.close()  # their sockets close under them: they fail and leave their rows
            workers.join(2.0)

    def _loop(self, app: App, watcher: Watcher) -> None:
        now = time.monotonic()
        next_poll = now + self.config.daemon.poll_interval
        next_rescan = now + self._jittered(self.config.daemon.rescan_interval)
        next_dog = now
        next_status = now
        last_status = ""
        while not self.flags.stop:
            if self.flags.reload:
                self.flags.reload = False
                self._reload(app, watcher)
            if self.flags.full_pass:
                self.flags.full_pass = False
                log.info("full pass requested")
                for folder in self.config.folders:
                    self._full_pass(app, folder)
            self.calls.run_due(app)
            self._handle_troubles(app)
            self._handle_settled(app)
            now = time.monotonic()
            if now >= next_poll:
                self._poll(app, watcher)
                next_poll = now + self.config.daemon.poll_interval
            else:
                hinted = self.hints.due(now)
                if hinted:
                    self._poll(app, watcher, hinted)  # the remote said it changed: list it now
            if now >= next_rescan:
                for folder in self.config.folders:
                    self._full_pass(app, folder)
                next_rescan = now + self._jittered(self.config.daemon.rescan_interval)
            if self.watchdog_every is not None and now >= next_dog:
                self.notifier.watchdog()
                next_dog = now + self.watchdog_every
            busy = app.queue.outstanding() > 0
            if now >= next_status:
                text = self._status_text(app)
                if text != last_status:
                    self.notifier.status(text)
                    last_status = text
                next_status = now + STATUS_EVERY
            deadlines = [next_poll, next_rescan, *self.hints.deadline()]
            if self.watchdog_every is not None:
                deadlines.append(next_dog)
            if busy or self._deferred:
                deadlines.append(now + (BUSY_RETRY if self._deferred else STATUS_EVERY))
            self.wake.wait(max(0.0, min(deadlines) - time.monotonic()))
            self.wake.clear()

    # -- passes ---------------------------------------------------------------------------------

    def full_pass(
        self, app: App, folder: FolderConfig, *, urgent: bool = False, max_delete: int | None = None
    ) -> FolderReport:
        """A full pass over `folder` (the loop's thread only). `urgent`: someone asked for it
        (work waiting out a backoff is due now, failed work is tried again)."""
        report = app.engine.pass_folder(folder, revive_failed=urgent, urgent=urgent, max_delete=max_delete)
        app.state.set_last_pass(folder.name, _now_iso(), report.blocked)
        self._published_pass(folder.name, report, "full")
        if report.blocked:
            log.warning("folder paused", folder=folder.name, reason=report.blocked)
        return report

    def _full_pass(self, app: App, folder: FolderConfig) -> None:
        if not self._held(folder.name):
            self.full_pass(app, folder)

    def _held(self, folder: str) -> bool:
        return self.controls is not None and self.controls.is_held(folder)

    def _published_pass(self, folder: str, report: FolderReport, scope: str) -> None:
        if self.controls is None:
            return
        queued = sum(1 for r in report.results.values() if r.status == "planned")
        if queued or report.blocked or report.warning or scope == "full":
            self.controls.bus.publish(
                "pass", folder=folder, scope=scope, queued=queued, unchanged=report.unchanged,
                blocked=report.blocked, warning=report.warning,
            )

    def _handle_settled(self, app: App) -> None:
        with self._lock:
            batches, self._settled = self._settled, {}
            for name, deferred in self._deferred.items():
                batches.setdefault(name, set()).update(deferred)
            self._deferred = {}
        for folder_name, names in batches.items():
            folder = self._folder(folder_name)
            if folder is None:
                continue
            busy = {n for n in names if app.engine.busy(folder_name, n)}
            if busy:
                with self._lock:
                    self._deferred.setdefault(folder_name, set()).update(busy)
            todo = names - busy
            if todo and not self._held(folder_name):
                log.debug("local changes", folder=folder_name, names=len(todo))
                report = app.engine.pass_folder(folder, names=todo, revive_failed=False)
                self._published_pass(folder_name, report, "local changes")

    def _poll(self, app: App, watcher: Watcher, only: set[str] | None = None) -> None:
        for folder in self.config.folders:
            if (only is not None and folder.name not in only) or self._held(folder.name):
                continue
            if folder.name in self._unwatched:
                self._full_pass(app, folder)  # no watcher: rescans carry the local side
                continue
            try:
                with collection_paused():
                    remote = app.engine.remote_listing(folder)
            except PlaceGone:
                self._full_pass(app, folder)  # pauses the folder, saying why (and lifts it, once back)
                continue
            except SyncdError as exc:
                log.warning("remote listing failed", folder=folder.name, error=str(exc))
                if self.controls is not None:
                    self.controls.bus.publish("error", folder=folder.name, error=f"remote listing failed: {exc}")
                app.state.set_last_pass(folder.name, _now_iso(), str(exc))
                continue
            if remote is None:
                continue  # the remote cannot list: only local changes and rescans move this folder
            if app.state.folder_status(folder.name).paused is not None:
                self._full_pass(app, folder)  # paused (its place was gone): a full pass lifts it
                continue
            with collection_paused():
                changed = self._remote_changes(app, folder, remote)
            # Names still settling locally wait for the watcher's pass: planned now, a name whose
            # rename is half written would go as a deletion (SPEC, "Renames").
            changed -= watcher.waiting(folder.name)
            if changed:
                log.debug("remote changes", folder=folder.name, names=len(changed))
                report = app.engine.pass_folder(folder, names=changed, remote=remote, revive_failed=False)
                self._published_pass(folder.name, report, "remote changes")

    @staticmethod
    def _remote_changes(app: App, folder: FolderConfig, remote: list[RemoteFile]) -> set[str]:
        """`remote_changes` of the listing against the journal, looked at closely only for the
        names the recorded versions cannot vouch for (`suspects`): an idle poll makes no
        object per file."""
        maybe = suspects(remote, app.state.remote_versions(folder.name))
        if not maybe:
            return set()
        if len(maybe) * 4 > len(remote):
            base = app.state.read_journal(folder.name, bases)
        else:
            base = bases(app.state.journal_values_of(folder.name, maybe))
            remote = [f for f in remote if normalize(f.path) in maybe]
        return remote_changes(remote, base, policy_of(folder)) & maybe

    def _handle_troubles(self, app: App) -> None:
        with self._lock:
            fresh, self._trouble = self._trouble, {}
        self._unwatched.update(fresh)
        for name, reason in fresh.items():
            log.warning("watcher trouble: syncing this folder by rescans", folder=name, reason=reason)
            folder = self._folder(name)
            if folder is not None:
                self._full_pass(app, folder)

    # -- reload ---------------------------------------------------------------------------------

    def _reload(self, app: App, watcher: Watcher) -> None:
        try:
            new = load_config(self.config_path)
            if new.daemon.state_dir != self.config.daemon.state_dir:
                raise ConfigError(f"{self.config_path}: daemon.state_dir: cannot change without a restart")
            remotes = app.remote_set.build(new) if app.remote_set is not None else dict(app.remotes)
        except (ConfigError, SyncdError) as exc:
            log.error("config reload refused; keeping the running config", error=str(exc))
            return
        self.notifier.reloading()
        old = {f.name: f for f in self.config.folders}
        fresh = {f.name: f for f in new.folders}
        removed = [n for n in old if n not in fresh or fresh[n] != old[n]]
        added = [f for n, f in fresh.items() if n not in old or old[n] != f]
        for name in removed:
            watcher.remove(name)
            self._unwatched.discard(name)
            with self._lock:
                self._trouble.pop(name, None)
        app.engine.reconfigure(new, remotes)
        before, self.config = self.config.daemon, new
        for folder in added:
            self._watch(app, watcher, folder)
            self._full_pass(app, folder)
        for key in ("workers", "small_transfers", "settle"):
            if getattr(new.daemon, key) != getattr(before, key):
                log.warning("setting applies after a restart", key=f"daemon.{key}")
        log.info("config reloaded", added=[f.name for f in added], removed=removed)
        self.notifier.ready()

    # -- helpers --------------------------------------------------------------------------------

    def _watch(self, app: App, watcher: Watcher, folder: FolderConfig) -> None:
        """Watch a folder, first creating it (and its marker) if it is new; a paused one is
        left unwatched and looked at by rescans."""
        try:
            paused = app.engine.check_folder(folder)
        except OSError as exc:
            paused = f"cannot create {folder.path}: {exc.strerror}"
        if paused:
            self._on_trouble(folder.name, paused)
            return
        watcher.add(folder.name, folder.path, folder.ignore, recursive=folder.recursive)

    def _folder(self, name: str) -> FolderConfig | None:
        return next((f for f in self.config.folders if f.name == name), None)

    def _jittered(self, interval: float) -> float:
        return interval * self._rng.uniform(0.9, 1.1)

    def _status_text(self, app: App) -> str:
        counts = app.queue.counts_by_folder()
        total = {state: sum(c.get(state, 0) for c in counts.values()) for state in JobState}
        return (
            f"watching {counted(len(self.config.folders), 'folder')}; {total[JobState.PENDING]} pending, "
            f"{total[JobState.RUNNING]} running, {total[JobState.FAILED]} failed"
        )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
