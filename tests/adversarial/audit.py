"""The whole-state check every adversarial scenario ends with.

A `Ledger` remembers every content each name has legitimately held on either
side during a scenario (written locally, put remotely by another client), the
local versions a keep-both conflict must preserve as conflicted copies, and
the names that must never be written locally (hostile ones). `audit` then
looks at everything there is - the folder, the remote chat, the sandbox the
folder lives in - and counts the four ways a sync tool betrays its users:

- **lost**: a name the ledger says must exist is missing on a side, or a
  conflict's local version survives nowhere;
- **duplicates**: extra remote copies of one name (beyond the first `ok` one);
- **partial**: a file (local or remote) whose bytes no side ever had under
  that name, a remote file stuck in a non-`ok` status, a temp or `.part` file
  left behind, a file with a name nobody wrote;
- **outside**: a file written anywhere in the sandbox but the folder itself and
  the paths the scenario allows (the state dir, the config, the server's data).

Every count must be 0. `details` says what was counted, for the failure message.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bdd_file import BddFileClient

MARKER = ".syncd"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    status: str
    data: bytes | None  # None: not fetched (not `ok`)


@dataclass
class Ledger:
    versions: dict[str, set[bytes]] = field(default_factory=dict)  # name -> every content it may hold
    conflict_locals: dict[str, set[bytes]] = field(default_factory=dict)  # name -> local versions to keep
    never_local: set[str] = field(default_factory=set)  # names that must never be written locally
    remote_only: set[str] = field(default_factory=set)  # legitimate remote names not expected locally
    gone: set[str] = field(default_factory=set)  # names legitimately deleted on both sides

    def saw(self, name: str, data: bytes) -> None:
        self.versions.setdefault(name, set()).add(data)

    def write(self, folder: Path, name: str, data: bytes) -> None:
        """Write `name` into the folder, as a user would, and remember the content."""
        (folder / name).write_bytes(data)
        self.saw(name, data)

    def put(self, sdk: BddFileClient, chat: str, name: str, data: bytes) -> int:
        """Upload `name` into the chat with the published SDK (the other client)."""
        self.saw(name, data)
        return sdk.upload(stream=io.BytesIO(data), filename=name, size=len(data), biz_params={"chat_id": chat})

    def conflict(self, name: str, local_version: bytes) -> None:
        """`local_version` of `name` must survive a keep-both conflict as a conflicted copy."""
        self.conflict_locals.setdefault(name, set()).add(local_version)


@dataclass(frozen=True)
class Counts:
    lost: int = 0
    duplicates: int = 0
    partial: int = 0
    outside: int = 0
    details: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicates or self.partial or self.outside)

    def row(self) -> dict[str, int]:
        return {"lost": self.lost, "duplicates": self.duplicates, "partial": self.partial, "outside": self.outside}

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.lost + other.lost, self.duplicates + other.duplicates, self.partial + other.partial,
            self.outside + other.outside, self.details + other.details,
        )


def conflicted_copy_of(name: str) -> re.Pattern[str]:
    stem, ext = os.path.splitext(name)
    return re.compile(re.escape(stem) + r" \(conflicted copy \d{4}-\d{2}-\d{2} \d{6}(?: \d+)?\)" + re.escape(ext))


def remote_files(sdk: BddFileClient, chat: str) -> list[RemoteFile]:
    """Every file of the chat, with the bytes of the `ok` ones, through the published SDK."""
    out = []
    for info in sdk.list_chat_files(chat_id=chat):
        status = info.status.value
        data = None
        if status == "ok":
            buf = io.BytesIO()
            sdk.download(file_id=info.id, stream=buf)
            data = buf.getvalue()
        out.append(RemoteFile(info.filename, status, data))
    return out


def local_files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


def _owner_of_copy(ledger: Ledger, name: str) -> str | None:
    return next((n for n in ledger.conflict_locals if conflicted_copy_of(n).fullmatch(name)), None)


def _legitimate(ledger: Ledger, name: str, data: bytes) -> bool:
    if data in ledger.versions.get(name, ()):
        return True
    owner = _owner_of_copy(ledger, name)
    return owner is not None and data in ledger.conflict_locals[owner]


def audit(
    ledger: Ledger,
    *,
    folder: Path,
    remote: Sequence[RemoteFile],
    sandbox: Path | None = None,
    allowed: Iterable[Path] = (),
    local_side: bool = True,
    remote_side: bool = True,
) -> Counts:
    """Count lost, duplicated, partial and out-of-place files; see the module docstring.

    `local_side`/`remote_side`: whether names must be present there at the end (an upload
    folder that moves its files away has no local side to check for presence).
    """
    details: list[str] = []
    local = local_files(folder)
    ok: dict[str, list[bytes]] = {}
    lost = duplicates = partial = outside = 0

    for item in remote:
        if item.status != "ok" or item.data is None:
            partial += 1
            details.append(f"remote {item.name!r} left in status {item.status}")
            continue
        ok.setdefault(item.name, []).append(item.data)
        if not _legitimate(ledger, item.name, item.data):
            partial += 1
            details.append(f"remote {item.name!r}: {len(item.data)} bytes no side ever had under that name")
    for name, copies in ok.items():
        if len(copies) > 1:
            duplicates += len(copies) - 1
            details.append(f"remote {name!r}: {len(copies)} copies")

    for name, data in local.items():
        if name in ledger.never_local:
            outside += 1
            details.append(f"hostile name {name!r} written locally")
        elif not _legitimate(ledger, name, data):
            partial += 1
            details.append(f"local {name!r}: {len(data)} bytes no side ever had under that name")

    for name in ledger.versions:
        if name in ledger.gone or name in ledger.never_local:
            continue
        if local_side and name not in ledger.remote_only and name not in local:
            lost += 1
            details.append(f"{name!r} missing locally")
        if remote_side and name not in ok:
            lost += 1
            details.append(f"{name!r} missing remotely")
    for name, versions in ledger.conflict_locals.items():
        for version in versions:
            kept = [n for n, d in local.items() if d == version] + [n for n, ds in ok.items() if version in ds]
            if not kept:
                lost += 1
                details.append(f"{name!r}: the local version ({len(version)} bytes) of a conflict survives nowhere")

    tmp = folder / MARKER / "tmp"
    left = [p for p in tmp.iterdir()] if tmp.is_dir() else []
    roots = [folder, *allowed] + ([sandbox] if sandbox else [])
    left += [p for root in roots if root.exists() for p in root.rglob("*.part")]
    for path in sorted(set(left)):
        partial += 1
        details.append(f"temp file left: {path}")

    if sandbox is not None:
        keep = [folder.resolve(), *(p.resolve() for p in allowed)]
        for path in sandbox.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                continue
            real = path.resolve() if not path.is_symlink() else path.parent.resolve() / path.name
            if not any(real == k or k in real.parents for k in keep):
                outside += 1
                details.append(f"written outside the folder: {path}")
    return Counts(lost, duplicates, partial, outside, tuple(details))
