"""Two machines, one chat, the same names edited at about the same moment (SPEC, "Concurrent
writers"): two real `syncd run` daemons (own state dirs, own folders m1/ and m2/) against one
real `syncd serve` on loopback, with the published SDK looking at the chat.

Whatever the spacing between the two machines' edits, once both have synced every machine
shows both versions (one under the name, the other as a conflicted copy, none in the trash)
and the chat holds exactly one copy of each. Edits close together race (both machines upload
before either sees the other's version); edits further apart are seen before the second
upload and become ordinary conflicts: the outcome must be the same.

Each machine talks to the service through its own recording proxy, so the test knows when a
machine polled (to space its edits between two polls of the machine that edits second: an
edit made after that machine had downloaded the other's version is a later edit, not a race)
and which machine uploaded what (to count the races). Each round prints a one-line summary
(`pytest -s` shows it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from bdd_file import BddFileClient
from bdd_file.exception import BddFileError

from tests.support.chat import conflicted_copy_of, local_files, ok_files, put
from tests.support.daemon import wait_for
from tests.support.machines import Machine
from tests.support.serve import ServeProcess

pytestmark = pytest.mark.timeout(180)

CHAT = "two-machines"
BASE = b"base"
SETTLE = 0.2
#: How long one round may take to converge before the test fails.
CONVERGE = 20.0
#: Between one name's edit and the next name's on one machine.
STEP = 0.001
#: (spacing between the two machines' edits of one name, test id). The first: all ten edits
#: (5 names, 2 machines) within 10 ms.
SPACINGS = [(0.005, "within-10ms"), (0.1, "0.1s-apart"), (1.0, "1s-apart"), (3.0, "3s-apart")]
#: In the default run the 3 s case (the 1 s case in slow motion) is opt-in.
SPACING_CASES = [
    pytest.param(*case, marks=pytest.mark.slow) if case[0] >= 3 else pytest.param(*case) for case in SPACINGS
]


def poll_interval(spacing: float) -> float:
    """Short, so that rounds converge quickly; for spaced edits, longer than the spacing, so
    that the machine that edits second cannot poll (and download the other version) between
    the two edits when its edit follows one of its polls."""
    return 1.5 if spacing < 0.5 else spacing + 1.0


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """`syncd serve` in its own process (overrides the in-process service of conftest): the two
    daemons and the test's own polling share two cores, the service needs its own."""
    with ServeProcess(tmp_path / "server-data") as served:
        yield served.url


class Pair:
    """Machines m1 and m2 on chat CHAT."""

    def __init__(self, tmp_path: Path, url: str, sdk: BddFileClient, poll: float) -> None:
        self.sdk = sdk
        daemon = {"poll_interval": poll, "rescan_interval": 3600}
        self.m1 = Machine(tmp_path, "m1", url, CHAT, settle=SETTLE, daemon=daemon)
        self.m2 = Machine(tmp_path, "m2", url, CHAT, settle=SETTLE, daemon=daemon)
        self.machines = (self.m1, self.m2)

    def other(self, machine: Machine) -> Machine:
        return self.m2 if machine is self.m1 else self.m1

    def start_on_base(self, names: list[str]) -> None:
        """Both daemons running, both folders holding `names` with BASE, synced."""
        for name in names:
            put(self.sdk, CHAT, name, BASE)
        for m in self.machines:
            m.launch()
        for m in self.machines:
            m.d.wait_ready()
        want = dict.fromkeys(names, BASE)
        wait_for(
            lambda: all(local_files(m.folder) == want for m in self.machines)
            and sorted(i.filename for i, _ in ok_files(self.sdk, CHAT)) == sorted(names),
            what="both machines synced on the base", every=0.1,
        )

    def close(self) -> None:
        for m in self.machines:
            m.close()


