"""The ``beray`` kind's keys: refused, naming the key, when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.remote.beray.settings import BeRaySettings, Place, login_of

CONFIG = """[daemon]
state_dir = "{tmp}/state"

[remotes.agent]
kind = "beray"
url = "https://beray.example.com/"
{remote}
[[folders]]
name = "out"
path = "{tmp}/out"
remote = "agent"
{folder}
"""
LOGIN = 'email = "me@example.com"\npassword_env = "MY_BERAY_PW"\n'
PLACE = 'task_id = 42\nremote_path = "output/run 1"\n'


def write(tmp_path: Path, remote: str = LOGIN, folder: str = PLACE) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, remote=remote, folder=folder), encoding="utf-8")
    return path


def test_a_remote_that_logs_in_and_its_place(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, folder=PLACE + 'mode = "download"\ndelete = true\nrecursive = true\n'))
    remote = config.remotes["agent"]
    assert remote.settings == BeRaySettings("https://beray.example.com", "me@example.com", "MY_BERAY_PW", None)
    assert Place.loads(config.folders[0].place) == Place(42, "output/run 1")
    login = login_of(remote, {"MY_BERAY_PW": "hunter2"})
    assert (login.email, login.password, login.token) == ("me@example.com", "hunter2", None)
    assert "hunter2" not in repr(login)


def test_a_ready_token_and_the_work_folder_itself(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'token_env = "MY_BERAY_TOKEN"\n', "task_id = 7\n"))
    assert Place.loads(config.folders[0].place) == Place(7, "")
    assert login_of(config.remotes["agent"], {"MY_BERAY_TOKEN": "tok"}).token == "tok"


@pytest.mark.parametrize(("remote", "folder", "message"), [
    ("", PLACE, "remotes.agent.email: missing"),
    ('email = "me@example.com"\n', PLACE, "remotes.agent.password_env: missing"),
    (LOGIN + 'token_env = "T"\n', PLACE, "remotes.agent.token_env: use either"),
    (LOGIN, 'remote_path = "x"\n', "folders[0].task_id: missing"),
    (LOGIN, 'task_id = "42"\n', "folders[0].task_id: must be a task's number"),
    (LOGIN, 'task_id = 42\nremote_path = "/abs"\n', "folders[0].remote_path: must be relative"),
    (LOGIN, 'task_id = 42\nremote_path = "a/../b"\n', "folders[0].remote_path: component '..'"),
    (LOGIN, PLACE + "delete = true\n", "folders[0].delete: remote 'agent' (kind beray) cannot delete files"),
])
def test_refusals_name_the_key(tmp_path: Path, remote: str, folder: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, remote, folder))
    assert message in str(caught.value)
