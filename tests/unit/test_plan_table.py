"""The planner's decision table, one row per decision.

Each row is a small folder (local files, remote list, journal, policy) and the
plan it must produce, written as one short line per action:
``"<kind> <name> [supersedes=VERSION] [older=VERSIONS] [winner=W] [reason=...]"``.

The remote files are written as a BDD chat lists them (`ChatFile`: an id, a hashcode that is a
sha256 only when it looks like one, a status) and reach the planner as `BddRemote.list` reads
them; the rows marked "no listing" give `remote=None` (a remote without LIST: the journal is
the listing).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from _pytest.mark import ParameterSet

from syncd.core.model import (
    Action,
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    FolderPolicy,
    LocalFile,
    Mode,
    Plan,
)
from syncd.core.paths import RelPath
from syncd.core.plan import MARKER_MISSING, plan
from syncd.remote.base import RemoteFile
from syncd.remote.bdd.chatfile import ChatFile, FileStatus
from syncd.remote.bdd.client import BddClient
from syncd.remote.bdd.remote import BddRemote

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TWO, UP, DOWN = Mode.TWO_WAY, Mode.UPLOAD, Mode.DOWNLOAD
KEEP_BOTH, LOCAL_WINS, REMOTE_WINS, NEWER_WINS = (
    ConflictPolicy.KEEP_BOTH,
    ConflictPolicy.LOCAL_WINS,
    ConflictPolicy.REMOTE_WINS,
    ConflictPolicy.NEWER_WINS,
)


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ns(hours: float) -> int:
    return (int((at(hours) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())) * 1_000_000_000


def L(name: str, content: str, hours: float = 0) -> LocalFile:
    """A local file; its mtime is `hours` after T0."""
    return LocalFile(name, len(content.encode()), ns(hours), sha(content))


def R(
    file_id: int,
    name: str,
    content: str,
    hours: float = 0,
    *,
    status: FileStatus = FileStatus.OK,
    hashcode: str | None = None,
) -> ChatFile:
    """A chat file uploaded `hours` after T0; its hashcode is a sha256 unless given."""
    return ChatFile(
        file_id,
        name,
        len(content.encode()),
        sha(content) if hashcode is None else hashcode,
        at(hours),
        status,
    )


def B(
    name: str,
    local: str | None,
    remote: tuple[int, str] | None,
    *,
    hours: float = 0,
    hashcode: str | None = None,
    dropped: bool = False,
) -> BaseEntry:
    """A journal row: `local` content (mtime T0+hours) and `remote` (id, content)."""
    lf = L(name, local, hours) if local is not None else None
    rf = R(remote[0], name, remote[1], hours, hashcode=hashcode).entry() if remote is not None else None
    return BaseEntry.synced(RelPath(name), lf, rf, dropped=dropped)


class Chat:
    """A BDD client whose one chat lists the given files."""

    def __init__(self, files: Iterable[ChatFile]) -> None:
        self.files = list(files)

    def list_chat(self, chat_id: str) -> list[ChatFile]:
        return list(self.files)


def listed(files: Iterable[ChatFile]) -> list[RemoteFile]:
    """The chat's files as `BddRemote.list` gives them to the planner."""
    return BddRemote(cast(BddClient, Chat(files))).list("c")


@dataclass(frozen=True)
class Case:
    local: tuple[LocalFile, ...] = ()
    remote: tuple[ChatFile, ...] | None = ()
    base: tuple[BaseEntry, ...] = ()
    mode: Mode = TWO
    delete: bool = False
    conflict: ConflictPolicy = KEEP_BOTH
    max_delete: int = 100
    marker: bool = True

    def run(self) -> Plan:
        return plan(
            {f.name: f for f in self.local},
            None if self.remote is None else listed(self.remote),
            {e.name: e for e in self.base},
            FolderPolicy(self.mode, self.delete, self.max_delete, self.conflict),
            marker_present=self.marker,
        )


