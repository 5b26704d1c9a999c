"""The ``agentrun`` kind's keys: refused, naming the key, when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.remote.agentrun.settings import AgentRunSettings, Place, credentials

REMOTE = """[daemon]
state_dir = "{tmp}/state"

[remotes.sb]
kind = "agentrun"
url = "https://123.agentrun-data.cn-hangzhou.aliyuncs.com/"
{remote}
[[folders]]
name = "proj"
path = "{tmp}/proj"
remote = "sb"
{folder}
"""
KEYS = 'access_key_id_env = "MY_AR_ID"\naccess_key_secret_env = "MY_AR_SECRET"\n'
PLACE = 'sandbox_id = "sb-1"\nremote_path = "/home/user/project"\n'


def write(tmp_path: Path, remote: str = KEYS, folder: str = PLACE) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(REMOTE.format(tmp=tmp_path, remote=remote, folder=folder), encoding="utf-8")
    return path


def test_a_signed_remote_and_its_place(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KEYS + 'region = "cn-shanghai"\nsecurity_token_env = "MY_STS"\n',
                               PLACE + "recursive = true\nmode = \"download\"\n"))
    remote = config.remotes["sb"]
    assert remote.settings == AgentRunSettings(
        url="https://123.agentrun-data.cn-hangzhou.aliyuncs.com", region="cn-shanghai",
        key_id_env="MY_AR_ID", secret_env="MY_AR_SECRET", token_env="MY_STS",
    )
    assert Place.loads(config.folders[0].place) == Place("sb-1", "/home/user/project")
    env = {"MY_AR_ID": "id", "MY_AR_SECRET": "secret", "MY_STS": "tok", "AGENTRUN_ACCESS_KEY_ID": "ambient"}
    found = credentials(remote, env)
    assert found is not None and (found.key_id, found.secret, found.token) == ("id", "secret", "tok")


def test_ambient_variables_are_never_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, remote=""))
    env = {"AGENTRUN_ACCESS_KEY_ID": "x", "AGENTRUN_ACCESS_KEY_SECRET": "y", "ALIBABA_CLOUD_ACCESS_KEY_ID": "z"}
    assert credentials(config.remotes["sb"], env) is None


@pytest.mark.parametrize(("remote", "folder", "message"), [
    ('access_key_id_env = "MY_AR_ID"\n', PLACE, "remotes.sb.access_key_secret_env: missing"),
    ('access_key_secret_env = "MY_AR_SECRET"\n', PLACE, "remotes.sb.access_key_id_env: missing"),
    ('security_token_env = "X"\n', PLACE, "remotes.sb.security_token_env: needs access_key_id_env"),
    ('access_key_id_env = "LTAI5tQ-this-is-a-key"\naccess_key_secret_env = "S"\n', PLACE,
     "remotes.sb.access_key_id_env: must be the name of an environment variable"),
    (KEYS + 'region = "cn hangzhou"\n', PLACE, "remotes.sb.region: must be a region id"),
    (KEYS, 'sandbox_id = "sb-1"\nremote_path = "home/user"\n', "folders[0].remote_path: must be an absolute path"),
    (KEYS, 'sandbox_id = "sb-1"\nremote_path = "/home/../etc"\n', "folders[0].remote_path: component '..'"),
    (KEYS, 'remote_path = "/x"\n', "folders[0].sandbox_id: missing"),
    (KEYS, 'sandbox_id = "a/b"\nremote_path = "/x"\n', "folders[0].sandbox_id: must be a sandbox id"),
    (KEYS, PLACE + 'chat_id = "c"\n', "folders[0].chat_id"),
])
def test_refusals_name_the_key(tmp_path: Path, remote: str, folder: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, remote, folder))
    assert message in str(caught.value)
    assert "LTAI5tQ-this-is-a-key" not in str(caught.value)
