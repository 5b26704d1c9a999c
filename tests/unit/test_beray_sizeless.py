"""A listing that gives no size: the file's own bytes say what it holds, read once per mtime."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO

from syncd.remote.beray.remote import BeRayRemote
from syncd.remote.beray.settings import Place


class SizelessService:
    """A BeRay client whose listings leave `size` out."""

    def __init__(self, files: dict[str, bytes], mtime: float | None) -> None:
        self.files, self.mtime, self.reads = files, mtime, 0

    def tree(self, task_id: int, path: str) -> Any:
        return [{"name": name.rsplit("/", 1)[-1], "path": name, "type": "file",
                 **({"modified_at": self.mtime} if self.mtime is not None else {})}
                for name in self.files if name.rsplit("/", 1)[0] == path]

    def read(self, task_id: int, path: str, out: BinaryIO, *, limit: int | None, progress: Any) -> int:
        self.reads += 1
        out.seek(0)
        return out.write(self.files[path])


def test_sizes_and_versions_come_from_the_bytes_and_are_read_once_per_mtime() -> None:
    service = SizelessService({"out/a.txt": b"alpha", "out/b.txt": b"bravo!"}, mtime=1_700_000_000.0)
    remote = BeRayRemote(service)  # type: ignore[arg-type]
    place = Place(1, "out").dumps()
    listed = {f.path: f for f in remote.list(place)}
    assert {p: (f.size, f.version) for p, f in listed.items()} == {
        "a.txt": (5, "sha256:" + hashlib.sha256(b"alpha").hexdigest()),
        "b.txt": (6, "sha256:" + hashlib.sha256(b"bravo!").hexdigest()),
    }
    remote.list(place)
    assert service.reads == 2  # the second listing reused what the first measured
    service.files["out/a.txt"] = b"alpha, edited"
    service.mtime = 1_700_000_100.0
    assert {f.path: f.size for f in remote.list(place)}["a.txt"] == 13


def test_without_an_mtime_every_listing_reads_the_bytes_again() -> None:
    service = SizelessService({"out/a.txt": b"alpha"}, mtime=None)
    remote = BeRayRemote(service)  # type: ignore[arg-type]
    place = Place(1, "out").dumps()
    first = remote.list(place)
    service.files["out/a.txt"] = b"changed, same mtime (none)"
    second = remote.list(place)
    assert first[0].version != second[0].version and service.reads == 2
