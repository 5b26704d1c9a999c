"""Upload-only folders on a ragent-oss gateway, through the real `syncd` commands.

The gateway is the stand-in (`tests/support/ragent_gateway.py`, held to the published client by
`tests/contract/test_ragent_standin.py`), over real HTTP; syncd runs as a subprocess, its key in
the environment. Every scenario ends by comparing the gateway's objects with what should be
there: the content of each, and no orphan or duplicate beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import DaemonProcess, wait_for
from tests.support.ragent_gateway import RagentGateway
from tests.support.syncd_cli import Result, run_syncd

pytestmark = pytest.mark.timeout(120)

KEY_ENV = "SYNCD_TEST_GATEWAY_KEY"
KEY = "gateway-key-3f9c1e"
CATEGORY = "team"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RagentGateway]:
    with RagentGateway(KEY, root=tmp_path / "gateway") as gw:
        yield gw


def write_config(tmp_path: Path, gw: RagentGateway, *, daemon: Mapping[str, object] | None = None,
                 **folder: object) -> Path:
    options = {"mode": "upload", "category": CATEGORY, **folder}
    lines = [
        "[daemon]", f"state_dir = {json.dumps(str(tmp_path / 'state'))}", "settle = 0.0", 'log_format = "json"',
        *(f"{k} = {json.dumps(v)}" for k, v in (daemon or {}).items()),
        "", "[remotes.gw]", 'kind = "ragent-oss"', f"url = {json.dumps(gw.url)}", f'api_key_env = "{KEY_ENV}"',
        "timeout = 10",
        "", "[[folders]]", 'name = "out"', f"path = {json.dumps(str(tmp_path / 'out'))}", 'remote = "gw"',
        *(f"{k} = {json.dumps(v)}" for k, v in options.items() if v is not None),
    ]
    path = tmp_path / "syncd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def syncd(*args: str | Path) -> Result:
    return run_syncd(*args, env={**os.environ, KEY_ENV: KEY})


def reconcile(config: Path) -> Result:
    return syncd("reconcile", "-c", config, "--json")


def write(root: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def delivered(gw: RagentGateway) -> dict[str, list[str]]:
    """path (the key's part after category and id) -> sha256 of each object holding it."""
    found: dict[str, list[str]] = {}
    for key, (_, digest) in sorted(gw.objects().items()):
        category, _, path = key.split("/", 2)
        assert category == CATEGORY
        found.setdefault(path, []).append(digest)
    return found


def journal(tmp_path: Path) -> dict[str, str]:
    """name -> object key, as the journal recorded it."""
    with sqlite3.connect(tmp_path / "state" / "syncd.db") as conn:
        rows = conn.execute("SELECT name, remote_version FROM journal WHERE folder = 'out'").fetchall()
    conn.close()
    return dict(rows)


def test_a_recursive_drop_in_is_delivered_moved_aside_and_never_replaced(
    tmp_path: Path, gateway: RagentGateway
) -> None:
    out = tmp_path / "out"
    files = {"a.txt": b"first a", "sub/b.txt": b"bee", "sub/deeper/c.bin": os.urandom(3000), "résumé.pdf": b"%PDF"}
    write(out, files)
    config = write_config(tmp_path, gateway, recursive=True, after_upload="move:sent")
    first = reconcile(config)
    assert first.code == 0, first.stderr
    assert delivered(gateway) == {name: [sha(data)] for name, data in files.items()}
    assert {p.relative_to(out / "sent").as_posix() for p in (out / "sent").rglob("*") if p.is_file()} == set(files)
    assert not (out / "a.txt").exists() and not (out / "sub" / "b.txt").exists()
    pdf = next(key for key in gateway.objects() if key.endswith("résumé.pdf"))
    stored = gateway.stored(pdf)
    assert stored is not None and stored.content_type == "application/pdf"
    # Dropped again under the same name: a new delivery beside the first, never in its place.
    write(out, {"a.txt": b"second a"})
    second = reconcile(config)
    assert second.code == 0, second.stderr
    assert sorted(delivered(gateway)["a.txt"]) == sorted([sha(b"first a"), sha(b"second a")])
    assert len(gateway.seen("delete")) == 0
    assert KEY not in first.stdout + first.stderr + second.stdout + second.stderr


def test_a_backup_follows_edits_renames_and_deletions_leaving_no_old_object(
    tmp_path: Path, gateway: RagentGateway
) -> None:
    out = tmp_path / "out"
    write(out, {"x.txt": b"x one", "y.txt": b"why", "d/z.txt": b"zed"})
    config = write_config(tmp_path, gateway, recursive=True, delete=True, after_upload="keep")
    assert reconcile(config).code == 0
    assert delivered(gateway) == {"x.txt": [sha(b"x one")], "y.txt": [sha(b"why")], "d/z.txt": [sha(b"zed")]}
    before = journal(tmp_path)

    write(out, {"x.txt": b"x two, longer"})
    (out / "y.txt").rename(out / "y2.txt")
    (out / "d" / "z.txt").unlink()
    result = reconcile(config)
    assert result.code == 0, result.stderr
    actions = result.folder("out").actions
    assert actions["y2.txt"]["renamed_from"] == "y.txt"
    assert actions["d/z.txt"]["action"] == "delete_remote"
    assert delivered(gateway) == {"x.txt": [sha(b"x two, longer")], "y2.txt": [sha(b"why")]}
    after = journal(tmp_path)
    assert set(after) == {"x.txt", "y2.txt"} and after["x.txt"] != before["x.txt"]
    assert set(after.values()) == set(gateway.objects())  # the journal is the listing
    assert not (out / "d").exists() or not any((out / "d").iterdir())

    # Nothing changed: a pass sends nothing at all.
    requests = len(gateway.seen())
    assert reconcile(config).code == 0
    assert len(gateway.seen()) == requests


def test_a_revoked_key_pauses_the_remote_and_says_why(tmp_path: Path, gateway: RagentGateway) -> None:
    out = tmp_path / "out"
    write(out, {"a.txt": b"a"})
    config = write_config(tmp_path, gateway)
    gateway.api_key = "another key"
    refused = reconcile(config)
    assert refused.code == 1
    text = refused.stdout + refused.stderr
    assert "authentication failed" in text and KEY not in text
    status = syncd("status", "-c", config, "--json")
    assert status.doc is not None
    assert "authentication failed" in (status.doc["folders"][0]["last_error"] or "")
    assert gateway.objects() == {}
    gateway.api_key = KEY
    assert reconcile(config).code == 0
    assert delivered(gateway) == {"a.txt": [sha(b"a")]}
    state_bytes = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert KEY.encode() not in state_bytes


def test_faults_on_the_put_converge_with_no_duplicate(tmp_path: Path, gateway: RagentGateway) -> None:
    out = tmp_path / "out"
    files = {f"f{i}.txt": f"file {i}".encode() for i in range(4)}
    write(out, files)
    config = write_config(tmp_path, gateway, daemon={"workers": 1, "small_transfers": 1})
    gateway.fail_next("PUT", status=503, headers={"Retry-After": "0"})
    gateway.fail_next("PUT", reset=True)
    gateway.fail_next("PUT", status=500, after_store=True)  # stored, then the answer is lost
    gateway.fail_next("presign", status=502)
    result = reconcile(config)
    assert result.code == 0, result.stderr
    assert delivered(gateway) == {name: [sha(data)] for name, data in files.items()}
    assert gateway.pending_faults("PUT") == 0
    assert len(gateway.seen("delete")) == 0  # the ambiguous PUT was retried onto its own key


def test_an_expired_upload_url_is_presigned_again_and_its_key_cleaned_up(
    tmp_path: Path, gateway: RagentGateway
) -> None:
    out = tmp_path / "out"
    write(out, {"late.txt": b"late bytes"})
    config = write_config(tmp_path, gateway)
    # The first PUT lands but its answer is lost; by the retry the URL has expired.
    gateway.fail_next("PUT", status=500, after_store=True)
    gateway.fail_next("PUT", status=403, body=b'{"error": "Request has expired"}')
    result = reconcile(config)
    assert result.code == 0, result.stderr
    assert len(gateway.seen("presign")) == 2
    assert delivered(gateway) == {"late.txt": [sha(b"late bytes")]}  # the first key was deleted
    assert len(gateway.seen("delete")) == 1
    assert set(journal(tmp_path).values()) == set(gateway.objects())


def test_link_downloads_the_synced_bytes_without_headers_until_it_expires(
    tmp_path: Path, gateway: RagentGateway
) -> None:
    out = tmp_path / "out"
    data = os.urandom(5000)
    write(out, {"docs/report.bin": data})
    config = write_config(tmp_path, gateway, recursive=True)
    assert reconcile(config).code == 0
    made = syncd("link", "-c", config, out / "docs" / "report.bin", "--expires", "60")
    assert made.code == 0, made.stderr
    url = made.stdout.strip()
    with httpx.Client() as bare:  # no key, no headers of ours
        assert bare.get(url).content == data
        gateway.advance(120)
        assert bare.get(url).status_code == 403
    assert KEY not in url
    # Without --expires the gateway's own default (a day) applies.
    default = syncd("link", "-c", config, out / "docs" / "report.bin")
    assert default.code == 0 and httpx.get(default.stdout.strip()).content == data
    # A path syncd has not synced, or outside every folder: exit 2, saying so.
    (out / "new.txt").write_bytes(b"not yet")
    for path in (out / "new.txt", tmp_path / "elsewhere.txt"):
        refused = syncd("link", "-c", config, path)
        assert refused.code == 2 and "syncd:" in refused.stderr
    # An object deleted on the gateway behind syncd's back: said, not pretended.
    gateway.fail_next("GET", status=404, body=b'{"error": "not found"}')
    gone = syncd("link", "-c", config, out / "docs" / "report.bin")
    assert gone.code == 1 and "not on the gateway" in gone.stderr


def test_check_proves_the_key_without_writing_anything(tmp_path: Path, gateway: RagentGateway) -> None:
    config = write_config(tmp_path, gateway)
    (tmp_path / "out").mkdir()
    checked = syncd("check", "-c", config)
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "out: remote gw ok (reachable, key accepted)" in checked.stdout
    gateway.api_key = "rotated"
    refused = syncd("check", "-c", config)
    assert refused.code == 1 and "refused us" in refused.stdout
    assert gateway.objects() == {} and not gateway.seen("presign") and not gateway.seen("PUT")


@pytest.mark.parametrize(
    ("options", "key", "why"),
    [
        ({"mode": "two-way"}, "folders[0].mode", "upload"),
        ({"category": None}, "folders[0].category", "missing"),
    ],
    ids=["two-way", "no-category"],
)
def test_config_refusals_name_the_key(
    tmp_path: Path, gateway: RagentGateway, options: dict[str, object], key: str, why: str
) -> None:
    config = write_config(tmp_path, gateway, **options)
    refused = syncd("check", "-c", config)
    assert refused.code == 2
    assert key in refused.stderr and why in refused.stderr


def test_the_daemon_delivers_a_drop_in(tmp_path: Path, gateway: RagentGateway) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(tmp_path, gateway, after_upload="move:sent",
                          daemon={"poll_interval": 30, "rescan_interval": 3600})
    daemon = DaemonProcess(config, env={KEY_ENV: KEY})
    try:
        daemon.wait_ready()
        (out / "drop.txt").write_bytes(b"dropped while running")
        wait_for(lambda: (out / "sent" / "drop.txt").exists(), what="the drop delivered and moved aside")
        assert delivered(gateway) == {"drop.txt": [sha(b"dropped while running")]}
    finally:
        assert daemon.stop() == 0
