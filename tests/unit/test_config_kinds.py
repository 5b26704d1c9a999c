"""Remote kinds parse their own keys: a kind registered here, and nowhere in the config code,
gets its keys, its place, `recursive` and its modes checked like the shipped ones."""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.app import RemoteSet
from syncd.config import Config, ConfigError, Mode, RemoteConfig, load_config
from syncd.config.reader import TableReader
from syncd.remote import kinds
from syncd.remote.base import Capability, Remote
from syncd.remote.kind import OpenContext
from syncd.remote.memory import MemoryRemote

SECRET = "s3cr3t-value-never-shown"


@dataclass(frozen=True)
class SandboxSettings:
    endpoint: str
    token_env: str | None


@dataclass(frozen=True)
class Service:
    """Something a kind starts once for all its remotes."""

    started: int


class SandboxKind:
    """A tree-shaped, upload-only kind, as a future package would declare it."""

    name = "sandbox"
    capabilities = Capability.LIST | Capability.TREE | Capability.SERVER_KEYS
    modes: tuple[Mode, ...] = ("upload",)
    remote_keys = ("endpoint", "token_env")
    place_keys = ("sandbox_id", "remote_path")

    def __init__(self) -> None:
        self.seen: list[set[str]] = []
        self.services_started = 0
        self.contexts: list[OpenContext] = []

    def parse_remote(self, reader: TableReader) -> SandboxSettings:
        self.seen.append(set(reader.table))
        return SandboxSettings(reader.text("endpoint"), reader.env_name("token_env"))

    def parse_place(self, reader: TableReader) -> str:
        self.seen.append(set(reader.table))
        return f"{reader.text('sandbox_id')}:{reader.string('remote_path', '/')}"

    def describe_place(self, place: str) -> str:
        return f"sandbox {place}"

    def start(self, context: OpenContext) -> Service:
        self.services_started += 1
        return Service(self.services_started)

    def open(self, remote: RemoteConfig, context: OpenContext) -> Remote:
        self.contexts.append(context)
        context.shared(self.start)
        return MemoryRemote(self.capabilities, name=remote.name)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxKind]:
    kind = SandboxKind()
    monkeypatch.setattr(kinds, "KINDS", types.MappingProxyType({**kinds.KINDS, "sandbox": kind}))
    yield kind


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


REMOTES = """\
[remotes.work]
kind = "bdd"
url = "https://files.example.com"
user_id = "u"

[remotes.box]
kind = "sandbox"
endpoint = "https://sandbox.example.com"
token_env = "BOX_TOKEN"
"""

BOX_FOLDER = """\
[[folders]]
path = "box"
remote = "box"
mode = "upload"
sandbox_id = "sb-1"
remote_path = "/home/user/project"
"""


def load(tmp_path: Path, text: str, env: dict[str, str]) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env)


