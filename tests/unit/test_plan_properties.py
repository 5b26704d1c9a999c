"""Properties of the planner, checked against a small pure simulator.

A `World` is a folder (name -> content, mtime), a remote place (version ->
remote file and its content), a journal and a trash. `World.apply` carries a
plan out the way the workers do (see `syncd.core.model`); the properties say what
users rely on: a second pass plans nothing, nothing unsynced is lost, remote
files are deleted only when deletions are on, `max_delete` holds, and unsafe
remote names are never written.

Every world is drawn with one of `LISTINGS`: what the remote tells the planner. With a
sha256 per file (and with the files' own mtimes too), without a sha256 (equality needs
COMPARE), or no listing at all (no LIST: the planner is given `remote=None` and the journal
is the listing; only syncd writes such a remote, since nothing else could be seen).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.model import (
    FLOOR_NONE,
    Action,
    ActionKind,
    BaseEntry,
    ConflictPolicy,
    Floor,
    FolderPolicy,
    LocalFile,
    Mode,
    Plan,
)
from syncd.core.names import normalize, unsafe_reason
from syncd.core.paths import RelPath
from syncd.core.plan import plan
from syncd.local.copynames import race_copy_names
from syncd.remote.base import RemoteFile

SAFE_NAMES = ("a.txt", "b", "\u00e9.md")
UNSAFE_NAMES = ("../x", "..")
NFD = {"\u00e9.md": "e\u0301.md"}  # the same name as another client may spell it
CONTENTS = ("x", "y", "xy", "yx", "xyz")  # equal sizes with different bytes on purpose
HOURS = (0, 1, 2)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the simulator's clock: later than anything generated
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFLICT_STAMP = "2026-01-01 000000"
WRITES_LOCALLY = {ActionKind.DOWNLOAD, ActionKind.CONFLICT, ActionKind.COMPARE, ActionKind.RACE}

LOCAL_WINS, NEWER_WINS = ConflictPolicy.LOCAL_WINS, ConflictPolicy.NEWER_WINS

SETTINGS = settings(max_examples=200, deadline=None)

SHA256, MTIME, NO_SHA256, NO_LISTING = "sha256", "sha256 and mtime", "no sha256", "no listing"
LISTINGS = (SHA256, MTIME, NO_SHA256, NO_LISTING)


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def ns(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds()) * 1_000_000_000


def moment(mtime_ns: int) -> datetime:
    return EPOCH + timedelta(seconds=mtime_ns // 1_000_000_000)


def conflicted_name(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    else:
        ext = "." + ext
    return f"{stem} (conflicted copy {CONFLICT_STAMP}){ext}"


@dataclass
class World:
    """One folder and its remote place, as plain data."""

    listing: str  # one of LISTINGS
    local: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (content, mtime_ns)
    remote: dict[str, tuple[RemoteFile, str]] = field(default_factory=dict)  # version -> (file, content)
    incomplete: set[str] = field(default_factory=set)  # versions still uploading (or never to be): unlisted
    base: dict[str, BaseEntry] = field(default_factory=dict)
    trash: list[str] = field(default_factory=list)
    next_id: int = 1
    ticks: int = 0

    # -- views the planner reads ----------------------------------------------------------------
    def local_file(self, name: str) -> LocalFile:
        content, mtime_ns = self.local[name]
        return LocalFile(RelPath(name), len(content.encode()), mtime_ns, sha(content))

    def local_files(self) -> dict[str, LocalFile]:
        return {name: self.local_file(name) for name in self.local}

    def listed(self) -> list[RemoteFile] | None:
        """What the remote lists: its complete files (None: it cannot list)."""
        if self.listing == NO_LISTING:
            return None
        return [f for version, (f, _) in self.remote.items() if version not in self.incomplete]

    def plan(self, policy: FolderPolicy) -> Plan:
        return plan(self.local_files(), self.listed(), self.base, policy)

    # -- building and changing the world -------------------------------------------------------
    def new_remote(self, path: str, content: str, written_at: datetime, mtime: datetime | None = None) -> RemoteFile:
        """A new version (server-chosen, increasing) as the remote shows it; its own mtime (the
        writer's file's, about when it was written unless given) only where the listing has one."""
        file = RemoteFile(
            path, str(self.next_id), len(content.encode()),
            sha256=None if self.listing == NO_SHA256 else sha(content),
            mtime=(mtime or written_at - timedelta(minutes=1)) if self.listing == MTIME else None,
            written_at=written_at, seq=self.next_id,
        )
        self.next_id += 1
        return file

    def put_remote(self, file: RemoteFile, content: str, *, complete: bool = True) -> None:
        self.remote[file.version] = (file, content)
        if not complete:
            self.incomplete.add(file.version)

    def tick(self) -> datetime:
        self.ticks += 1
        return NOW + timedelta(seconds=self.ticks)

    def upload(self, name: str, supersedes: str | None, replaces: RemoteFile | None = None) -> None:
        content, mtime_ns = self.local[name]
        file = self.new_remote(name, content, self.tick(), moment(mtime_ns))
        self.put_remote(file, content)
        if supersedes is not None:
            del self.remote[supersedes]
        floor = Floor.of(replaces) if replaces is not None else FLOOR_NONE
        self.base[name] = BaseEntry.synced(RelPath(name), self.local_file(name), file, floor=floor)

    def find_copy(self, name: str, content: str) -> RemoteFile | None:
        """As the executor asks the remote: only a listing with sha256s can prove a copy."""
        if self.listing in (NO_SHA256, NO_LISTING):
            return None
        found = [f for f, c in self.remote.values() if f.path == name and c == content
                 and f.version not in self.incomplete]
        return max(found, key=lambda f: (f.written_at, f.seq)) if found else None

    def race(self, action: Action) -> None:
        """RACE as the worker does it: every racing version becomes a conflicted copy."""
        assert action.remote is not None and action.racing
        name = action.name
        for version, copy in zip(action.racing, race_copy_names(action.remote.path, action.racing), strict=True):
            content = self.remote[version.version][1]
            key = normalize(copy)
            # As the worker: only a sha256 proves the local file is this version.
            if name in self.local and sha(self.local[name][0]) == version.sha256:
                self.local[key] = self.local.pop(name)
            elif key in self.local:
                assert self.local[key][0] == content
            else:
                self.local[key] = (content, ns(self.tick()))
            found = self.find_copy(copy, content)
            if found is not None:
                self.base[key] = BaseEntry.synced(RelPath(key), self.local_file(key), found)
            else:
                self.upload(key, None)
            del self.remote[version.version]
        if name not in self.local:
            self.download(name, action.remote)
        elif sha(self.local[name][0]) == action.remote.sha256:
            self.base[name] = BaseEntry.synced(RelPath(name), self.local_file(name), action.remote)
        else:
            self.resolve(replace(action, kind=ActionKind.CONFLICT, winner="both", racing=(),
                                 local=self.local_file(name)))

    def download(self, name: str, remote: RemoteFile) -> None:
        if name in self.local:
            self.trash.append(self.local[name][0])  # replaced local content is kept in the trash
        # A download takes the remote file's own mtime where the remote has one.
        self.local[name] = (self.remote[remote.version][1], ns(remote.mtime or self.tick()))
        self.base[name] = BaseEntry.synced(RelPath(name), self.local_file(name), remote)

    def resolve(self, action: Action) -> None:
        assert action.remote is not None
        # only an upload that replaces the remote version supersedes it
        assert (action.supersedes is not None) == (action.winner == "local")
        if action.winner == "both":
            copy = conflicted_name(action.name)
            assert copy not in self.local
            self.local[copy] = self.local.pop(action.name)
            self.upload(copy, None)
            self.download(action.name, action.remote)
        elif action.winner == "local":
            self.upload(action.name, action.supersedes, action.remote)
        else:
            self.download(action.name, action.remote)

    def apply(self, result: Plan) -> None:
        """Carry out every action as the workers would, checking each one's preconditions."""
        for action in result.actions:
            name = action.name
            # A worker never acts on a folder that moved since the plan.
            assert (self.local_file(name) if name in self.local else None) == action.local
            if action.remote is not None:
                assert self.remote[action.remote.version][0] == action.remote
                assert action.remote.version not in self.incomplete
            kind = action.kind
            if kind is ActionKind.UPLOAD:
                self.upload(name, action.supersedes, action.remote)
            elif kind is ActionKind.DOWNLOAD:
                assert action.remote is not None
                self.download(name, action.remote)
            elif kind is ActionKind.DELETE_LOCAL:
                self.trash.append(self.local.pop(name)[0])
                del self.base[name]
            elif kind is ActionKind.DELETE_REMOTE:
                assert action.remote is not None
                for version in (action.remote.version, *action.older):
                    del self.remote[version]
                del self.base[name]
            elif kind is ActionKind.CONFLICT:
                self.resolve(action)
            elif kind is ActionKind.COMPARE:
                assert action.remote is not None
                if self.local[name][0] == self.remote[action.remote.version][1]:
                    self.base[name] = action.recorded()
                else:
                    self.resolve(action)
            elif kind is ActionKind.RECORD:
                self.base[name] = action.recorded()
            elif kind is ActionKind.FORGET:
                del self.base[name]
            elif kind is ActionKind.RACE:
                self.race(action)
            elif kind is ActionKind.RENAME:
                old = action.renamed_from
                assert old is not None and old.remote_version is not None
                assert old.name not in self.local and self.base[old.name] == old
                self.upload(name, None)
                for version in (old.remote_version, *action.older):
                    self.remote.pop(version, None)  # already gone counts as deleted
                del self.base[old.name]
            else:
                assert kind is ActionKind.FAIL and action.reason
            for version in action.duplicates:
                self.remote.pop(version, None)
        for name, listed in result.confirmed:
            if self.base[name].remote_version == listed.version:
                self.base[name] = replace(self.base[name], remote_floor=None, remote_written_at=listed.written_at)

    def current_remote(self) -> dict[str, RemoteFile]:
        """The current version of each name: the newest complete one (SPEC, "Remote duplicates")."""
        current: dict[str, RemoteFile] = {}
        for file, _ in sorted(self.remote.values(), key=lambda fc: (fc[0].written_at, fc[0].seq)):
            if file.version not in self.incomplete:
                current[normalize(file.path)] = file
        return current

    def contents(self) -> set[str]:
        """Every content that exists anywhere: locally, remotely (complete or not) or in the trash."""
        return (
            {content for content, _ in self.local.values()}
            | {content for _, content in self.remote.values()}
            | set(self.trash)
        )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A folder some time after a sync: each name's journal row, then what each side did since."""
    world = World(listing=draw(st.sampled_from(LISTINGS)))
    names = draw(st.lists(st.sampled_from(SAFE_NAMES + UNSAFE_NAMES), unique=True, max_size=4))
    for name in names:
        safe = unsafe_reason(name) is None
        # Contents carry their name, so that one name's copy never stands in for another's.
        contents = st.sampled_from([f"{name}:{c}" for c in CONTENTS])
        hours = st.sampled_from(HOURS)

        shapes = ["none", "both", "both", "both", "local", "remote"] if safe else ["none", "remote"]
        shape = draw(st.sampled_from(shapes))
        synced, synced_at = draw(contents), T0 + timedelta(hours=draw(hours))
        base_local = base_remote = None
        if shape in ("both", "local"):
            base_local = LocalFile(RelPath(name), len(synced.encode()), ns(synced_at), sha(synced))
        if shape in ("both", "remote"):
            base_remote = world.new_remote(name, synced, synced_at)
        if base_local or base_remote:
            dropped = shape == "both" and draw(st.booleans())
            world.base[name] = BaseEntry.synced(RelPath(name), base_local, base_remote, dropped=dropped)

        if safe:
            now = draw(st.sampled_from(["synced", "synced", "touched", "edited", "absent"]))
            if now == "synced":
                world.local[name] = (synced, ns(synced_at))
            elif now == "touched":
                world.local[name] = (synced, ns(synced_at + timedelta(minutes=30)))
            elif now == "edited":
                world.local[name] = (draw(contents), ns(T0 + timedelta(hours=draw(hours))))

        if world.listing == NO_LISTING:  # nobody else writes there (nothing else could be seen)
            if base_remote is not None:
                world.put_remote(base_remote, synced)
            continue
        remote_now = draw(
            st.sampled_from(["synced", "synced", "with older", "reuploaded", "edited", "absent", "mixed"])
        )
        if remote_now in ("synced", "with older", "mixed") and base_remote is not None:
            world.put_remote(base_remote, synced)
        if remote_now == "with older":  # an earlier upload of the same name is still listed
            content = draw(contents)
            world.put_remote(world.new_remote(name, content, synced_at - timedelta(hours=1)), content)
        elif remote_now == "reuploaded":
            world.put_remote(world.new_remote(name, synced, synced_at + timedelta(hours=1)), synced)
        elif remote_now == "edited":
            content, written_at = draw(contents), T0 + timedelta(hours=draw(hours))
            # Its own mtime (where the listing has one) may say otherwise than its write time.
            mtime = T0 + timedelta(hours=draw(hours)) if world.listing == MTIME else None
            world.put_remote(world.new_remote(name, content, written_at, mtime), content)
        elif remote_now == "mixed":  # duplicates, other spellings, versions not complete (yet or ever)
            for _ in range(draw(st.integers(1, 3))):
                complete = draw(st.sampled_from([True, True, False, False]))
                spelling = draw(st.sampled_from([name, NFD.get(name, name)]))
                # older than the synced version, or newer
                content, written_at = draw(contents), T0 + timedelta(hours=draw(st.sampled_from((-1, *HOURS))))
                world.put_remote(world.new_remote(spelling, content, written_at), content, complete=complete)
    return world


