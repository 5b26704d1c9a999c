"""Queue payloads across releases: every format version ever written still reads, as the work
it asked for in today's words; today's format (version 4) round-trips losslessly.

The version 1-3 texts are as those releases wrote them (against a BDD chat: integer ids,
hashcodes, `upload_at`, statuses); they stay as they are, only what they read as follows the
model. Version 1 is a row of the release-0.1.0 upgrade fixture.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from syncd.core.model import Action, ActionKind, BaseEntry, Floor, LocalFile
from syncd.core.paths import RelPath
from syncd.remote.base import RemoteFile
from syncd.state import jobcodec
from syncd.state.jobcodec import PayloadError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NFC, NFD = "caf\u00e9.txt", "cafe\u0301.txt"


def sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


# A queued upload of an edit, as release 0.1.0 wrote it (no "v": version 1).
V1_UPLOAD = (
    '{"kind": "upload", "name": "notes.txt", "local": {"name": "notes.txt", "size": 38,'
    ' "mtime_ns": 1735732830123456789,'
    ' "sha256": "6abafc28a2a8945084dc2e0281c69339c959c0ed692e5d38853a7f4f0eba5e77"},'
    ' "remote": {"id": 5, "filename": "notes.txt", "size": 9,'
    ' "hashcode": "0b113fa13e110fe7b7c8bf9dbbac2db34cdb75731c7aeed0c3a0bccf952ebfb1",'
    ' "upload_at": "2026-11-27T10:53:26.317138+00:00", "status": "ok"},'
    ' "base": {"name": "notes.txt", "local_size": 9, "local_mtime_ns": 1735732800123456789,'
    ' "local_sha256": "0b113fa13e110fe7b7c8bf9dbbac2db34cdb75731c7aeed0c3a0bccf952ebfb1", "remote_id": 5,'
    ' "remote_size": 9, "remote_hashcode": "0b113fa13e110fe7b7c8bf9dbbac2db34cdb75731c7aeed0c3a0bccf952ebfb1",'
    ' "remote_upload_at": "2026-11-27T10:53:26.317764+00:00", "dropped": false},'
    ' "supersedes": 5, "older_ids": [], "winner": null, "reason": null}'
)

# A race (version 2: spellings, the floor, racing versions, duplicates); the racing version's
# and the journal's hashcodes are not sha256s.
V2_RACE = (
    '{"v": 2, "kind": "race", "name": "caf\u00e9.txt", "local": {"name": "caf\u00e9.txt", "size": 2,'
    ' "mtime_ns": 5, "sha256": "c8361f9b468e68c86da024270e0949ce139cb704b8d7cce586681b99f3a7ea56",'
    ' "spelling": "cafe\u0301.txt"}, "remote": {"id": 12, "filename": "caf\u00e9.txt", "size": 2,'
    ' "hashcode": "abdbc2b5cc2c7a519b72bf7a164c58ebf892ab0c2df6468213705cc2f0da8561",'
    ' "upload_at": "2025-01-01T00:00:11+00:00", "status": "ok"}, "base": {"name": "caf\u00e9.txt",'
    ' "local_size": 2, "local_mtime_ns": 5,'
    ' "local_sha256": "c8361f9b468e68c86da024270e0949ce139cb704b8d7cce586681b99f3a7ea56", "remote_id": 11,'
    ' "remote_size": 2, "remote_hashcode": "MD5:ABC", "remote_upload_at": "2025-01-01T00:00:10+00:00",'
    ' "dropped": false, "local_name": "cafe\u0301.txt", "remote_name": null,'
    ' "remote_floor": {"upload_at": "2025-01-01T00:00:00+00:00", "id": 3}}, "supersedes": null,'
    ' "older_ids": [], "winner": null, "reason": null, "racing": [{"id": 11, "filename": "caf\u00e9.txt",'
    ' "size": 2, "hashcode": "md5:abc", "upload_at": "2025-01-01T00:00:10+00:00", "status": "ok"}],'
    ' "duplicates": [9, 10]}'
)

# A conflict won by local (version 3): supersedes and older versions as ids, an upper-case
# sha256 hashcode, the remote's own spelling of the name.
V3_CONFLICT = (
    '{"v": 3, "kind": "conflict", "name": "x.txt", "local": {"name": "x.txt", "size": 4, "mtime_ns": 7,'
    ' "sha256": "3fd30542fe3f61b14bd4a4b2dc0b6fb30fa6f63ebce52dd1778aaa8c4dc02cff", "spelling": null},'
    ' "remote": {"id": 8, "filename": "X.txt", "size": 5,'
    ' "hashcode": "5EB2DA9C26B65531549C8863FA023F9B48C1D3F0E17E01D7C4978876C724B21F",'
    ' "upload_at": "2025-01-01T00:00:00+00:00", "status": "ok"}, "base": {"name": "x.txt", "local_size": 3,'
    ' "local_mtime_ns": 1, "local_sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",'
    ' "remote_id": 6, "remote_size": 3,'
    ' "remote_hashcode": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",'
    ' "remote_upload_at": "2024-12-31T23:00:00+00:00", "dropped": false, "local_name": null,'
    ' "remote_name": "X.txt", "remote_floor": null}, "supersedes": 8, "older_ids": [4, 6], "winner": "local",'
    ' "reason": null, "racing": [], "duplicates": [], "renamed_from": null}'
)

# A download (version 4, this release): versions that are not numbers, a tree path, an mtime,
# a journal row without a sha256 and with both spellings and a floor.
V4_DOWNLOAD = (
    '{"v": 4, "kind": "download", "name": "dir/caf\u00e9.txt", "local": null, "remote": {"path":'
    ' "dir/caf\u00e9.txt", "version": "k-12", "size": 2,'
    ' "sha256": "abdbc2b5cc2c7a519b72bf7a164c58ebf892ab0c2df6468213705cc2f0da8561",'
    ' "mtime": "2024-12-31T23:57:00+00:00", "written_at": "2025-01-01T00:00:11+00:00", "seq": 0},'
    ' "base": {"name": "dir/caf\u00e9.txt", "local_size": 1, "local_mtime_ns": 2,'
    ' "local_sha256": "559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd",'
    ' "remote_version": "k-3", "remote_size": 1, "remote_sha256": null,'
    ' "remote_written_at": "2025-01-01T00:00:00+00:00", "dropped": false, "local_name": "dir/cafe\u0301.txt",'
    ' "remote_name": "dir/Caf\u00e9.txt", "remote_floor": {"written_at": "2024-12-31T23:00:00+00:00", "seq": 7}},'
    ' "supersedes": null, "older": [], "winner": null, "reason": null, "racing": [], "duplicates": ["k-1"],'
    ' "renamed_from": null}'
)


def test_a_version_1_payload_reads_ids_as_versions() -> None:
    synced = "0b113fa13e110fe7b7c8bf9dbbac2db34cdb75731c7aeed0c3a0bccf952ebfb1"
    assert jobcodec.loads(V1_UPLOAD) == Action(
        ActionKind.UPLOAD,
        "notes.txt",
        local=LocalFile(
            RelPath("notes.txt"), 38, 1735732830123456789,
            "6abafc28a2a8945084dc2e0281c69339c959c0ed692e5d38853a7f4f0eba5e77",
        ),
        remote=RemoteFile(
            "notes.txt", "5", 9, synced, written_at=datetime(2026, 11, 27, 10, 53, 26, 317138, tzinfo=UTC), seq=5
        ),
        base=BaseEntry(
            RelPath("notes.txt"), 9, 1735732800123456789, synced, "5", 9, synced,
            datetime(2026, 11, 27, 10, 53, 26, 317764, tzinfo=UTC),
        ),
        supersedes="5",
    )


def test_a_version_2_payload_reads_hashcodes_as_the_sha256_they_prove() -> None:
    action = jobcodec.loads(V2_RACE)
    assert action == Action(
        ActionKind.RACE,
        NFC,
        local=LocalFile(RelPath(NFC), 2, 5, sha("A2"), NFD),
        remote=RemoteFile(NFC, "12", 2, sha("B2"), written_at=T0 + timedelta(seconds=11), seq=12),
        base=BaseEntry(
            RelPath(NFC), 2, 5, sha("A2"), "11", 2, None, T0 + timedelta(seconds=10),
            local_name=NFD, remote_floor=Floor(T0, 3),
        ),
        racing=(RemoteFile(NFC, "11", 2, None, written_at=T0 + timedelta(seconds=10), seq=11),),
        duplicates=("9", "10"),
    )
    assert action.base is not None and action.base.floor == Floor(T0, 3)


def test_a_version_3_payload_reads_supersedes_and_older_as_versions() -> None:
    assert jobcodec.loads(V3_CONFLICT) == Action(
        ActionKind.CONFLICT,
        "x.txt",
        local=LocalFile(RelPath("x.txt"), 4, 7, sha("mine")),
        remote=RemoteFile("X.txt", "8", 5, sha("yours"), written_at=T0, seq=8),
        base=BaseEntry(
            RelPath("x.txt"), 3, 1, sha("abc"), "6", 3, sha("abc"), T0 - timedelta(hours=1), remote_name="X.txt"
        ),
        supersedes="8",
        older=("4", "6"),
        winner="local",
    )


def test_a_version_4_payload_reads_and_is_written_back_alike() -> None:
    action = jobcodec.loads(V4_DOWNLOAD)
    assert action == Action(
        ActionKind.DOWNLOAD,
        "dir/caf\u00e9.txt",
        remote=RemoteFile(
            "dir/caf\u00e9.txt", "k-12", 2, sha("B2"), mtime=T0 - timedelta(minutes=3),
            written_at=T0 + timedelta(seconds=11), seq=0,
        ),
        base=BaseEntry(
            RelPath("dir/caf\u00e9.txt"), 1, 2, sha("A"), "k-3", 1, None, T0, local_name="dir/cafe\u0301.txt",
            remote_name="dir/Caf\u00e9.txt", remote_floor=Floor(T0 - timedelta(hours=1), 7),
        ),
        duplicates=("k-1",),
    )
    assert jobcodec.dumps(action) == V4_DOWNLOAD


def version_4_actions() -> list[Action]:
    when = T0 + timedelta(seconds=30)
    local = LocalFile(RelPath(NFC), 3, 1_700_000_000_123_456_789, sha("abc"), NFD)
    current = RemoteFile(NFC, "41", 3, sha("abc"), mtime=T0, written_at=when, seq=41)
    racing = RemoteFile(NFD, "obj/x?v=2", 4, None, written_at=when - timedelta(seconds=1), seq=0)
    synced = BaseEntry.synced(RelPath(NFC), local, current, floor=Floor(T0, 40))
    remote_only = BaseEntry(RelPath("old.txt"), None, None, None, "7", 5, None, T0, dropped=True)
    return [
        Action(ActionKind.UPLOAD, NFC, local, current, synced, supersedes="41", duplicates=("39", "40")),
        Action(ActionKind.RACE, NFC, local, current, synced, racing=(racing,)),
        Action(ActionKind.DELETE_REMOTE, "old.txt", None, remote_only.recorded_remote(), remote_only,
               older=("5", "6")),
        Action(ActionKind.COMPARE, NFC, local, racing, None, supersedes=racing.version, winner="local"),
        Action(ActionKind.RENAME, "new.txt", LocalFile(RelPath("new.txt"), 3, 9, sha("abc")),
               renamed_from=synced, older=("2",)),
        Action(ActionKind.FAIL, "a\x01", None, current, reason="unsafe remote name: name contains a control character"),
        Action(ActionKind.FORGET, "gone.txt", base=remote_only),
    ]


@pytest.mark.parametrize("action", version_4_actions(), ids=lambda a: str(a.kind))
def test_a_version_4_payload_round_trips(action: Action) -> None:
    text = jobcodec.dumps(action)
    assert json.loads(text)["v"] == jobcodec.VERSION == 4
    assert jobcodec.loads(text) == action
    assert jobcodec.dumps(jobcodec.loads(text)) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (V4_DOWNLOAD.replace('"v": 4', '"v": 5'), "format version 5; this syncd reads 1 to 4"),
        (V4_DOWNLOAD.replace('"v": 4', '"v": 0'), "format version 0"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "not an action"),
        (V3_CONFLICT.replace('"older_ids"', '"older_idz"'), "cannot be read: KeyError"),
        (V4_DOWNLOAD.replace('"older"', '"older_ids"'), "cannot be read: KeyError"),  # v4 has no older_ids
    ],
)
def test_a_payload_this_release_cannot_read_is_a_payload_error(text: str, why: str) -> None:
    with pytest.raises(PayloadError, match=why.replace("(", r"\(")):
        jobcodec.loads(text)
