"""What carrying out one action hands back: the journal writes it asks for, as values.

The executor never writes the journal itself. It records, in order, what each step that
happened means for the journal (`Recorder`), and returns it in an `Outcome` together with how
the action ended. Whoever ran it applies the writes in one place:

* a worker, on success, in the very transaction that marks its queue row done
  (`Queue.done(job, also=outcome.apply)`): the journal and the queue never disagree about
  whether the work happened, and one commit is paid per action, not two;
* on failure, at once and on their own, before the failure is handled: an action that
  half-happened (a conflicted copy moved aside and uploaded, then the download failed) keeps
  what did happen, and the retry or the fresh plan starts from it.

Invariants:

* `Outcome.writes` is in the order the steps happened; applying it replays that order, so a
  later write of the same name wins, as it would have written directly.
* A write is only ever recorded once the transfer or rename it rests on took effect (an upload
  answered, a download installed): applying an outcome never claims a sync that did not happen.
* Applying an outcome touches the journal of `Outcome.folder` only, and only the names it
  lists.

Also here: the journal row <-> planner entry conversions (`to_row`, `to_base`, and `bases`, a
whole folder's journal as the planner reads it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.core.frozen import maker
from syncd.core.model import BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.remote.base import OnResume, RemoteFile
from syncd.state.db import State
from syncd.state.journal import JournalRow, write_journal


def to_row(entry: BaseEntry) -> JournalRow:
    floor = entry.remote_floor
    return JournalRow(
        name=entry.name, local_size=entry.local_size, local_mtime_ns=entry.local_mtime_ns,
        local_sha256=entry.local_sha256, remote_version=entry.remote_version, remote_size=entry.remote_size,
        remote_sha256=entry.remote_sha256,
        remote_written_at=entry.remote_written_at.isoformat() if entry.remote_written_at else None,
        dropped=entry.dropped, local_name=entry.local_name, remote_name=entry.remote_name,
        remote_floor_at=floor.written_at.isoformat() if floor else None,
        remote_floor_seq=floor.seq if floor else None,
    )


def to_base(row: JournalRow) -> BaseEntry:
    floor = (
        Floor(datetime.fromisoformat(row.remote_floor_at), row.remote_floor_seq)
        if row.remote_floor_at is not None and row.remote_floor_seq is not None
        else None
    )
    return BaseEntry(
        name=RelPath(row.name), local_size=row.local_size, local_mtime_ns=row.local_mtime_ns,
        local_sha256=row.local_sha256, remote_version=row.remote_version, remote_size=row.remote_size,
        remote_sha256=row.remote_sha256,
        remote_written_at=datetime.fromisoformat(row.remote_written_at) if row.remote_written_at else None,
        dropped=row.dropped, local_name=row.local_name, remote_name=row.remote_name, remote_floor=floor,
    )


_make_base = maker(BaseEntry)


def bases(rows: Iterable[tuple[Any, ...]]) -> dict[str, BaseEntry]:
    """A folder's journal as the planner's base, by name, from its rows as `State.read_journal`
    reads them (`JOURNAL_COLUMNS`): what `to_base` makes of each, made straight from the
    columns (no `JournalRow` in between; a pass reads every row of a folder)."""
    fromiso, make, relpath = datetime.fromisoformat, _make_base, RelPath
    found: dict[str, BaseEntry] = {}
    for name, lsize, lmtime, lsha, rid, rsize, rhash, rup, dropped, lname, rname, fat, fseq in rows:
        floor = Floor(fromiso(fat), fseq) if fat is not None and fseq is not None else None
        if rhash is not None and rhash == lsha:
            rhash = lsha  # one string for both sides' sha256 (a pass holds one per file)
        key = relpath(name)  # the key too: one string per name
        found[key] = make(
            key, lsize, lmtime, lsha, rid, rsize, rhash, fromiso(rup) if rup else None, bool(dropped),
            lname, rname, floor,
        )
    return found


def same_base(row: JournalRow | None, base: BaseEntry | None) -> bool:
    """True when the journal row now is the one a plan was made against."""
    if row is None or base is None:
        return row is None and base is None
    return to_base(row).sides == base.sides


@dataclass(frozen=True, slots=True)
class JournalWrite:
    """Set the journal row of `name` to `row`, or forget the name (`row` None)."""

    name: str
    row: JournalRow | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of an action ended, and what it asks to be written to the journal.

    `error` None: the action is done (`bytes` moved; `unchanged` for a comparison that found
    equal content, or a journal-only action). Otherwise what stopped it; `writes` then holds
    what the steps that did happen recorded."""

    folder: str
    writes: tuple[JournalWrite, ...] = ()
    bytes: int = 0
    unchanged: bool = False
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def apply(self, conn: sqlite3.Connection) -> None:
        """Write the journal rows, in order, inside the caller's transaction."""
        for write in self.writes:
            write_journal(conn, self.folder, write.name, write.row)

    def commit(self, state: State) -> None:
        """Apply the writes in a transaction of their own (nothing to do: no transaction)."""
        if self.writes:
            with state.transaction() as conn:
                self.apply(conn)

    def then(self, later: Outcome) -> Outcome:
        """This run followed by `later` (a second try of the same action): the writes of both,
        in order, and how `later` ended."""
        return Outcome(
            self.folder, self.writes + later.writes, bytes=later.bytes, unchanged=later.unchanged, error=later.error
        )


@dataclass(frozen=True, slots=True)
class Resume:
    """What an upload may go on from (`token`: its queue row kept it from an earlier,
    interrupted try) and where each new token goes at once (`save`; SPEC, "Resumable uploads")."""

    token: str | None = None
    save: OnResume | None = None


NO_RESUME = Resume()


@dataclass(slots=True)
class Recorder:
    """The journal writes of one run of one action, collected in order (one per run: never
    shared between threads), and the resume slot of its upload."""

    folder: str
    resume: Resume = NO_RESUME
    writes: list[JournalWrite] = field(default_factory=list)

    def write(self, name: str, row: JournalRow | None) -> None:
        self.writes.append(JournalWrite(name, row))

    def record(
        self,
        name: RelPath,
        local: LocalFile | None,
        remote: RemoteFile | None,
        *,
        dropped: bool = False,
        floor: Floor | None = None,
    ) -> None:
        """`name` is in sync as `local` (its spelling kept) and `remote`; `floor` after an upload
        (the version it replaced, or FLOOR_NONE when it replaced nothing). Neither side: forget it."""
        if local is None and remote is None:
            self.write(name, None)
            return
        self.write(name, to_row(BaseEntry.synced(name, local, remote, dropped=dropped, floor=floor)))

    def outcome(self, *, bytes: int = 0, unchanged: bool = False, error: BaseException | None = None) -> Outcome:
        return Outcome(self.folder, tuple(self.writes), bytes=bytes, unchanged=unchanged, error=error)