ANY_DELETE = st.booleans()
SOME_MAX_DELETE = st.sampled_from([0, 34, 50, 100, 100])


def policies(
    delete: st.SearchStrategy[bool] = ANY_DELETE,
    max_delete: st.SearchStrategy[int] = SOME_MAX_DELETE,
) -> st.SearchStrategy[FolderPolicy]:
    return st.builds(
        FolderPolicy,
        mode=st.sampled_from(Mode),
        delete=delete,
        max_delete=max_delete,
        conflict=st.sampled_from(ConflictPolicy),
    )


def real_actions(result: Plan) -> list[Action]:
    """Actions that would change something; a FAIL is reported again on every pass."""
    return [a for a in result.actions if a.kind is not ActionKind.FAIL]


@pytest.mark.parametrize("mode", list(Mode))
@SETTINGS
@given(world=worlds(), delete=st.booleans(), conflict=st.sampled_from(ConflictPolicy))
def test_second_pass_plans_nothing(mode: Mode, world: World, delete: bool, conflict: ConflictPolicy) -> None:
    policy = FolderPolicy(mode, delete, 100, conflict)
    world.apply(world.plan(policy))
    assert real_actions(world.plan(policy)) == []


@SETTINGS
@given(world=worlds(), policy=policies())
def test_after_a_max_delete_trip_only_deletions_remain(world: World, policy: FolderPolicy) -> None:
    first = world.plan(policy)
    world.apply(first)
    again = real_actions(world.plan(policy))
    if first.warning is None:
        assert again == []
    else:  # the skipped deletions come back (to be skipped or, with more tracked files, done)
        assert all(a.is_deletion for a in again)