def line(action: Action) -> str:
    parts = [str(action.kind), action.name]
    if action.supersedes is not None:
        parts.append(f"supersedes={action.supersedes}")
    if action.older:
        parts.append("older=" + ",".join(action.older))
    if action.winner is not None:
        parts.append(f"winner={action.winner}")
    if action.reason is not None:
        parts.append(f"reason={action.reason}")
    return " ".join(parts)


def lines(p: Plan) -> list[str]:
    return [line(a) for a in p.actions]


def case(
    local: Iterable[LocalFile] = (),
    remote: Iterable[ChatFile] | None = (),
    base: Iterable[BaseEntry] = (),
    *,
    mode: Mode = TWO,
    delete: bool = False,
    conflict: ConflictPolicy = KEEP_BOTH,
    max_delete: int = 100,
    marker: bool = True,
) -> Case:
    files = None if remote is None else tuple(remote)
    return Case(tuple(local), files, tuple(base), mode, delete, conflict, max_delete, marker)


def row(folder: Case, expected: list[str], *, id: str, **extra: object) -> ParameterSet:
    """One table row; `extra` holds expected plan fields other than the actions."""
    return pytest.param(folder, expected, extra, id=id)


SYNCED = B("a", "v1", (1, "v1"))  # "a" in sync: content v1 locally and as remote id 1