@pytest.fixture
def pair_factory(tmp_path: Path, server_url: str, sdk: BddFileClient) -> Iterator[type[Pair]]:
    made: list[Pair] = []

    class Made(Pair):
        def __init__(self, poll: float) -> None:  # type: ignore[override]
            super().__init__(tmp_path, server_url, sdk, poll)
            made.append(self)

    yield Made  # type: ignore[misc]
    for p in made:
        p.close()


# -- one round ---------------------------------------------------------------------------------


@dataclass
class Round:
    """Each name edited once on each machine."""

    label: str
    names: list[str]
    edits: dict[str, dict[str, bytes]]  # name -> machine name -> what it wrote
    second: dict[str, str]  # name -> the machine that edits it second
    before: dict[str, bytes]  # the (converged) folder before the round, the round's names left out
    started: float = 0.0
    sequential: set[str] = field(default_factory=set)  # second edit made over the first's version

    def versions(self, name: str) -> set[bytes]:
        return set(self.edits[name].values())

    def wanted(self, name: str) -> set[bytes]:
        """The versions that must stay visible."""
        if name in self.sequential:
            return {self.edits[name][self.second[name]]}
        return self.versions(name)


@dataclass
class Figures:
    races: int = 0  # both machines uploaded their own version
    seen_first: int = 0  # the second machine saw the first's version before uploading
    sequential: int = 0  # not concurrent at all (should not happen: see poll_interval)
    conflicted_copies: int = 0
    lost: int = 0  # versions not visible in both folders and the chat
    rounds: int = 0

    def add(self, other: Figures) -> None:
        for key in ("races", "seen_first", "sequential", "conflicted_copies", "lost", "rounds"):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def line(self, label: str, names: int, outcome: str) -> str:
        return (
            f"concurrent writers [{label}]: {names} names x {self.rounds} rounds: {self.races} races "
            f"(both uploaded), {self.seen_first} seen before upload, {self.sequential} sequential, "
            f"{self.conflicted_copies} conflicted copies, {self.lost} lost; {outcome}"
        )


def edit_round(
    pair: Pair, label: str, names: list[str], spacing: float, *, first: Machine | None = None,
    identical: bool = False,
) -> Round:
    """Write each name on both machines, `spacing` seconds apart. `first`: the machine that
    edits every name first (then the round starts right after a poll of the other one);
    otherwise the first machine alternates from name to name."""
    m1, m2 = pair.m1, pair.m2
    files = local_files(m1.folder)
    before = {n: b for n, b in files.items() if n not in names}
    tag = label.replace(" ", "")
    edits = {
        name: {
            "m1": f"same-{tag}-{i}".encode() if identical else f"A-{tag}-{i}".encode(),
            "m2": f"same-{tag}-{i}".encode() if identical else f"B-{tag}-{i}".encode(),
        }
        for i, name in enumerate(names)
    }
    firsts = {name: first or (m1 if i % 2 == 0 else m2) for i, name in enumerate(names)}
    rnd = Round(label, names, edits, {name: pair.other(one).name for name, one in firsts.items()}, before)
    schedule: list[tuple[float, Machine, str, bool]] = []
    for i, (name, one) in enumerate(firsts.items()):
        schedule.append((i * STEP, one, name, False))
        schedule.append((spacing + i * STEP, pair.other(one), name, True))
    schedule.sort(key=lambda e: e[0])
    if first is not None:
        pair.other(first).wait_for_poll()
    rnd.started = t0 = time.monotonic()
    for offset, machine, name, second in schedule:
        time.sleep(max(0.0, t0 + offset - time.monotonic()))  # the scenario's timing
        path = machine.folder / name
        if second and path.read_bytes() != files[name]:
            rnd.sequential.add(name)  # this machine had the other's version already
        path.write_bytes(edits[name][machine.name])
    return rnd