@SETTINGS
@given(world=worlds(), policy=policies())
def test_nothing_unsynced_is_lost(world: World, policy: FolderPolicy) -> None:
    before_local = {content for content, _ in world.local.values()}
    before_remote = dict(world.remote)
    before_base = dict(world.base)
    result = world.plan(policy)
    world.apply(result)
    after = world.contents()

    # Local content is never destroyed: replaced or deleted, it goes to the trash.
    assert before_local <= after

    # A remote version disappears only when the plan said so: replaced by an
    # upload (`supersedes`) or deleted with deletions on.
    removed = set(before_remote) - set(world.remote)
    superseded = {a.supersedes for a in result.actions if a.supersedes is not None}
    deleted = {v for a in result.actions if a.remote and a.is_deletion for v in (a.remote.version, *a.older)}
    # Duplicates go only while a kept version holds their content; racing versions only once
    # their content is a conflicted copy.
    duplicates = {i for a in result.actions if not a.is_deletion for i in a.duplicates}
    deleted |= {i for a in result.actions if a.is_deletion for i in a.duplicates}
    racing = {f.version for a in result.actions for f in a.racing}
    assert removed <= superseded | deleted | duplicates | racing
    assert not deleted or policy.delete
    replaced = {before_remote[i][1] for i in (superseded | deleted) & set(before_remote)}
    for version in duplicates & removed:  # as safe as the version it duplicates
        assert before_remote[version][1] in {c for _, c in world.remote.values()} | replaced
    for version in racing:
        assert before_remote[version][1] in {c for c, _ in world.local.values()}
    removed -= duplicates | racing

    # Only a policy that lets local win may discard a remote edit: otherwise an
    # upload replaces exactly the version the local edit started from.
    local_may_win = policy.mode is Mode.UPLOAD or policy.conflict in (LOCAL_WINS, NEWER_WINS)
    for version in removed - deleted:
        file, content = before_remote[version]
        base = before_base.get(normalize(file.path))
        # The version the journal synced, or one proven to hold its very bytes.
        synced_version = base is not None and (
            base.remote_version == file.version
            or (file.sha256 is not None and (base.remote_size, base.remote_sha256) == (file.size, file.sha256))
        )
        assert synced_version or content in after or local_may_win