# fmt: off
ROWS = [
    # -- two-way, nothing to do / first sync ------------------------------------------------------
    row(case(), [], id="empty folder"),
    row(case([L("a", "v1")], [R(1, "a", "v1")], [SYNCED]), [], id="in sync"),
    row(case([L("a", "v1")]), ["upload a"], id="local new"),
    row(case(remote=[R(1, "a", "v1")]), ["download a"], id="remote new"),
    row(case([L("a", "v1")], [R(1, "a", "v1")]), ["record a"], id="first sync same sha256"),
    row(case([L("a", "v1")], [R(1, "a", "v2")]), ["conflict a winner=both"],
        id="first sync different content"),
    row(case([L("a", "v1")], [R(1, "a", "v2", hashcode="md5:x")]), ["compare a winner=both"],
        id="first sync opaque hashcode same size: compare"),
    row(case([L("a", "v1")], [R(1, "a", "v1", hashcode="md5:x")]), ["compare a winner=both"],
        id="first sync opaque hashcode equal bytes: still compare, never equal by size"),
    row(case([L("a", "v1")], [R(1, "a", "v22", hashcode="md5:x")]), ["conflict a winner=both"],
        id="first sync opaque hashcode sizes differ: conflict"),
    row(case([L("a", "v1")], [R(1, "a", "v1", hashcode=sha("v1").upper())]), ["record a"],
        id="upper-case sha256 hashcode counts as sha256"),
    # -- two-way, one side changed ----------------------------------------------------------------
    row(case([L("a", "v2")], [R(1, "a", "v1")], [SYNCED]), ["upload a supersedes=1"],
        id="local edit uploads, superseding"),
    row(case([L("a", "v1")], [R(2, "a", "v2")], [SYNCED]), ["download a"], id="remote edit"),
    row(case([L("a", "v1")], [R(2, "a", "v1")], [SYNCED]), ["record a"],
        id="remote re-upload same content: record"),
    row(case([L("a", "v1")], [R(2, "a", "v1", hashcode="md5:1")],
             [B("a", "v1", (1, "v1"), hashcode="md5:1")]), ["download a"],
        id="remote re-upload same opaque hashcode: no sha256 proves the bytes, a change"),
    row(case([L("a", "v1")], [R(2, "a", "v1", hashcode="")],
             [B("a", "v1", (1, "v1"), hashcode="")]), ["download a"],
        id="remote new id with empty hashcode: a change"),
    row(case([L("a", "v1")], [R(2, "a", "v1", hashcode="md5:1")], [SYNCED]), ["download a"],
        id="remote new id without sha256 over a row with one: a change"),
    row(case([L("a", "v1", hours=5)], [R(1, "a", "v1")], [SYNCED]), ["record a"],
        id="mtime-only touch: record"),
    row(case([L("a", "v1", hours=5)], [R(1, "a", "v1")], [B("a", "v1", (1, "v1"), hours=5)]), [],
        id="mtime-only touch after its record: nothing"),
    row(case([L("a", "v2")], [R(1, "a", "v2")], [SYNCED]), ["record a"],
        id="local edit equal to remote: record"),
    # -- two-way, both changed --------------------------------------------------------------------
    row(case([L("a", "v2")], [R(2, "a", "v3")], [SYNCED]), ["conflict a winner=both"],
        id="both edited keep-both"),
    row(case([L("a", "v2")], [R(2, "a", "v3")], [SYNCED], conflict=LOCAL_WINS),
        ["conflict a supersedes=2 winner=local"], id="both edited local-wins"),
    row(case([L("a", "v2")], [R(2, "a", "v3")], [SYNCED], conflict=REMOTE_WINS),
        ["conflict a winner=remote"], id="both edited remote-wins"),
    row(case([L("a", "v2", hours=3)], [R(2, "a", "v3", hours=2)], [SYNCED], conflict=NEWER_WINS),
        ["conflict a supersedes=2 winner=local"], id="both edited newer-wins local newer"),
    row(case([L("a", "v2", hours=2)], [R(2, "a", "v3", hours=3)], [SYNCED], conflict=NEWER_WINS),
        ["conflict a winner=remote"], id="both edited newer-wins remote newer"),
    row(case([L("a", "v2", hours=2)], [R(2, "a", "v3", hours=2)], [SYNCED], conflict=NEWER_WINS),
        ["conflict a winner=remote"], id="both edited newer-wins tie goes to remote"),
    row(case([L("a", "v2")], [R(2, "a", "v2")], [SYNCED]), ["record a"],
        id="both edited to the same content: record"),
    row(case([L("a", "v2")], [R(2, "a", "v3", hashcode="md5:3")], [SYNCED]),
        ["compare a winner=both"], id="both edited opaque hashcode: compare"),
    row(case([L("a", "v2")], [R(2, "a", "v3", hashcode="md5:3")], [SYNCED], conflict=LOCAL_WINS),
        ["compare a supersedes=2 winner=local"], id="compare carries the policy's winner"),
    # -- two-way deletions, delete = false --------------------------------------------------------
    row(case(remote=[R(1, "a", "v1")], base=[SYNCED]), ["record a"],
        id="local deleted, delete off: remembered"),
    row(case(remote=[R(1, "a", "v1")], base=[B("a", None, (1, "v1"))]), [],
        id="remembered local deletion: not brought back"),
    row(case(remote=[R(2, "a", "v2")], base=[B("a", None, (1, "v1"))]), ["download a"],
        id="remembered local deletion, remote changes: download"),
    row(case([L("a", "v1")], base=[SYNCED]), ["record a"], id="remote deleted, delete off: remembered"),
    row(case([L("a", "v1")], base=[B("a", "v1", None)]), [],
        id="remembered remote deletion: not brought back"),
    row(case([L("a", "v2")], base=[B("a", "v1", None)]), ["upload a"],
        id="remembered remote deletion, local changes: upload"),
    row(case([L("a", "v2")], [R(1, "a", "v1")], [B("a", None, (1, "v1"))]), ["upload a supersedes=1"],
        id="remembered local deletion, recreated locally: upload"),
    row(case(base=[SYNCED]), ["forget a"], id="both gone, delete off: forget"),
    # -- two-way deletions, delete = true ---------------------------------------------------------
    row(case(remote=[R(1, "a", "v1")], base=[SYNCED], delete=True), ["delete_remote a"],
        id="local deleted, delete on"),
    row(case(remote=[R(1, "a", "v1", 1), R(3, "a", "v0", 0), R(4, "a", "v9", status=FileStatus.ERROR)],
             base=[B("a", "v1", (1, "v1"), hours=1)], delete=True), ["delete_remote a older=3"],
        id="local deleted, delete on: older ok versions go too"),
    row(case([L("a", "v1")], base=[SYNCED], delete=True), ["delete_local a"],
        id="remote deleted, delete on"),
    row(case(base=[SYNCED], delete=True), ["forget a"], id="both gone, delete on: forget"),
    row(case(remote=[R(2, "a", "v2")], base=[SYNCED], delete=True), ["download a"],
        id="local deleted, remote changed: download"),
    row(case([L("a", "v2")], base=[SYNCED], delete=True), ["upload a"],
        id="remote deleted, local changed: upload"),
    row(case(remote=[R(1, "a", "v1")], base=[B("a", "v1", (1, "v1"), dropped=True)], delete=True),
        ["record a"], id="two-way: drop-in removal is never a deletion"),
    # -- upload mode ------------------------------------------------------------------------------
    row(case([L("a", "v1")], mode=UP), ["upload a"], id="upload: local new"),
    row(case([L("a", "v2")], [R(1, "a", "v1")], [SYNCED], mode=UP), ["upload a supersedes=1"],
        id="upload: local edit"),
    row(case(remote=[R(1, "a", "v1")], mode=UP), [], id="upload: remote new ignored"),
    row(case([L("a", "v1")], [R(2, "a", "v2")], [SYNCED], mode=UP), [], id="upload: remote edit ignored"),
    row(case([L("a", "v2")], [R(2, "a", "v3")], [SYNCED], mode=UP, conflict=REMOTE_WINS),
        ["upload a supersedes=2"], id="upload: both edited, local is the source"),
    row(case([L("a", "v1")], [R(1, "a", "v2")], mode=UP), ["upload a supersedes=1"],
        id="upload: first sync different content"),
    row(case([L("a", "v1")], [R(1, "a", "v2", hashcode="md5:x")], mode=UP), ["upload a supersedes=1"],
        id="upload: opaque hashcode, no compare"),
    row(case([L("a", "v1")], [R(1, "a", "v1")], mode=UP), ["record a"], id="upload: first sync same"),
    row(case(remote=[R(1, "a", "v1")], base=[SYNCED], mode=UP, delete=True), ["delete_remote a"],
        id="upload: local deleted, delete on"),
    row(case(remote=[R(1, "a", "v1")], base=[SYNCED], mode=UP), ["record a"],
        id="upload: local deleted, delete off: remembered"),
    row(case(remote=[R(1, "a", "v1")], base=[B("a", "v1", (1, "v1"), dropped=True)], mode=UP,
             delete=True), ["record a"], id="upload: dropped file is done, not deleted"),
    row(case(remote=[R(1, "a", "v1")], base=[B("a", None, (1, "v1"))], mode=UP, delete=True), [],
        id="upload: after a drop-in the remote copy stays"),
    row(case(base=[B("a", "v1", (1, "v1"), dropped=True)], mode=UP), ["forget a"],
        id="upload: dropped and remote gone: forget"),
    row(case(remote=[R(2, "a", "v2")], base=[SYNCED], mode=UP, delete=True), [],
        id="upload: local deleted, remote changed: never delete a newer remote"),
    row(case([L("a", "v1")], base=[SYNCED], mode=UP, delete=True), [],
        id="upload: remote deleted, not re-uploaded"),
    row(case([L("a", "v2")], base=[SYNCED], mode=UP), ["upload a"],
        id="upload: remote deleted, local changed: upload"),
    row(case(remote=[R(1, "../x", "v1")], mode=UP), [], id="upload: unsafe remote name is irrelevant"),
    # -- download mode ----------------------------------------------------------------------------
    row(case(remote=[R(1, "a", "v1")], mode=DOWN), ["download a"], id="download: remote new"),
    row(case([L("a", "v1")], [R(2, "a", "v2")], [SYNCED], mode=DOWN), ["download a"],
        id="download: remote edit"),
    row(case([L("a", "v1")], mode=DOWN), [], id="download: local new ignored"),
    row(case([L("a", "v2")], [R(1, "a", "v1")], [SYNCED], mode=DOWN), [],
        id="download: local edit ignored"),
    row(case([L("a", "v2")], [R(2, "a", "v3")], [SYNCED], mode=DOWN, conflict=LOCAL_WINS),
        ["download a"], id="download: both edited, remote is the source"),
    row(case([L("a", "v1")], [R(1, "a", "v2")], mode=DOWN), ["download a"],
        id="download: first sync different content"),
    row(case([L("a", "v1")], [R(1, "a", "v1")], mode=DOWN), ["record a"],
        id="download: first sync same"),
    row(case([L("a", "v1")], base=[SYNCED], mode=DOWN, delete=True), ["delete_local a"],
        id="download: remote deleted, delete on"),
    row(case([L("a", "v1")], base=[SYNCED], mode=DOWN), ["record a"],
        id="download: remote deleted, delete off: remembered"),
    row(case([L("a", "v2")], base=[SYNCED], mode=DOWN, delete=True), [],
        id="download: remote deleted, local edited: never delete a local edit"),
    row(case(remote=[R(1, "a", "v1")], base=[SYNCED], mode=DOWN, delete=True), [],
        id="download: local deleted, not brought back, remote kept"),
    row(case(remote=[R(2, "a", "v2")], base=[SYNCED], mode=DOWN), ["download a"],
        id="download: local deleted, remote changed: download"),
    row(case(remote=[R(1, "a/b", "v1")], mode=DOWN),
        ["fail a/b reason=unsafe remote name: name contains a path separator"],
        id="download: unsafe remote name fails"),
    # -- remote duplicates and statuses -----------------------------------------------------------
    row(case(remote=[R(5, "a", "old", 1), R(3, "a", "new", 2)]), ["download a"],
        remote_version="3", id="duplicates: newest upload_at is current"),
    row(case(remote=[R(3, "a", "x", 1), R(5, "a", "y", 1)]), ["download a"],
        remote_version="5", id="duplicates: upload_at tie, higher id is current"),
    row(case([L("a", "v1")], [R(1, "a", "v1"), R(2, "a", "v0", -1)], [SYNCED]), [],
        id="duplicates: older ok version ignored"),
    row(case(remote=[R(1, "a", "v1", status=FileStatus.UPLOADING),
                     R(2, "b", "v1", status=FileStatus.MERGING),
                     R(3, "c", "v1", status=FileStatus.ERROR)]), [],
        id="statuses other than ok are ignored"),
    row(case([L("a", "v1")], [R(1, "a", "v1"), R(2, "a", "v2", 5, status=FileStatus.UPLOADING)],
             [SYNCED]), [], id="a newer version still uploading is ignored"),
    row(case([L("\u00e9", "v1")], [R(1, "e\u0301", "v1")]), ["record \u00e9"],
        id="remote NFD name matches local NFC name"),
    # -- unsafe remote names (two-way) ------------------------------------------------------------
    *(row(case(remote=[R(1, name, "v1")]), [f"fail {name} reason=unsafe remote name: {why}"],
          id=f"unsafe name {label}")
      for label, name, why in [
          ("../x", "../x", "name contains a path separator"),
          ("a/b", "a/b", "name contains a path separator"),
          ("backslash", "a\\b", "name contains a path separator"),
          ("/etc/passwd", "/etc/passwd", "name contains a path separator"),
          ("..", "..", "reserved name '..'"),
          (".", ".", "reserved name '.'"),
          ("empty", "", "empty name"),
          ("NUL", "a\x00b", "name contains NUL"),
          ("control char", "a\x1bb", "name contains a control character"),
          ("newline", "a\nb", "name contains a control character"),
          ("300 bytes", "x" * 300, "name is 300 bytes long (the limit is 255)"),
      ]),
    row(case(remote=[R(1, "x" * 255, "v1")]), ["download " + "x" * 255], id="255-byte name is fine"),
    row(case([L("a\x01", "v1")], [R(2, "a\x01", "v2")], [B("a\x01", "v1", (1, "v1"))]),
        ["fail a\x01 reason=unsafe remote name: name contains a control character"],
        id="unsafe name never downloaded over an existing file"),
    row(case([L("a\x01", "v2")], [R(2, "a\x01", "v3")]),
        ["fail a\x01 reason=unsafe remote name: name contains a control character"],
        id="unsafe name never conflicts"),
    row(case([L("a\x01", "v2")], [R(2, "a\x01", "v3", hashcode="md5:x")]),
        ["fail a\x01 reason=unsafe remote name: name contains a control character"],
        id="unsafe name never compares"),
    row(case(base=[B("../x", None, (1, "v1"))]), ["forget ../x"], id="unsafe name row is forgotten"),
    row(case([L("a\x01", "v1")]), ["upload a\x01"],
        id="a local name the filesystem holds is uploaded (the remote may refuse it)"),
    # -- max_delete -------------------------------------------------------------------------------
    row(case([L("a", "v1"), L("b", "v1")], [R(1, "a", "v1")],
             [SYNCED, B("b", "v1", (2, "v1"))], delete=True, max_delete=50),
        ["delete_local b"], id="max_delete: 1 of 2 = 50% is allowed"),
    row(case([L("a", "v1")], [R(3, "c", "v1")],
             [SYNCED, B("b", "v1", (2, "v1")), B("c", "v1", (3, "v1"))], delete=True, max_delete=50),
        ["forget b"], skipped=2,
        warning="pass would delete 2 of 3 tracked files (66.7% > max_delete 50%); deleted nothing",
        id="max_delete: 2 of 3 trips, other actions kept"),
    row(case([L("a", "v1"), L("b", "v1"), L("n", "new")], [R(1, "a", "v1")],
             [SYNCED, B("b", "v1", (2, "v1"))], delete=True, max_delete=0),
        ["upload n"], skipped=1,
        warning="pass would delete 1 of 2 tracked files (50% > max_delete 0%); deleted nothing",
        id="max_delete: 0 forbids any deletion"),
    row(case(base=[SYNCED], delete=True, max_delete=0), ["forget a"],
        id="max_delete: forgetting is not deleting"),
    row(case([L("a", "v1")], base=[SYNCED], delete=True, max_delete=100), ["delete_local a"],
        id="max_delete: 100 allows everything"),
    row(case([L("a", "v1"), L("c", "v1")], [R(1, "a", "v1"), R(2, "b", "v1")],
             [SYNCED, B("b", None, (2, "v1")), B("c", "v1", None)], delete=True, max_delete=0),
        [], id="max_delete: one-sided rows are not tracked and delete nothing"),
    # -- no listing (a remote without LIST): the journal's remote side is taken as there ---------
    row(case([L("a", "v1")], None, [SYNCED]), [], id="no listing: in sync"),
    row(case([L("a", "v1", hours=5)], None, [SYNCED]), ["record a"], id="no listing: mtime-only touch"),
    row(case([L("a", "v2")], None, [SYNCED]), ["upload a supersedes=1"],
        id="no listing: local edit uploads, superseding the recorded version"),
    row(case([L("a", "v1")], None), ["upload a"], id="no listing: local new"),
    row(case(remote=None, base=[SYNCED], delete=True), ["delete_remote a"], id="no listing: local deleted, delete on"),
    row(case(remote=None, base=[SYNCED]), ["record a"], id="no listing: local deleted, delete off: remembered"),
    row(case(remote=None, base=[B("a", None, (1, "v1"))]), [], id="no listing: remembered local deletion"),
    row(case([L("a", "v1")], None, [B("a", "v1", None)]), [], id="no listing: remembered remote deletion"),
    row(case(remote=None, base=[SYNCED], mode=DOWN, delete=True), [], id="no listing, download: remote kept"),
    # -- marker and ordering ----------------------------------------------------------------------
    row(case([L("a", "v2")], [R(2, "b", "v1")], [SYNCED], delete=True, marker=False), [],
        blocked=MARKER_MISSING, id="marker missing: nothing planned"),
    row(case([L("c", "1"), L("a", "1")], [R(1, "b", "1"), R(2, "B", "1")]),
        ["download B", "upload a", "download b", "upload c"],
        id="actions sorted by name"),
]
# fmt: on


