"""A remote that lies: hostile names, malformed answers, lying totals, a key revoked mid-run.

1. **Hostile names.** A service (`HostileServer`) lists 30+ names that are not
   a safe single path component - separators, `.`/`..`, empty, NUL, C0 and C1
   controls (ESC, newline, DEL, NEL, CSI), names over 255 bytes of UTF-8,
   absolute and Windows paths, UNC paths, trailing slashes, names reaching into
   `.syncd/` - next to good ones, including odd but safe names (exactly 255
   bytes; fullwidth and division slashes, which only NFKC - not the NFC syncd
   compares names in - would turn into `/`). syncd downloads every good file
   under its own name, fails each hostile one with "unsafe remote name:
   <reason>", never fetches a hostile id and writes nothing outside its folder
   and state dir. Names the folder ignores (`.syncd` itself, `*.part`) and a
   name that is not valid Unicode (a lone surrogate, which JSON can carry; it
   used to crash every pass) are skipped: neither fetched nor reported.
2. **Malformed answers** (through a `FaultProxy` in front of the reference
   service): HTML pages, invalid JSON, envelopes missing fields, fields of the
   wrong type, to the listing and to uploads, downloads and deletes. Met once,
   each is retried in-process and the pass succeeds. A listing malformed on
   every attempt blocks the pass cleanly: exit 1, the reason in the report and
   in `status`, no traceback, nothing changed locally; once the service answers
   properly, a pass converges.
3. **A lying `total`**, bigger or smaller than the real count, from a service
   that caps its pages below the limit asked for (`delete = true`, so a short
   listing would trash local files): every pass plans nothing.
4. **A key revoked mid-run**: the pass fails with "authentication failed for
   remote ...", `status --json` says so in `last_error`, the key is in no
   output nor in the state dir, nothing is lost; with the key back, a pass
   converges. The first 401 pauses the remote: no further work is claimed for
   it (only requests already in flight meet the 401 too), and the pause, shown
   in `status`, is lifted by the first pass the remote answers.

Every scenario ends with the whole-state audit. FULL versions (`-m
adversarial`) cover every case; SHORT versions (default suite) a few.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from syncd.config.model import DaemonConfig
from syncd.remote.bdd.client import BddClient
from tests.adversarial.audit import Ledger, RemoteFile, audit, local_files, remote_files
from tests.adversarial.conftest import Audited
from tests.support.faultproxy import (
    Fault,
    FaultProxy,
    Respond,
    Seen,
    envelope,
    html_page,
    invalid_json,
)
from tests.support.hostile_server import HostileServer
from tests.support.syncd_cli import Result, reconcile, run_syncd, write_config

CHAT = "chat-hostile"
FOLDER = "h"

# -- 1. hostile names ------------------------------------------------------------------------------

#: Remote name -> a word the failure's reason must contain.
HOSTILE: dict[str, str] = {
    "": "empty name",
    ".": "reserved name",
    "..": "reserved name",
    "../x": "path separator",
    "../../../../tmp/escaped": "path separator",
    "a/b": "path separator",
    "a/../../b": "path separator",
    "./x": "path separator",
    "x/..": "path separator",
    "/etc/passwd": "path separator",
    "/abs.txt": "path separator",
    "trailing/": "path separator",
    "dir/": "path separator",
    "~/x": "path separator",
    ".syncd/tmp/x": "path separator",
    ".syncd/trash/x": "path separator",
    "back\\slash": "path separator",
    "..\\..\\x": "path separator",
    "C:\\x": "path separator",
    "C:\\Windows\\evil.txt": "path separator",
    "\\\\server\\share": "path separator",
    "nul\x00byte": "NUL",
    "esc\x1b[2Jname": "control character",
    "line\nbreak": "control character",
    "carriage\rreturn": "control character",
    "tab\tname": "control character",
    "bell\x07": "control character",
    "del\x7fname": "control character",
    "next\x85line": "control character",  # C1 NEL
    "csi\x9b31m": "control character",  # C1 CSI
    "x" * 256: "256 bytes",
    "é" * 128: "256 bytes",
    "\U0001f600" * 64: "256 bytes",
}
#: Never fetched, never written, not reported: names the folder ignores, and a name that is
#: not valid Unicode (a lone surrogate, which JSON can carry), left out of the listing.
SKIPPED = (".syncd", "evil.part", "lone\ud800surrogate")
#: Odd but safe: each must arrive under exactly its own name.
GOOD = (
    "good.txt",
    "x" * 255,
    "é" * 127 + "x",
    "full\uff0fwidth",  # fullwidth solidus: '/' under NFKC only
    "division\u2215slash",
    "...",
    " leading space",
    "%2e%2e%2fencoded",
    "C:x",
)


def payload(name: str) -> bytes:
    return b"bytes of " + name.encode("utf-8", "surrogatepass")


def listed(server: HostileServer) -> list[RemoteFile]:
    """The audit's remote side: the hostile server's own file list."""
    return [RemoteFile(name, "ok", data) for name, data in server.files]


def hostile_names_scenario(tmp_path: Path, audited: Audited, scenario: str, hostile: dict[str, str]) -> None:
    """`hostile` names (name -> reason word), SKIPPED and GOOD ones listed together; two passes."""
    files = [(name, payload(name)) for name in (*hostile, *SKIPPED, *GOOD)]
    ledger = Ledger()
    for name, data in files:
        ledger.saw(name, data)
    ledger.never_local.update(hostile, SKIPPED)
    ledger.remote_only.update(hostile, SKIPPED)
    folder, state_dir = tmp_path / FOLDER, tmp_path / "state"

    with HostileServer(files) as server:
        config = write_config(
            tmp_path / "syncd.toml", state_dir=state_dir, url=server.url,
            folders=[{"name": FOLDER, "path": folder, "chat_id": CHAT, "delete": True}],
        )
        first, second = reconcile(config), reconcile(config)
        fetched = {server.files[i - 1][0] for i in server.downloaded()}

    for result in (first, second):
        assert result.code == 1 and "Traceback" not in result.stderr, result.stderr
        actions = result.folder(FOLDER).actions
        failed = {name: a["error"] for name, a in actions.items() if a["status"] == "failed"}
        assert set(failed) == set(hostile), sorted(set(failed) ^ set(hostile))
        for name, why in hostile.items():
            assert "unsafe remote name: " in failed[name] and why in failed[name], (name, failed[name])
        assert not set(SKIPPED) & set(actions)
    assert {a["name"] for a in first.folder(FOLDER)["actions"] if a["status"] == "done"} == set(GOOD)
    assert fetched == set(GOOD)  # no hostile (or skipped) id was ever fetched
    assert set(local_files(folder)) == set(GOOD)
    audited(
        scenario,
        audit(ledger, folder=folder, remote=listed(server), sandbox=tmp_path, allowed=[state_dir, config]),
    )


@pytest.mark.adversarial
def test_hostile_names_full(tmp_path: Path, audited: Audited) -> None:
    hostile_names_scenario(tmp_path, audited, "hostile names", HOSTILE)


def test_hostile_names_short(tmp_path: Path, audited: Audited) -> None:
    some = dict(list(HOSTILE.items())[::3])
    hostile_names_scenario(tmp_path, audited, "hostile names (short)", some)


def test_a_name_that_is_not_unicode_is_left_out_of_the_listing(tmp_path: Path) -> None:
    """The fix behind SKIPPED: such a name crashed every pass (the queue could not store it)."""
    files = [("lone\ud800surrogate", b"x"), ("fine.txt", b"y")]
    with HostileServer(files) as server, BddClient(server.url, "u", retry_attempts=1) as remote:
        assert [f.filename for f in remote.list_chat(CHAT)] == ["fine.txt"]


# -- common ground for the scenarios through a proxy ----------------------------------------------

KEY_ENV, KEY = "SYNCD_HOSTILE_KEY", "sk-do-not-print-7f3a9c"


@dataclass
class Scene:
    """Folder `h` synced with chat `chat-hostile` through `url` (a proxy, usually), with an API key."""

    tmp: Path
    url: str
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self.folder = self.tmp / FOLDER
        self.folder.mkdir()
        self.state_dir = self.tmp / "state"
        self.config = write_config(
            self.tmp / "syncd.toml", state_dir=self.state_dir, url=self.url, api_key_env=KEY_ENV,
            folders=[{"name": FOLDER, "path": self.folder, "chat_id": CHAT, "delete": True}],
        )

    def run(self, *args: str) -> Result:
        """A `reconcile --json` pass (or another command) that must not crash nor print the key."""
        result = run_syncd(*(args or ("reconcile", "--json")), "-c", self.config, env={KEY_ENV: KEY})
        assert "Traceback" not in result.stderr, result.stderr
        assert KEY not in result.stdout + result.stderr
        return result

    def sync(self) -> Result:
        result = self.run()
        assert result.code == 0, f"exit {result.code}: {result.stdout}\n{result.stderr}"
        return result

    def converge(self) -> None:
        """A pass that succeeds, then one that plans nothing."""
        self.sync()
        assert self.sync().folder(FOLDER)["actions"] == []

    def last_error(self) -> str:
        status = self.run("status", "--json")
        assert status.doc is not None, status.stderr
        return str(status.doc["folders"][0]["last_error"])

    def audit(self, audited: Audited, scenario: str, remote: Sequence[RemoteFile], *also: Path) -> None:
        counts = audit(
            self.ledger, folder=self.folder, remote=remote, sandbox=self.tmp,
            allowed=[self.state_dir, self.config, *also],
        )
        audited(scenario, counts)


@pytest.fixture
def proxy(server_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(server_url) as running:
        yield running


@pytest.fixture
def scene(tmp_path: Path, proxy: FaultProxy) -> Scene:
    return Scene(tmp_path, proxy.url)


def put(scene: Scene, sdk: BddFileClient, name: str, data: bytes) -> None:
    scene.ledger.put(sdk, CHAT, name, data)


# -- 2. malformed answers ----------------------------------------------------------------------------

ITEM = {
    "id": 1, "filename": "x.txt", "size": 1, "hashcode": "0" * 64, "upload_at": "2024-01-01T00:00:00+00:00",
    "user_id": "u", "status": "ok", "biz": "chat", "biz_params": {"chat_id": CHAT},
}


def listing(total: object = 1, items: object = None, **changes: object) -> Respond:
    """A listing envelope whose one item (or `items`) has `changes`."""
    body = {"total": total, "items": [{**ITEM, **changes}] if items is None else items}
    return envelope({"code": 0, "data": body, "message": None})


#: Answers to `GET /listChatFiles` that do not follow the protocol.
BAD_LISTINGS: dict[str, Respond] = {
    "html page (502)": html_page(502),
    "html page (200)": html_page(200),
    "invalid json": invalid_json(),
    "envelope without data": envelope({"code": 0, "message": None}),
    "envelope without code": envelope({"data": {"total": 0, "items": []}, "message": None}),
    "page without total": envelope({"code": 0, "data": {"items": []}, "message": None}),
    "items not a list": listing(items={"0": ITEM}),
    "total a string": listing(total="1"),
    "size a string": listing(size="1"),
    "id null": listing(id=None),
    "filename a number": listing(filename=7),
    "upload_at not a time": listing(upload_at="yesterday"),
}
#: Malformed answers to the other calls a pass makes: (path, answer).
BAD_ANSWERS: dict[str, tuple[str, Respond]] = {
    "upload: id a string": ("/uploadSimpleFile", envelope({"code": 0, "data": "seven", "message": None})),
    "upload: data null": ("/uploadSimpleFile", envelope({"code": 0, "data": None, "message": None})),
    "download: html page with 200": ("/downloadFile", html_page(200)),
    "delete: invalid json": ("/deleteFile", invalid_json()),
}
ONCE: dict[str, tuple[str, Respond]] = {
    **{name: ("/listChatFiles", fault) for name, fault in BAD_LISTINGS.items()}, **BAD_ANSWERS,
}


def met_once(scene: Scene, sdk: BddFileClient, proxy: FaultProxy, round_: int, path: str, fault: Fault) -> None:
    """One round of changes (an upload, a download, an edit whose old version is deleted) while
    the next answer on `path` is malformed: the retry gets a good one and the pass succeeds."""
    scene.ledger.write(scene.folder, f"local-{round_}.txt", f"local {round_}".encode())
    put(scene, sdk, f"remote-{round_}.txt", f"remote {round_}".encode())
    scene.ledger.write(scene.folder, "edited.txt", f"edited in round {round_}".encode())
    proxy.plan(path, fault)
    scene.sync()
    assert proxy.pending(path) == 0, "the malformed answer was never asked for"


def met_always(scene: Scene, sdk: BddFileClient, proxy: FaultProxy, case: str) -> None:
    """Every listing malformed: the pass fails cleanly, says why, and changes nothing locally."""
    fault = BAD_LISTINGS[case]
    put(scene, sdk, f"while broken: {case}.txt", f"put while the listing was broken: {case}".encode())
    before = local_files(scene.folder)
    proxy.rule = lambda seen: fault if seen.path == "/listChatFiles" else None
    try:
        result = scene.run()
    finally:
        proxy.rule = None
    assert result.code == 1
    report = result.folder(FOLDER)
    why = "HTTP 502 from /listChatFiles" if fault.status >= 500 else "malformed answer from /listChatFiles"
    assert why in report["blocked"], report.raw
    assert report["actions"] == []
    assert local_files(scene.folder) == before
    assert why in scene.last_error()


def malformed_scenario(
    scene: Scene, sdk: BddFileClient, proxy: FaultProxy, once: Sequence[str], always: Sequence[str]
) -> None:
    scene.ledger.write(scene.folder, "edited.txt", b"first version")
    scene.sync()
    for round_, case in enumerate(once):
        met_once(scene, sdk, proxy, round_, *ONCE[case])
    for case in always:
        met_always(scene, sdk, proxy, case)
    scene.converge()


@pytest.mark.adversarial
@pytest.mark.timeout(900)
def test_malformed_answers_full(
    scene: Scene, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited
) -> None:
    malformed_scenario(scene, sdk, proxy, list(ONCE), list(BAD_LISTINGS))
    scene.audit(audited, "malformed answers", remote_files(sdk, CHAT), server_data)


def test_malformed_answers_short(
    scene: Scene, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited
) -> None:
    once = ["html page (502)", "size a string", "download: html page with 200"]
    malformed_scenario(scene, sdk, proxy, once, ["invalid json"])
    scene.audit(audited, "malformed answers (short)", remote_files(sdk, CHAT), server_data)


# -- 3. a lying total ---------------------------------------------------------------------------------

GOOD_FILES = [(f"paged-{i:02d}.txt", f"paged file {i}".encode()) for i in range(10)]


def test_a_total_that_is_too_small_does_not_cut_the_listing(tmp_path: Path) -> None:
    """The fix behind the lying-total scenario: a `total` the walk went past, or one reached with a
    full page, is not trusted. (Only a lie equal to the first page's size cannot be told from the truth.)"""
    for total in (9, 6, 4, 0):
        with (
            HostileServer(GOOD_FILES, page_size=3, total=total) as server,
            BddClient(server.url, "u", retry_attempts=1) as remote,
        ):
            assert [f.filename for f in remote.list_chat(CHAT)] == [name for name, _ in GOOD_FILES], total


def lying_total_scenario(tmp_path: Path, totals: Sequence[int], audited: Audited, scenario: str) -> None:
    """A service with 3-item pages syncs honestly, then claims each of `totals` in turn: every
    pass must plan nothing (a short listing would look like remote deletions, and `delete` is on)."""
    ledger = Ledger()
    for name, data in GOOD_FILES:
        ledger.saw(name, data)
    with HostileServer(GOOD_FILES, page_size=3) as server:
        scene = Scene(tmp_path, server.url, ledger)
        scene.converge()
        for total in totals:
            server.total = total
            assert scene.sync().folder(FOLDER)["actions"] == [], f"total {total}"
        server.total = None
        scene.converge()
    scene.audit(audited, scenario, listed(server))


@pytest.mark.adversarial
def test_lying_total_full(tmp_path: Path, audited: Audited) -> None:
    real = len(GOOD_FILES)
    lying_total_scenario(tmp_path, [real + 50, real + 1, real - 1, 6, 4, 0], audited, "lying total")


def test_lying_total_short(tmp_path: Path, audited: Audited) -> None:
    lying_total_scenario(tmp_path, [len(GOOD_FILES) + 50, 4], audited, "lying total (short)")


# -- 4. the key revoked mid-run ---------------------------------------------------------------------


@dataclass
class Revoked:
    """The proxy's rule: after `after` more requests, every request is refused with a 401."""

    after: int
    answered: int = 0
    refused: int = 0

    def __call__(self, seen: Seen) -> Fault | None:
        if self.answered < self.after:
            self.answered += 1
            return None
        self.refused += 1
        return envelope({"code": 401, "data": None, "message": "invalid api key"}, 401)


def revoke(scene: Scene, sdk: BddFileClient, proxy: FaultProxy, files: int, after: int) -> tuple[Revoked, Result]:
    """Work on both sides, and a pass during which the key is revoked after `after` requests."""
    for i in range(files):
        scene.ledger.write(scene.folder, f"mine-{i:03d}.txt", f"local {i}".encode())
        put(scene, sdk, f"theirs-{i:03d}.txt", f"remote {i}".encode())
    revoked = Revoked(after)
    proxy.rule = revoked
    try:
        return revoked, scene.run()
    finally:
        proxy.rule = None


def revoked_scenario(scene: Scene, sdk: BddFileClient, proxy: FaultProxy, files: int, after: int) -> None:
    """The pass fails saying the remote refused us, never shows the key; restored, a pass converges."""
    _, result = revoke(scene, sdk, proxy, files, after)
    assert result.code == 1
    report = result.folder(FOLDER)
    errors = [report["blocked"] or "", *(a["error"] for a in report["actions"] if a["status"] == "failed")]
    refused = [e for e in errors if "authentication failed for remote http://127.0.0.1" in e]
    assert refused and len(refused) == len([e for e in errors if e]), errors
    assert "authentication failed" in scene.last_error()
    assert {s.headers.get("x-api-key") for s in proxy.seen()} == {KEY}  # sent with every request ...
    assert KEY.encode() not in b"".join(p.read_bytes() for p in scene.state_dir.rglob("*") if p.is_file())
    scene.converge()  # ... and with it accepted again, everything is done


@pytest.mark.adversarial
def test_revoked_key_full(
    scene: Scene, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited
) -> None:
    revoked_scenario(scene, sdk, proxy, files=30, after=8)  # mid-run: uploads done, then refused
    scene.audit(audited, "key revoked mid-run", remote_files(sdk, CHAT), server_data)


def test_revoked_key_short(
    scene: Scene, sdk: BddFileClient, proxy: FaultProxy, server_data: Path, audited: Audited
) -> None:
    revoked_scenario(scene, sdk, proxy, files=4, after=0)  # the pass's listing is refused
    scene.audit(audited, "key revoked (short)", remote_files(sdk, CHAT), server_data)


def test_a_401_pauses_the_remote(scene: Scene, sdk: BddFileClient, proxy: FaultProxy) -> None:
    # 40 jobs, far more than the threads that may be in flight when the first 401 comes: those
    # finish with their own 401; no other request starts.
    threads = DaemonConfig(state_dir=scene.state_dir).small_transfers
    revoked, _ = revoke(scene, sdk, proxy, files=20, after=3)
    assert threads < 40 - 2
    assert revoked.refused <= threads, f"{revoked.refused} requests refused with 401, {threads} threads"


def test_status_forgets_the_401_once_the_key_works(scene: Scene, sdk: BddFileClient, proxy: FaultProxy) -> None:
    revoke(scene, sdk, proxy, files=1, after=1)
    scene.converge()
    assert "authentication failed" not in scene.last_error()