@SETTINGS
@given(world=worlds(), policy=policies(max_delete=st.just(100)))
def test_deletions_only_when_enabled(world: World, policy: FolderPolicy) -> None:
    before = set(world.remote)
    result = world.plan(policy)
    world.apply(result)
    superseded = {a.supersedes for a in result.actions if a.supersedes is not None}
    # Neither is removing an exact duplicate, or a racing version once it is a conflicted copy.
    superseded |= {v for a in result.actions for v in (*a.duplicates, *(f.version for f in a.racing))}
    if not policy.delete:
        assert not any(a.is_deletion for a in result.actions)
        assert before - set(world.remote) <= superseded  # replacing an updated file is not deleting


@pytest.mark.parametrize("delete", [False, True])
@SETTINGS
@given(world=worlds(), conflict=st.sampled_from(ConflictPolicy))
def test_two_way_pass_leaves_both_sides_in_agreement(world: World, conflict: ConflictPolicy, delete: bool) -> None:
    """After a two-way pass each name holds the same content on both sides, or is
    a one-sided deletion the journal remembers, or failed (unsafe name)."""
    result = world.plan(FolderPolicy(Mode.TWO_WAY, delete, 100, conflict))
    world.apply(result)
    failed = {a.name for a in result.actions if a.kind is ActionKind.FAIL}
    remote = world.current_remote()
    for name in (set(world.local) | set(remote)) - failed:
        local_content = world.local[name][0] if name in world.local else None
        remote_content = world.remote[remote[name].version][1] if name in remote else None
        if local_content is not None and remote_content is not None:
            assert local_content == remote_content
        else:  # remembered: the journal holds the present side only
            entry = world.base[name]
            assert entry.has_local == (local_content is not None)
            assert entry.has_remote == (remote_content is not None)