def problems(pair: Pair, rnd: Round) -> list[str]:
    """What keeps the round from having converged (empty: converged)."""
    out = [f"{m.name}'s daemon exited" for m in pair.machines if m.d.proc.poll() is not None]
    folders = {m.name: local_files(m.folder) for m in pair.machines}
    f1, f2 = folders["m1"], folders["m2"]
    if f1 != f2:
        differ = sorted(n for n in f1.keys() & f2.keys() if f1[n] != f2[n])
        out.append(f"the folders differ: only m1 {sorted(f1.keys() - f2.keys())}, "
                   f"only m2 {sorted(f2.keys() - f1.keys())}, different bytes {differ}")
    try:
        remote = ok_files(pair.sdk, CHAT)
    except (BddFileError, requests.exceptions.ChunkedEncodingError) as exc:  # still changing under us
        return [*out, f"the chat kept changing while it was read: {exc}"]
    names = [info.filename for info, _ in remote]
    if len(set(names)) != len(names):
        out.append(f"the chat holds several ok files named {sorted({n for n in names if names.count(n) > 1})}")
    contents = [data for _, data in remote]
    if len(set(contents)) != len(contents):
        out.append(f"the chat holds one content twice: {sorted({c for c in contents if contents.count(c) > 1})}")
    on_remote = {info.filename: data for info, data in remote}
    if on_remote != f1:
        out.append(f"the chat differs from m1's folder: chat {sorted(on_remote.items())}")
    everything = {v for name in rnd.names for v in rnd.versions(name)}
    for label, files in folders.items():
        changed = sorted(n for n in rnd.before if files.get(n) != rnd.before[n])
        if changed:
            out.append(f"{label}: files from before the round changed: {changed}")
        for name in rnd.names:
            wanted = rnd.wanted(name)
            holding = {n: data for n, data in files.items() if data in rnd.versions(name)}
            for version in sorted(wanted):
                where = [n for n, data in holding.items() if data == version]
                if not where:
                    out.append(f"{label}: {version.decode()} is not in the folder")
                elif len(where) > 1:
                    out.append(f"{label}: {version.decode()} is in the folder {len(where)} times: {where}")
            if files.get(name) not in wanted:
                out.append(f"{label}: {name} holds {files.get(name)!r}, not one of its versions")
            for n, data in holding.items():
                if data not in wanted:
                    out.append(f"{label}: {n} holds {data.decode()}, replaced by a later edit")
                elif n != name and conflicted_copy_of(n) != name:
                    out.append(f"{label}: {n} holds a version of {name} but is not its conflicted copy")
        strays = sorted(n for n, data in files.items() if n not in rnd.before and data not in everything)
        if strays:
            out.append(f"{label}: unexpected files {strays}")
    return out


def figures(pair: Pair, rnd: Round) -> Figures:
    f = Figures(rounds=1)
    up1, up2 = set(pair.m1.uploads(rnd.started)), set(pair.m2.uploads(rnd.started))
    folders = [local_files(m.folder) for m in pair.machines]
    remote = {info.filename: data for info, data in ok_files(pair.sdk, CHAT)}
    for name in rnd.names:
        if name in rnd.sequential:
            f.sequential += 1
        elif name in up1 and name in up2:
            f.races += 1
        else:
            f.seen_first += 1
        wanted = rnd.wanted(name)
        f.lost += sum(1 for v in wanted if not all(v in place.values() for place in (*folders, remote)))
        f.conflicted_copies += sum(
            1 for n, data in folders[0].items() if conflicted_copy_of(n) == name and data in rnd.versions(name)
        )
    return f


def diagnose(pair: Pair, rnd: Round) -> str:
    lines = []
    for m in pair.machines:
        trash = m.folder / ".syncd" / "trash"
        held = sorted(p.read_bytes().decode(errors="replace") for p in trash.rglob("*") if p.is_file())
        shown = sorted((n, b.decode(errors="replace")) for n, b in local_files(m.folder).items())
        lines.append(f"{m.name} folder: {shown}")
        lines.append(f"{m.name} trash: {held}")
        lines.append(f"{m.name} uploads this round: {m.uploads(rnd.started)}")
        lines += [f"{m.name} log: {e}" for e in m.d.events if e.get("event") in ("conflict", "transfer")][-40:]
    for info in pair.sdk.list_chat_files(chat_id=CHAT):
        when = info.upload_at.isoformat()
        lines.append(f"chat: id {info.id} {info.filename} {info.status} {when} sha256 {info.hashcode[:8]}")
    return "\n".join(lines)


