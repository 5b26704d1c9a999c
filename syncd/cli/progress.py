"""The progress display on a terminal while `reconcile` drains its queue (the one module that
draws with rich).

    ⠦ syncing ━━━━━━╺━━━━━━━━━━━━━━━━━ 145/341 files · 39.4/149.1 MB 66.8 MB/s eta 0:00:02
      upload   IMG_0021.jpg  2.3 MB
      upload   IMG_0022.jpg  2.3 MB
      download notes-0042.md  1.0 kB

and, when the queue is drained (`!` when some files failed: the lines after it say which),

    ! synced ━━━━━━━━━━━━━━╺━━━━━━━━━ 341/341 files · 1 failed · 89.1/149.1 MB 76.0 MB/s in 0:00:01

What it shows comes from the queue (`cli/tally.py`), read a few times a second through a
connection of its own: the workers never wait for it. While it is on screen it takes over
stderr (when stderr is this terminal too), so log lines print above it instead of into it.
It leaves the terminal clean: its last frame stays, followed by a newline, and the cursor is
shown again, also when Ctrl-C ends the run.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from syncd.cli.tally import Start, Tally, counts_text, current_text, eta_text, rate_text, tally
from syncd.state.db import State, open_state
from syncd.state.queue import Queue

#: Looks at the queue per second.
SAMPLES_PER_SECOND = 4
#: Transfers under way listed below the bar, at most.
SHOWN_TRANSFERS = 4


class TransferProgress:
    """A context manager: the display is on screen while its block runs (`reconcile`'s drain).

    `state_dir` is the state database it reads (read-only, its own connection); `folders` the
    folders whose work it counts."""

    def __init__(self, state_dir: Path, folders: Collection[str], *, console: Console | None = None) -> None:
        self.state_dir = state_dir
        self.folders = list(folders)
        self.console = console or Console(highlight=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="syncd-progress", daemon=True)
        self._display = _Display(
            _Spinner(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            _Counts(),
            _Rate(),
            _Eta(),
            console=self.console,
            auto_refresh=False,  # refreshed by the sampling thread, after each look
            transient=False,
            redirect_stdout=True,
            redirect_stderr=False,  # `_LinesAbove` does it, without rewrapping log lines
        )
        self._stderr: TextIO | None = None
        self._task: TaskID | None = None
        self._state: State | None = None
        self._queue: Queue | None = None
        self._start: Start | None = None

    def __enter__(self) -> TransferProgress:
        self._state = open_state(self.state_dir, writer=False)
        self._queue = Queue(self._state)
        at, newest = self._queue.clock(), self._queue.newest_id()
        files, size = self._queue.outstanding_size(self.folders)
        self._start = Start(files, size, newest, at)
        if not files:  # nothing to transfer: no display
            return self
        self._task = self._display.add_task("syncing", total=None)
        self._show(self._look(), draw=False)
        self._display.start()  # draws the first frame
        if sys.stderr.isatty():  # log lines above the display, not into it
            self._stderr, sys.stderr = sys.stderr, _LinesAbove(self.console, sys.stderr)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._task is not None:
                self._stop.set()
                self._thread.join()
                try:
                    self._show(self._look(), ended="synced" if exc_type is None else "stopped", draw=False)
                finally:
                    if self._stderr is not None:
                        above, sys.stderr = sys.stderr, self._stderr
                        if isinstance(above, _LinesAbove):
                            above.close()
                    self._display.stop()  # draws the last frame, which stays; the cursor comes back
        finally:
            if self._state is not None:
                self._state.close()

    def _loop(self) -> None:
        while not self._stop.wait(1 / SAMPLES_PER_SECOND):
            try:
                self._show(self._look())
            except Exception:  # noqa: BLE001 - a look that failed (the database busy): the next one
                continue

    def _look(self) -> Tally:
        assert self._queue is not None and self._start is not None
        return tally(
            self._start,
            self._queue.outstanding_size(self.folders),
            self._queue.outstanding_size(self.folders, newer_than=self._start.newest_id),
            self._queue.running(self.folders, limit=SHOWN_TRANSFERS),
            self._queue.failed_size(self.folders, since=self._start.at),
        )

    def _show(self, now: Tally, *, ended: str | None = None, draw: bool = True) -> None:
        """Draw `now` (or only take it in); `ended` (how the run ended) makes it the last frame."""
        assert self._task is not None
        self._display.current = [current_text(c) for c in now.current] if ended != "synced" else []
        self._display.update(self._task, total=now.total or None, completed=now.completed, tally=now)
        if ended is not None:
            self._display.update(self._task, description=ended, ended=ended)
            self._display.stop_task(self._task)
        if draw:
            self._display.refresh()


class _LinesAbove(io.TextIOBase):
    """stderr while the display is on screen: each whole line written is printed above it, as
    it was (colours kept, not rewrapped: the terminal wraps a long line as it always does)."""

    def __init__(self, console: Console, stream: TextIO) -> None:
        super().__init__()
        self.console = console
        self.stream = stream
        self._lock = threading.Lock()
        self._partial = ""

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self.console.print(Text("\n").join(Text.from_ansi(line) for line in lines), soft_wrap=True)
        return len(text)

    def close(self) -> None:
        """What was left without its newline goes to the real stderr."""
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self.stream.write(partial)
        super().close()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding


class _Display(Progress):
    """rich's progress bar, with the transfers under way listed below it."""

    def __init__(self, *columns: str | ProgressColumn, **options: Any) -> None:
        self.current: list[str] = []  # before rich's set-up, which draws a first frame
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for line in self.current:
            yield Text("  " + line, no_wrap=True, overflow="ellipsis")


def _tally_of(task: Task) -> Tally | None:
    value = task.fields.get("tally")
    return value if isinstance(value, Tally) else None


class _Spinner(SpinnerColumn):
    """Turns while the run goes on; then ✓ (all done), ! (done, some failed: the lines below say
    which) or ■ (stopped short, e.g. by Ctrl-C)."""

    def render(self, task: Task) -> RenderableType:
        ended = task.fields.get("ended")
        if ended is None:
            return super().render(task)
        if ended != "synced":
            return Text("■", style="red")
        t = _tally_of(task)
        return Text("!", style="bold yellow") if t is not None and t.files_failed else Text("✓", style="green")


class _Counts(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # on a narrow terminal: cut, never wrapped

    def render(self, task: Task) -> Text:
        t = _tally_of(task)
        return Text(counts_text(t) if t else "")


class _Rate(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # on a narrow terminal: cut, never wrapped

    def render(self, task: Task) -> Text:
        t = _tally_of(task)
        if t is None:
            return Text("")
        speed = task.speed
        if task.stop_time is not None and task.elapsed:  # the last frame: the whole run's average
            speed = task.completed / task.elapsed
        return Text(rate_text(speed, by_bytes=t.by_bytes), style="progress.data.speed")


class _Eta(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # on a narrow terminal: cut, never wrapped

    def render(self, task: Task) -> Text:
        if task.stop_time is not None:
            return Text(f"in {eta_text(task.elapsed).removeprefix('eta ')}", style="progress.elapsed")
        return Text(eta_text(task.time_remaining), style="progress.remaining")