@pytest.mark.parametrize(("folder", "expected", "extra"), ROWS)
def test_decision(folder: Case, expected: list[str], extra: dict[str, object]) -> None:
    result = folder.run()
    assert lines(result) == expected
    assert result.warning == extra.get("warning")
    assert result.skipped_deletions == extra.get("skipped", 0)
    assert result.blocked == extra.get("blocked")
    if "remote_version" in extra:
        (action,) = result.actions
        assert action.remote is not None and action.remote.version == extra["remote_version"]


def test_action_carries_what_it_was_planned_against() -> None:
    local = L("a", "v2")
    remote = R(1, "a", "v1").entry()
    result = plan({"a": local}, [remote], {"a": SYNCED}, FolderPolicy())
    assert result == Plan(
        actions=(Action(ActionKind.UPLOAD, "a", local, remote, SYNCED, supersedes="1"),),
        unchanged=0,
    )


def test_unchanged_counts_present_names_without_reported_action() -> None:
    local = {"a": L("a", "v1"), "b": L("b", "v1", hours=2), "c": L("c", "new")}
    remote = listed([R(1, "a", "v1"), R(2, "b", "v1")])
    base = {"a": SYNCED, "b": B("b", "v1", (2, "v1")), "gone": B("gone", "v1", (9, "v1"))}
    result = plan(local, remote, base, FolderPolicy())
    assert lines(result) == ["record b", "upload c", "forget gone"]
    assert result.unchanged == 2  # a (nothing) and b (record); gone has no file on either side