def error_of(tmp_path: Path, text: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    message = str(info.value)
    prefix = f"{tmp_path / 'config.toml'}: "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


def test_a_registered_kind_parses_its_keys_place_and_recursive(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    cfg = load(tmp_path, REMOTES + BOX_FOLDER + "recursive = true\n", env)
    box = cfg.remotes["box"]
    assert box == RemoteConfig(
        name="box", kind="sandbox", settings=SandboxSettings("https://sandbox.example.com", "BOX_TOKEN")
    )
    [folder] = cfg.folders
    assert (folder.remote, folder.place, folder.mode, folder.recursive) == (
        "box", "sb-1:/home/user/project", "upload", True,
    )
    # Each parser saw its own keys and nothing else.
    assert sandbox.seen == [{"endpoint", "token_env"}, {"sandbox_id", "remote_path"}]


def test_the_kind_choices_come_from_the_registry(tmp_path: Path, env: dict[str, str], sandbox: SandboxKind) -> None:
    message = error_of(tmp_path, "[remotes.x]\nkind = 'ftp'\n", env)
    assert message == "remotes.x.kind: must be one of embedded, bdd, ragent-oss, beray, agentrun, sandbox (got 'ftp')"


def test_a_place_key_of_another_kind_is_refused_naming_it(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    on_bdd = REMOTES + '[[folders]]\npath = "a"\nremote = "work"\nchat_id = "c"\nsandbox_id = "sb-1"\n'
    message = error_of(tmp_path, on_bdd, env)
    assert message.startswith("folders[0].sandbox_id: does not belong to remote 'work' (kind bdd)")
    assert "a bdd folder takes chat_id" in message
    on_box = REMOTES + BOX_FOLDER + 'chat_id = "c"\n'
    message = error_of(tmp_path, on_box, env)
    assert message.startswith("folders[0].chat_id: does not belong to remote 'box' (kind sandbox)")
    assert "place key of kind embedded, bdd" in message


def test_a_remote_key_of_another_kind_is_refused_naming_it(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    message = error_of(tmp_path, REMOTES.replace('user_id = "u"', 'user_id = "u"\nendpoint = "x"'), env)
    assert message.startswith("remotes.work.endpoint: does not belong to kind bdd (it is a key of kind sandbox)")
    message = error_of(tmp_path, REMOTES + 'url = "https://h"\n', env)
    assert message.startswith(
        "remotes.box.url: does not belong to kind sandbox"
        " (it is a key of kind embedded, bdd, ragent-oss, beray, agentrun)"
    )


def test_a_typo_is_an_unknown_key_whichever_kind_it_resembles(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    message = error_of(tmp_path, REMOTES + BOX_FOLDER + 'sandbox_idd = "x"\n', env)
    assert message == "folders[0].sandbox_idd: unknown key (did you mean 'sandbox_id'?)"
    message = error_of(tmp_path, REMOTES + 'endpont = "x"\n', env)
    assert message == "remotes.box.endpont: unknown key (did you mean 'endpoint'?)"


def test_a_mode_the_kind_cannot_do_is_refused_naming_the_mode(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    message = error_of(tmp_path, REMOTES + BOX_FOLDER.replace('mode = "upload"', 'mode = "two-way"'), env)
    assert message.startswith("folders[0].mode: remote 'box' (kind sandbox) cannot sync 'two-way' folders")
    # Without the key the default mode is checked all the same.
    message = error_of(tmp_path, REMOTES + BOX_FOLDER.replace('mode = "upload"\n', ""), env)
    assert message.startswith("folders[0].mode: ")


def test_the_kinds_place_parser_names_its_own_keys(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    message = error_of(tmp_path, REMOTES + BOX_FOLDER.replace('sandbox_id = "sb-1"\n', ""), env)
    assert message == "folders[0].sandbox_id: missing"
    message = error_of(tmp_path, REMOTES + BOX_FOLDER.replace('"sb-1"', "7"), env)
    assert message == 'folders[0].sandbox_id: must be a string (got integer 7); quote it: "7"'


def test_a_kinds_secret_is_read_through_the_generic_helper(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    box = load(tmp_path, REMOTES, env).remotes["box"]
    assert isinstance(box.settings, SandboxSettings)
    assert box.secret("token_env", box.settings.token_env, {"BOX_TOKEN": SECRET}) == SECRET
    assert box.secret("token_env", None, {}) is None
    with pytest.raises(ConfigError) as info:
        box.secret("token_env", box.settings.token_env, {"OTHER": SECRET})
    assert "config.toml: remotes.box.token_env: environment variable BOX_TOKEN is not set" in str(info.value)
    assert SECRET not in str(info.value)
    message = error_of(tmp_path, REMOTES.replace('"BOX_TOKEN"', f'"tok-{SECRET}"'), env)
    assert message.startswith("remotes.box.token_env: must be the name of an environment variable")
    assert SECRET not in message


def test_the_wiring_opens_a_registered_kind_and_shares_its_services(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxKind
) -> None:
    second = REMOTES + "\n[remotes.box2]\nkind = 'sandbox'\nendpoint = 'https://other.example.com'\n"
    folders = BOX_FOLDER + BOX_FOLDER.replace('"box"', '"box2"')
    cfg = load(tmp_path, second + folders, env)
    with ExitStack() as stack:
        remote_set = RemoteSet(tmp_path / "state", stack, probe=True)
        remotes = remote_set.build(cfg)
        assert sorted(remotes) == ["box", "box2"]  # "work" serves no folder: not opened
        assert all(isinstance(r, MemoryRemote) for r in remotes.values())
        assert sandbox.services_started == 1
        assert [(c.state_dir, c.probe) for c in sandbox.contexts] == [(tmp_path / "state", True)] * 2
        # A rebuild with the same config keeps the clients.
        assert remote_set.build(cfg) == remotes
        assert len(sandbox.contexts) == 2


def test_every_registered_kind_is_listed_under_its_own_name() -> None:
    assert kinds.names() == ("embedded", "bdd", "ragent-oss", "beray", "agentrun")
    for name, kind in kinds.KINDS.items():
        assert kind.name == name
        assert kinds.get(name) is kind
        # The common keys stay common: a kind does not redefine them.
        assert not {"kind", "timeout", "requests_per_minute"} & set(kind.remote_keys)
        assert not {"name", "path", "remote", "mode", "recursive"} & set(kind.place_keys)