def converge(pair: Pair, rnd: Round) -> Figures:
    """Wait until the round has converged, print its figures, fail with what is still wrong;
    then check that a further poll of each machine changes nothing (no conflict storm)."""
    deadline = time.monotonic() + CONVERGE
    while (found := problems(pair, rnd)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the condition
    took = time.monotonic() - rnd.started
    f = figures(pair, rnd)
    outcome = f"converged in {took:.1f} s" if not found else f"NOT converged after {took:.1f} s"
    print("\n" + f.line(rnd.label, len(rnd.names), outcome))
    if found:
        print(diagnose(pair, rnd))
    assert not found, "; ".join(found)

    settled = (local_files(pair.m1.folder), sorted((i.id, i.filename) for i, _ in ok_files(pair.sdk, CHAT)))
    since = time.monotonic()
    for m in pair.machines:
        wait_for(lambda m=m: m.listings(since), timeout=30, what=f"{m.name} to poll again")
    # ... and whatever that poll started, done: neither machine has asked anything for a while.
    wait_for(lambda: all(time.monotonic() - m.proxy.seen()[-1].at > 1.0 for m in pair.machines),
             timeout=30, what="both machines quiet", every=0.1)
    assert problems(pair, rnd) == []
    after = (local_files(pair.m1.folder), sorted((i.id, i.filename) for i, _ in ok_files(pair.sdk, CHAT)))
    assert after == settled, "a further poll changed the converged state"
    return f


# -- the tests ---------------------------------------------------------------------------------

NAMES = [f"name{i}.txt" for i in range(5)]


@pytest.mark.parametrize(("spacing", "label"), SPACING_CASES, ids=[s[1] for s in SPACINGS])
def test_edits_on_two_machines_both_stay_visible(pair_factory: type[Pair], spacing: float, label: str) -> None:
    pair = pair_factory(poll_interval(spacing))
    pair.start_on_base(NAMES)
    # Spaced edits: one machine edits every name first (m1 for 1 s, m2 for 3 s), so each
    # machine is the first writer in some round; close edits alternate name by name.
    first = None if spacing < 0.5 else (pair.m1 if spacing < 2 else pair.m2)
    rnd = edit_round(pair, label, NAMES, spacing, first=first)
    f = converge(pair, rnd)
    assert f.lost == 0
    assert f.conflicted_copies == len(NAMES) - f.sequential  # one per concurrent edit, no more
    for m in pair.machines:
        assert m.d.stop() == 0


def test_identical_edits_on_two_machines_are_no_conflict(pair_factory: type[Pair]) -> None:
    pair = pair_factory(poll_interval(0.005))
    pair.start_on_base(NAMES)
    rnd = edit_round(pair, "identical", NAMES, 0.005, identical=True)
    f = converge(pair, rnd)
    assert f.conflicted_copies == 0
    for m in pair.machines:
        assert m.d.find("conflict") == [], f"{m.name} reported a conflict"
    for m in pair.machines:
        assert m.d.stop() == 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_rounds_of_concurrent_edits(pair_factory: type[Pair]) -> None:
    names = [f"doc{i:02d}.txt" for i in range(10)]
    pair = pair_factory(poll_interval(3.0))
    pair.start_on_base(names)
    total = Figures()
    for repeat in range(3):
        for spacing, label in SPACINGS:
            first = None if spacing < 0.5 else (pair.m1 if repeat % 2 == 0 else pair.m2)
            total.add(converge(pair, edit_round(pair, f"{label} #{repeat}", names, spacing, first=first)))
        total.add(converge(pair, edit_round(pair, f"identical #{repeat}", names, 0.005, identical=True)))
    print("\n" + total.line("all rounds", len(names), "done"))
    assert total.lost == 0
    for m in pair.machines:
        assert m.d.stop() == 0