@SETTINGS
@given(world=worlds(), policy=policies(delete=st.just(True), max_delete=st.integers(0, 100)))
def test_max_delete_holds(world: World, policy: FolderPolicy) -> None:
    result = world.plan(policy)
    tracked = sum(1 for entry in world.base.values() if entry.tracked)
    deletions = sum(1 for a in result.actions if a.is_deletion)
    assert deletions * 100 <= policy.max_delete * tracked
    assert (result.warning is None) == (result.skipped_deletions == 0)


@SETTINGS
@given(world=worlds(), policy=policies())
def test_unsafe_names_are_never_written(world: World, policy: FolderPolicy) -> None:
    for action in world.plan(policy).actions:
        if unsafe_reason(action.name) is not None:
            assert action.kind not in WRITES_LOCALLY
        if action.kind is ActionKind.FAIL:
            assert action.reason and action.reason.startswith("unsafe remote name: ")


@SETTINGS
@given(world=worlds(), policy=policies())
def test_modes_and_order(world: World, policy: FolderPolicy) -> None:
    """One action per name, sorted; one-way modes never write the side they read from."""
    actions = world.plan(policy).actions
    names = [a.name for a in actions]
    assert names == sorted(set(names))
    kinds = {a.kind for a in actions}
    if policy.mode is Mode.UPLOAD:
        assert not kinds & {*WRITES_LOCALLY, ActionKind.DELETE_LOCAL, ActionKind.FAIL}
    if policy.mode is Mode.DOWNLOAD:
        assert not kinds & {ActionKind.UPLOAD, ActionKind.DELETE_REMOTE, ActionKind.CONFLICT}
        assert ActionKind.COMPARE not in kinds
        assert all(a.supersedes is None for a in actions)
        assert ActionKind.RENAME not in kinds


