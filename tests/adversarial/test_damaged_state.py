"""A damaged state database: a clear error, nothing touched, and a rebuild that loses nothing.

The journal is what tells an edit from a deletion; without it syncd must not
guess. Each scenario syncs a two-way folder (with `delete = true`, so a wrong
guess would delete), changes both sides, then damages `syncd.db` one way:

- `header`: the first bytes overwritten (SQLite: "file is not a database");
- `pages`: pages in the middle overwritten with noise ("malformed");
- `truncated`: the file cut in half, as a full disk or a bad copy leaves it.

Then `reconcile`, `status` and `run` each exit 2 with a message that names
the key (`daemon.state_dir`), the file, and the way out, without a traceback,
and neither side changes. `reconcile --rebuild-journal` keeps the damaged file
(renamed, byte for byte) and rebuilds the journal as a first sync: same
content is recorded, anything that differs becomes a keep-both conflict, and
nothing is deleted - a local deletion comes back, an edit survives as a
conflicted copy. A second pass plans nothing, and the audit finds nothing
lost, duplicated, partial or out of place.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bdd_file import BddFileClient

from tests.adversarial.audit import Ledger, audit, local_files, remote_files
from tests.adversarial.conftest import Audited
from tests.support.syncd_cli import Result, reconcile, run_syncd, write_config

pytestmark = pytest.mark.timeout(300)

CHAT = "chat-damaged"
FOLDER = "f"
PAGE = 4096
DAMAGE = ("header", "pages", "truncated")


def damage(db: Path, how: str, rng: random.Random) -> None:
    size = db.stat().st_size
    assert size >= 4 * PAGE, f"{db} is too small ({size} bytes) to damage in the middle"
    with open(db, "r+b") as f:
        if how == "header":
            f.write(rng.randbytes(100))
        elif how == "pages":
            f.seek(PAGE)
            f.write(rng.randbytes(2 * PAGE))
        else:
            f.truncate(size // 2 // PAGE * PAGE)


class Scene:
    def __init__(self, tmp_path: Path, url: str, sdk: BddFileClient, files: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sdk = sdk
        self.files = files
        self.sandbox = tmp_path / "home"
        self.folder = self.sandbox / FOLDER
        self.folder.mkdir(parents=True)
        self.state_dir = tmp_path / "state"
        self.config = write_config(
            tmp_path / "syncd.toml", state_dir=self.state_dir, url=url, workers=4,
            folders=[{"name": FOLDER, "path": self.folder, "chat_id": CHAT, "delete": True, "max_delete": 100}],
        )
        self.ledger = Ledger()
        self.ids: dict[str, int] = {}

    def data(self, name: str) -> bytes:
        return f"{name}: ".encode() + self.rng.randbytes(self.rng.randrange(0, 8192))

    def put(self, name: str, data: bytes) -> None:
        old = self.ids.get(name)
        self.ids[name] = self.ledger.put(self.sdk, CHAT, name, data)
        if old is not None:
            self.sdk.delete(file_id=old)  # another client replacing its file, as syncd does

    def first_sync(self) -> None:
        for i in range(self.files):
            name = f"doc-{i:04d}.txt"
            if i % 2:
                self.put(name, self.data(name))
            else:
                self.ledger.write(self.folder, name, self.data(name))
        result = reconcile(self.config)
        assert result.code == 0, result.stdout[-2000:] + result.stderr[-2000:]
        self.ids = {info.filename: info.id for info in self.sdk.list_chat_files(chat_id=CHAT)}

    def change_both_sides(self) -> None:
        """Edits on each side and both, new files on each side, a local deletion."""
        names = sorted(self.ids)
        for name in names[0:6]:  # edited locally: without a journal, a keep-both conflict
            new = self.data(name) + b" local edit"
            self.ledger.write(self.folder, name, new)
            self.ledger.conflict(name, new)
        for name in names[6:12]:  # edited remotely: without a journal, a conflict too
            self.ledger.conflict(name, (self.folder / name).read_bytes())
            self.put(name, self.data(name) + b" remote edit")
        for name in names[12:14]:  # edited on both sides
            new = self.data(name) + b" local side"
            self.ledger.write(self.folder, name, new)
            self.ledger.conflict(name, new)
            self.put(name, self.data(name) + b" remote side")
        for name in names[14:16]:  # deleted locally: comes back, nothing is deleted remotely
            (self.folder / name).unlink()
        for i in range(3):
            self.ledger.write(self.folder, f"new-local-{i}.txt", self.data("new-local"))
            self.put(f"new-remote-{i}.txt", self.data("new-remote"))

    def snapshot(self) -> tuple[dict[str, bytes], list[tuple[int, str]]]:
        remote = sorted((info.id, info.filename) for info in self.sdk.list_chat_files(chat_id=CHAT))
        return local_files(self.folder), remote


def assert_refused(result: Result, what: str) -> None:
    assert result.code == 2, f"{what}: exit {result.code}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, f"{what}:\n{result.stderr}"
    for needed in ("daemon.state_dir", "damaged", "syncd reconcile --rebuild-journal", "nothing is deleted"):
        assert needed in result.stderr, f"{what}: {needed!r} not in {result.stderr!r}"


def damaged_state_is_refused_then_rebuilt(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, how: str, files: int
) -> None:
    scene = Scene(tmp_path, server_url, sdk, files, seed=DAMAGE.index(how))
    scene.first_sync()
    scene.change_both_sides()
    db = scene.state_dir / "syncd.db"
    damage(db, how, scene.rng)
    damaged_bytes = db.read_bytes()
    before = scene.snapshot()

    assert_refused(reconcile(scene.config), "reconcile")
    assert_refused(run_syncd("status", "-c", scene.config), "status")
    assert_refused(run_syncd("run", "-c", scene.config), "run")
    assert scene.snapshot() == before, "a refused command changed a side"
    assert db.read_bytes() == damaged_bytes, "the damaged database was modified"

    refused = reconcile(scene.config, "--rebuild-journal", "--dry-run")
    assert refused.code == 2 and "--dry-run" in refused.stderr, refused.stderr

    rebuilt = reconcile(scene.config, "--rebuild-journal")
    assert rebuilt.code == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    report = rebuilt.folder(FOLDER)
    assert report["deleted_local"] == report["deleted_remote"] == 0
    assert report["conflicts"] == 6 + 6 + 2  # every name whose sides differ; none lost
    [kept] = [p for p in scene.state_dir.iterdir() if p.name.startswith("syncd.db.set-aside-")]
    assert kept.read_bytes() == damaged_bytes, "the damaged database was not kept as it was"
    assert str(kept) in rebuilt.stderr

    again = reconcile(scene.config)
    assert again.code == 0 and again.folder(FOLDER)["actions"] == [], again.stdout[-2000:]
    audited(
        f"damaged state db ({how}, {files} files)",
        audit(scene.ledger, folder=scene.folder, remote=remote_files(sdk, CHAT), sandbox=tmp_path,
              allowed=[scene.state_dir, scene.config, server_data]),
    )


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_state_db_is_refused_then_rebuilt_losing_nothing(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, how: str
) -> None:
    damaged_state_is_refused_then_rebuilt(tmp_path, server_url, server_data, sdk, audited, how, files=40)


@pytest.mark.adversarial
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_state_db_is_refused_then_rebuilt_losing_nothing_full(
    tmp_path: Path, server_url: str, server_data: Path, sdk: BddFileClient, audited: Audited, how: str
) -> None:
    damaged_state_is_refused_then_rebuilt(tmp_path, server_url, server_data, sdk, audited, how, files=500)
