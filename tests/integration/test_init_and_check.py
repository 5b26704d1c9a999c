"""A first run as a new user makes it: `syncd init`, `syncd check [--json]`, the first-run
folder rule, clear errors for an unreachable remote and a busy port. Every command is the real
`python -m syncd` in a subprocess, with a fresh HOME and XDG_CONFIG_HOME under tmp_path."""

from __future__ import annotations

import json
import socket
from importlib import resources
from pathlib import Path

import pytest

from syncd.cli.main import COMMANDS
from syncd.config import load_config
from tests.support.serve import free_port
from tests.support.syncd_cli import run_syncd, write_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = resources.files("syncd.data").joinpath("config.example.toml").read_bytes()


def fresh_home(tmp_path: Path, *, xdg: bool = True) -> dict[str, str]:
    """The environment of a user who never ran syncd: an empty HOME (and XDG dirs in it)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg-config") if xdg else "",
           "XDG_STATE_HOME": str(home / "xdg-state")}
    return env


def lines_of(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip()]


# -- syncd init -----------------------------------------------------------------------------------


@pytest.mark.parametrize("xdg", [True, False], ids=["XDG_CONFIG_HOME", "HOME"])
def test_init_writes_the_starter_config_where_syncd_looks_first(tmp_path: Path, xdg: bool) -> None:
    env = fresh_home(tmp_path, xdg=xdg)
    home = Path(env["HOME"])
    where = (home / "xdg-config" if xdg else home / ".config") / "syncd" / "config.toml"

    done = run_syncd("init", env=env)

    assert done.code == 0, done.stderr
    assert where.read_bytes() == SHIPPED == (REPO / "config.example.toml").read_bytes()
    assert str(where) in done.stdout
    assert "syncd run" in done.stdout and " -c " not in done.stdout  # found there without -c
    config = load_config(where, env={**env})
    assert [f.path for f in config.folders] == [home / "syncd-demo-alice", home / "syncd-demo-bob",
                                                home / "syncd-demo-outbox"]


def test_a_second_init_overwrites_nothing(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    assert run_syncd("init", env=env).code == 0
    written = Path(env["XDG_CONFIG_HOME"]) / "syncd" / "config.toml"
    written.write_bytes(b"# my own edits\n" + SHIPPED)
    before = written.read_bytes()

    again = run_syncd("init", env=env)

    assert again.code == 2
    assert str(written) in again.stderr and "already exists" in again.stderr
    assert written.read_bytes() == before
    assert "wrote" not in again.stdout


def test_init_never_follows_a_link_that_is_already_there(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    target = tmp_path / "elsewhere.toml"
    link = tmp_path / "config.toml"
    link.symlink_to(target)  # dangling: an open without O_EXCL would create `target`

    refused = run_syncd("init", link, env=env)

    assert refused.code == 2 and str(link) in refused.stderr
    assert not target.exists()


def test_init_file_creates_its_directories_and_says_how_to_use_it(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    file = tmp_path / "new" / "dir" / "syncd.toml"

    done = run_syncd("init", file, env=env)

    assert done.code == 0, done.stderr
    assert file.read_bytes() == SHIPPED
    assert str(file) in done.stdout and f"syncd run -c {file}" in done.stdout
    assert not (Path(env["XDG_CONFIG_HOME"]) / "syncd").exists()


def test_the_written_config_passes_check(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    file = tmp_path / "syncd.toml"
    assert run_syncd("init", file, env=env).code == 0

    checked = run_syncd("check", "-c", file, env=env)

    assert checked.code == 0, checked.stdout + checked.stderr
    lines = lines_of(checked.stdout)
    assert lines[0] == f"config {file} ok (3 folders, 1 remote)"  # plurals: "1 remote", not "1 remotes"
    assert [line.split(":")[0] for line in lines[1:]] == ["alice", "bob", "outbox"] * 2  # folders, then remotes
    assert all(" ok (" in line for line in lines)
    assert "alice: remote demo ok (0 files in the chat)" in lines


# -- syncd check ----------------------------------------------------------------------------------


def keyed_config(tmp_path: Path, url: str, *, folder: Path | None = None) -> Path:
    folder = folder or tmp_path / "docs"
    cfg = write_config(tmp_path / "config.toml", state_dir=tmp_path / "state", url=url,
                       folders=[{"name": "docs", "path": folder, "chat_id": "c"}], timeout=5)
    cfg.write_text(cfg.read_text().replace("timeout = 5", 'timeout = 5\napi_key_env = "SYNCD_CHECK_KEY"'))
    return cfg


def test_a_missing_key_variable_is_a_failed_check_in_order(tmp_path: Path, server_url: str) -> None:
    (tmp_path / "docs").mkdir()
    cfg = keyed_config(tmp_path, server_url)

    checked = run_syncd("check", "-c", cfg, env={"SYNCD_CHECK_KEY": ""})

    assert checked.code == 1, checked.stdout + checked.stderr
    lines = lines_of(checked.stdout)
    assert [line.split(" ")[0] for line in lines] == ["config", "secret", "docs:", "docs:"]
    assert lines[0] == f"config {cfg} ok (1 folder, 1 remote)"
    assert lines[1].startswith("secret remotes.r.api_key_env FAILED: ")
    assert "SYNCD_CHECK_KEY is not set" in lines[1]
    assert lines[2].startswith("docs: folder ") and " ok (" in lines[2]
    assert lines[3].startswith("docs: remote r FAILED: not probed")
    assert not any(line.startswith("secret") and " ok" in line for line in lines)
    assert checked.stderr == ""  # not a config error: nothing after the report


def test_a_present_key_is_checked_and_never_shown(tmp_path: Path, server_url: str) -> None:
    (tmp_path / "docs").mkdir()
    cfg = keyed_config(tmp_path, server_url)
    secret = "s3cret-value-never-printed"

    checked = run_syncd("check", "-c", cfg, env={"SYNCD_CHECK_KEY": secret})

    assert checked.code == 0, checked.stdout + checked.stderr
    assert "secret remotes.r.api_key_env ok (SYNCD_CHECK_KEY is set)" in checked.stdout
    assert secret not in checked.stdout + checked.stderr


def test_check_json_shape(tmp_path: Path, server_url: str) -> None:
    cfg = keyed_config(tmp_path, server_url, folder=tmp_path / "docs")  # missing, its parent exists

    bad = run_syncd("check", "--json", "-c", cfg, env={"SYNCD_CHECK_KEY": ""})
    good = run_syncd("check", "--json", "-c", cfg, env={"SYNCD_CHECK_KEY": "k"})

    assert bad.code == 1 and good.code == 0, good.stdout + good.stderr
    for result in (bad, good):
        assert result.doc is not None
        assert set(result.doc) == {"ok", "config", "checks"}
        assert result.doc["config"] == str(cfg)
        for check in result.doc["checks"]:
            assert set(check) == {"check", "name", "ok", "detail"}
            assert isinstance(check["ok"], bool) and isinstance(check["detail"], str)
        assert [(c["check"], c["name"]) for c in result.doc["checks"]] == [
            ("config", str(cfg)), ("secret", "remotes.r.api_key_env"), ("folder", "docs"), ("remote", "docs"),
        ]
    assert bad.doc is not None and good.doc is not None
    assert bad.doc["ok"] is False and [c["ok"] for c in bad.doc["checks"]] == [True, False, True, False]
    assert good.doc["ok"] is True and all(c["ok"] for c in good.doc["checks"])
    assert "the first run creates it" in good.doc["checks"][2]["detail"]
    assert not (tmp_path / "docs").exists()  # check creates nothing


def test_check_json_on_a_config_error_still_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[daemon]\nworkers = "many"\n')

    result = run_syncd("check", "--json", "-c", cfg)

    assert result.code == 2
    assert "daemon.workers" in result.stderr
    assert result.doc is not None and result.doc["ok"] is False
    assert [(c["check"], c["ok"]) for c in result.doc["checks"]] == [("config", False)]
    assert "daemon.workers" in result.doc["checks"][0]["detail"]


def test_a_closed_port_is_named_by_check_and_reconcile(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = keyed_config(tmp_path, url + "/base/path")  # messages name the origin only
    env = {"SYNCD_CHECK_KEY": "k"}

    checked = run_syncd("check", "-c", cfg, env=env)
    reconciled = run_syncd("reconcile", "--json", "-c", cfg, env=env)

    assert checked.code == 1
    assert f"docs: remote r FAILED: unreachable: list chat 'c' failed: could not connect to {url} " in checked.stdout
    assert reconciled.code == 1
    assert f"could not connect to {url} " in (reconciled.folder("docs")["blocked"] or "")
    for output in (checked.stdout, checked.stderr, reconciled.stdout, reconciled.stderr):
        assert "/base/path" not in output


# -- the first-run folder rule --------------------------------------------------------------------


def test_a_new_folder_whose_parent_is_missing_is_a_config_error(tmp_path: Path, server_url: str) -> None:
    unmounted = tmp_path / "media" / "usb"
    folder = unmounted / "photos"
    cfg = keyed_config(tmp_path, server_url, folder=folder)
    env = {"SYNCD_CHECK_KEY": "k"}

    reconciled = run_syncd("reconcile", "-c", cfg, env=env)
    ran = run_syncd("run", "-c", cfg, env=env)
    checked = run_syncd("check", "-c", cfg, env=env)

    for refused in (reconciled, ran):
        assert refused.code == 2, refused.stdout + refused.stderr
        assert f"{cfg}: folders[0].path: {folder} does not exist and neither does its parent {unmounted}" \
            in refused.stderr
    assert checked.code == 1
    assert f"docs: folder {folder} FAILED: folders[0].path: " in checked.stdout
    assert not (tmp_path / "media").exists()


def test_a_new_folder_whose_parent_exists_is_created_and_logged(tmp_path: Path, server_url: str) -> None:
    folder = tmp_path / "docs"
    cfg = keyed_config(tmp_path, server_url, folder=folder)

    done = run_syncd("reconcile", "-v", "-c", cfg, env={"SYNCD_CHECK_KEY": "k"})

    assert done.code == 0, done.stdout + done.stderr
    assert folder.is_dir() and (folder / ".syncd").is_dir()
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    created = [e for e in events if e["event"] == "created folder"]
    assert [(e["level"], e["folder"], e["path"]) for e in created] == [("info", "docs", str(folder))]


def test_a_folder_that_synced_before_and_vanished_is_paused_not_refused(tmp_path: Path, server_url: str) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    folder = disk / "docs"
    cfg = keyed_config(tmp_path, server_url, folder=folder)
    env = {"SYNCD_CHECK_KEY": "k"}
    assert run_syncd("reconcile", "-c", cfg, env=env).code == 0
    (folder / "a.txt").write_text("tracked")
    assert run_syncd("reconcile", "-c", cfg, env=env).code == 0
    disk.rename(tmp_path / "unplugged")  # the folder and its parent are gone: an unmounted disk

    again = run_syncd("reconcile", "--json", "-c", cfg, env=env)
    checked = run_syncd("check", "-c", cfg, env=env)

    assert again.code == 1, again.stdout + again.stderr
    assert "paused" in (again.folder("docs")["blocked"] or "")
    assert checked.code == 1 and "synced before" in checked.stdout
    assert not disk.exists()


# -- syncd serve on a busy port -------------------------------------------------------------------


def test_serve_on_a_busy_port_exits_2_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = run_syncd("serve", "--data", tmp_path / "data", "--port", str(port))

    assert result.code == 2, result.stderr
    assert f"syncd: port {port} on 127.0.0.1 is already in use (--port)" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    result = run_syncd("serve", "--data", tmp_path / "data", "--port", "70000")
    assert result.code == 2 and "--port" in result.stderr


# -- the command line -----------------------------------------------------------------------------


def test_help_lists_every_command_on_one_line() -> None:
    result = run_syncd("--help")
    assert result.code == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert set(COMMANDS) <= set(listed)
    for command in COMMANDS:
        line = next(line for line in result.stdout.splitlines() if line.split()[:1] == [command])
        assert len(line.split()) > 1, f"{command} has no help line"


def test_retry_folder_has_help_and_run_takes_verbose(tmp_path: Path) -> None:
    helped = run_syncd("retry", "--help")
    assert helped.code == 0 and "--folder NAME" in helped.stdout and "only the folder called NAME" in helped.stdout
    ran = run_syncd("run", "--verbose", "-c", tmp_path / "missing.toml")
    assert ran.code == 2
    assert "config file not found" in ran.stderr and "usage:" not in ran.stderr