@st.composite
def renamed_worlds(draw: st.DrawFn) -> tuple[World, dict[str, str]]:
    """A synced folder (contents may repeat across names), then some files renamed locally:
    returns the world and old name -> new name."""
    world = World(listing=draw(st.sampled_from(LISTINGS)))
    count = draw(st.integers(1, 6))
    for i in range(count):
        name, content = f"f{i}.txt", draw(st.sampled_from(CONTENTS))
        world.local[name] = (content, ns(T0))
        file = world.new_remote(name, content, T0)
        world.put_remote(file, content)
        world.base[name] = BaseEntry.synced(RelPath(name), world.local_file(name), file)
    moved = draw(st.lists(st.integers(0, count - 1), unique=True))
    targets = draw(st.permutations([f"g{i}.txt" for i in range(count)]))
    renames = {f"f{i}.txt": targets[i] for i in moved}
    for old, new in renames.items():
        world.local[new] = world.local.pop(old)
    return world, renames


@SETTINGS
@given(case=renamed_worlds(), delete=st.booleans(), mode=st.sampled_from([Mode.TWO_WAY, Mode.UPLOAD]))
def test_renames_are_never_deletions_and_converge(
    case: tuple[World, dict[str, str]], delete: bool, mode: Mode
) -> None:
    world, renames = case
    policy = FolderPolicy(mode, delete, 0)  # max_delete 0: any deletion would trip it
    first = world.plan(policy)
    assert first.warning is None and not any(a.is_deletion for a in first.actions)
    assert {a.kind for a in first.actions} <= {ActionKind.RENAME}
    # Every rename pairs (contents may repeat: the pairs need not be the ones made, but as many).
    assert len(first.actions) == len(renames)
    world.apply(first)
    assert real_actions(world.plan(policy)) == []
    current = world.current_remote()
    assert set(current) == set(world.local)
    assert all(world.remote[current[n].version][1] == world.local[n][0] for n in world.local)