def test_record_applied_then_nothing() -> None:
    """A RECORD's journal row is exactly what the next plan compares against."""
    local = {"a": L("a", "v1", hours=7)}
    remote = listed([R(4, "a", "v1", hours=3)])
    first = plan(local, remote, {"a": SYNCED}, FolderPolicy())
    (record,) = first.actions
    assert record.kind is ActionKind.RECORD
    assert plan(local, remote, {"a": record.recorded()}, FolderPolicy()).actions == ()


def test_record_keeps_dropped_while_the_local_file_exists() -> None:
    dropped = B("a", "v1", (1, "v1"), dropped=True)
    remote = listed([R(1, "a", "v1")])
    (touch,) = plan({"a": L("a", "v1", hours=1)}, remote, {"a": dropped}, FolderPolicy(Mode.UPLOAD)).actions
    assert touch.kind is ActionKind.RECORD and touch.recorded().dropped
    (gone,) = plan({}, remote, {"a": dropped}, FolderPolicy(Mode.UPLOAD, delete=True)).actions
    assert gone.kind is ActionKind.RECORD and gone.recorded() == B("a", None, (1, "v1"))


def test_journal_upload_at_representation_does_not_repeat_records() -> None:
    """Once the remote version matches, a journal handing written_at back in another
    time zone or precision is still in sync (RECORD must not repeat forever)."""
    moved = (T0 + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=2)))
    base = dataclasses.replace(SYNCED, remote_written_at=moved)
    assert plan({"a": L("a", "v1")}, listed([R(1, "a", "v1")]), {"a": base}, FolderPolicy()).actions == ()


@pytest.mark.parametrize(
    ("kind", "reported"),
    [
        (ActionKind.UPLOAD, "upload"),
        (ActionKind.DOWNLOAD, "download"),
        (ActionKind.DELETE_LOCAL, "delete_local"),
        (ActionKind.DELETE_REMOTE, "delete_remote"),
        (ActionKind.CONFLICT, "conflict"),
        (ActionKind.COMPARE, "conflict"),
        (ActionKind.FAIL, "download"),
        (ActionKind.RECORD, None),
        (ActionKind.FORGET, None),
    ],
)
def test_report_action(kind: ActionKind, reported: str | None) -> None:
    assert Action(kind, "a").report_action == reported


def test_policy_values_match_the_config_spelling() -> None:
    assert [m.value for m in Mode] == ["two-way", "upload", "download"]
    assert [c.value for c in ConflictPolicy] == ["keep-both", "local-wins", "remote-wins", "newer-wins"]
    assert FolderPolicy() == FolderPolicy(Mode.TWO_WAY, False, 50, ConflictPolicy.KEEP_BOTH)
