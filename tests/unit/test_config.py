"""Config loading: real TOML files in tmp_path, every mistake named by file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import (
    AfterUpload,
    Config,
    DaemonConfig,
    FolderConfig,
    RemoteConfig,
    default_state_dir,
    find_config_path,
    load_config,
)
from syncd.errors import ConfigError
from syncd.remote.bdd.settings import BddSettings, api_key, settings_of

# Copied from SPEC.md, "Configuration (TOML)".
SPEC_EXAMPLE = """\
[daemon]
state_dir = "~/.local/state/syncd"   # SQLite journal + queue (mode 0600), embedded remote data
workers = 4                          # concurrent transfers
poll_interval = 30                   # s between remote listings
rescan_interval = 3600               # s between full local rescans (jittered)
settle = 1.0                         # s a new/changed file must stay unchanged before upload
log_format = "auto"                  # auto (json when not a TTY) | json | console
log_level = "info"

[remotes.demo]
kind = "embedded"                    # the reference service, in-process, on a Unix socket in state_dir
user_id = "demo"

[remotes.work]
kind = "bdd"
url = "https://files.example.com"
user_id = "114514"
api_key_env = "SYNCD_WORK_API_KEY"   # optional; the secret itself never goes in the file
timeout = 60
requests_per_minute = 0              # 0 = no client-side limit

[[folders]]
name = "alice"                       # unique; default: the path's last component
path = "~/syncd-demo/alice"
remote = "demo"
chat_id = "demo-chat"
mode = "two-way"                     # two-way | upload | download
delete = false                       # propagate deletions (guarded by max_delete)
max_delete = 50                      # percent of tracked files one pass may delete
conflict = "keep-both"               # keep-both | local-wins | remote-wins | newer-wins
after_upload = "keep"                # upload mode: keep | delete | "move:DIR"
ignore = ["*.bak"]                   # globs, added to the built-in list
"""

REMOTES = """\
[remotes.demo]
kind = "embedded"
user_id = "demo"

[remotes.work]
kind = "bdd"
url = "https://files.example.com"
user_id = "114514"
"""

FOLDER = """\
[[folders]]
path = "a"
remote = "demo"
chat_id = "c"
"""

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A small, known environment instead of the real one."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str]) -> Config:
    return load_config(write(tmp_path, text), env)


def error_of(tmp_path: Path, text: str, env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return str(info.value)


# -- good configs ---------------------------------------------------------------------


def test_spec_example_loads(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = load(tmp_path, SPEC_EXAMPLE, env)
    home = Path(env["HOME"])
    assert cfg.path == tmp_path / "config.toml"
    assert cfg.daemon == DaemonConfig(state_dir=home / ".local/state/syncd")
    assert cfg.remotes["demo"] == RemoteConfig(name="demo", kind="embedded", settings=BddSettings(user_id="demo"))
    assert cfg.remotes["work"] == RemoteConfig(
        name="work",
        kind="bdd",
        settings=BddSettings(user_id="114514", url="https://files.example.com", api_key_env="SYNCD_WORK_API_KEY"),
    )
    assert cfg.folders == (
        FolderConfig(
            name="alice",
            path=home / "syncd-demo/alice",
            remote="demo",
            place="demo-chat",
            ignore=("*.bak",),
        ),
    )
    assert cfg.folder("alice") is cfg.folders[0]


def test_defaults_fill_a_minimal_config(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = load(tmp_path, REMOTES + FOLDER, env)
    assert cfg.daemon == DaemonConfig(state_dir=Path(env["HOME"]) / ".local/state/syncd")
    (folder,) = cfg.folders
    assert folder == FolderConfig(name="a", path=tmp_path / "a", remote="demo", place="c")
    assert folder.mode == "two-way"
    assert folder.delete is False
    assert folder.max_delete == 50
    assert folder.conflict == "keep-both"
    assert folder.after_upload == AfterUpload("keep")
    assert folder.ignore == ()
    work = cfg.remotes["work"]
    assert (work.timeout, work.requests_per_minute, settings_of(work).api_key_env) == (60.0, 0, None)


def test_every_field_round_trips(tmp_path: Path, env: dict[str, str]) -> None:
    text = f"""\
[daemon]
state_dir = "state"
workers = 64
small_transfers = 3
poll_interval = 2
rescan_interval = 0.5
settle = 0
log_format = "json"
log_level = "debug"

{REMOTES}
api_key_env = "WORK_KEY"
timeout = 5.5
requests_per_minute = 120

[[folders]]
name = "drop"
path = "{tmp_path}/inbox/"
remote = "work"
chat_id = "42"
mode = "upload"
delete = true
max_delete = 0
conflict = "newer-wins"
after_upload = "move:done/2024"
ignore = ["*.tmp", "~*"]
"""
    cfg = load(tmp_path, text, env)
    assert cfg.daemon == DaemonConfig(
        state_dir=tmp_path / "state",
        workers=64,
        small_transfers=3,
        poll_interval=2.0,
        rescan_interval=0.5,
        settle=0.0,
        log_format="json",
        log_level="debug",
    )
    assert isinstance(cfg.daemon.poll_interval, float)
    assert cfg.remotes["work"].timeout == 5.5
    assert cfg.remotes["work"].requests_per_minute == 120
    assert settings_of(cfg.remotes["work"]).api_key_env == "WORK_KEY"
    assert cfg.folders == (
        FolderConfig(
            name="drop",
            path=tmp_path / "inbox",
            remote="work",
            place="42",
            mode="upload",
            delete=True,
            max_delete=0,
            conflict="newer-wins",
            after_upload=AfterUpload("move", "done/2024"),
            ignore=("*.tmp", "~*"),
        ),
    )
    assert cfg.folders[0].after_upload.target(tmp_path / "inbox") == tmp_path / "inbox/done/2024"
    assert str(cfg.folders[0].after_upload) == "move:done/2024"


def test_no_folders_and_no_tables_is_a_valid_idle_config(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = load(tmp_path, "", env)
    assert cfg.folders == ()
    assert dict(cfg.remotes) == {}
    assert cfg.daemon.workers == 4


def test_state_dir_defaults_to_xdg_state_home(tmp_path: Path, env: dict[str, str]) -> None:
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    assert load(tmp_path, "", env).daemon.state_dir == tmp_path / "xdg-state/syncd"
    # The XDG spec says a relative value is invalid and must be ignored.
    assert default_state_dir({"HOME": "/h", "XDG_STATE_HOME": "rel"}) == Path("/h/.local/state/syncd")


def test_paths_expand_vars_and_home_and_are_relative_to_the_config(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env.update(SYNC_ROOT=str(tmp_path / "root"), SUB="docs")
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    text = f"""\
[daemon]
state_dir = "~/state"
{REMOTES}
[[folders]]
path = "$SYNC_ROOT/a"
remote = "demo"
chat_id = "c"
[[folders]]
path = "${{SYNC_ROOT}}/${{SUB}}"
remote = "demo"
chat_id = "c"
[[folders]]
path = "rel/./x/../b"
remote = "demo"
chat_id = "c"
"""
    cfg = load_config(write(conf_dir, text), env)
    assert cfg.daemon.state_dir == Path(env["HOME"]) / "state"
    assert [f.path for f in cfg.folders] == [tmp_path / "root/a", tmp_path / "root/docs", conf_dir / "rel/b"]
    assert [f.name for f in cfg.folders] == ["a", "docs", "b"]


def test_remote_url_trailing_slash_is_dropped(tmp_path: Path, env: dict[str, str]) -> None:
    text = REMOTES.replace('"https://files.example.com"', '"http://127.0.0.1:8765/api/"')
    assert settings_of(load(tmp_path, text, env).remotes["work"]).url == "http://127.0.0.1:8765/api"


def test_config_is_frozen(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = load(tmp_path, REMOTES + FOLDER, env)
    with pytest.raises(AttributeError):
        cfg.folders[0].mode = "upload"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.remotes["x"] = cfg.remotes["demo"]  # type: ignore[index]


def test_unknown_folder_name_is_a_config_error(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = load(tmp_path, REMOTES + FOLDER, env)
    with pytest.raises(ConfigError, match=r"no folder named 'nope' \(configured: a\)"):
        cfg.folder("nope")


# -- bad configs: each names the file, the key path and what is wrong --------------------

D = "[daemon]\n"
R = REMOTES


def folder(**kv: str) -> str:
    """A [[folders]] entry: the minimal one with keys replaced, added, or (value None) dropped."""
    base = {"path": '"a"', "remote": '"demo"', "chat_id": '"c"'}
    base.update(kv)
    return "[[folders]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v != "None")


BAD: list[tuple[str, str, str]] = [
    # top level
    ("top-unknown", "foldrs = []\n", "foldrs: unknown key (did you mean 'folders'?)"),
    ("daemon-not-table", "daemon = 3\n", "daemon: must be a table"),
    ("remotes-not-table", 'remotes = "x"\n', "remotes: must be a table"),
    ("folders-not-array", 'folders = "x"\n', "folders: must be an array of tables"),
    ("folders-array-of-str", 'folders = ["x"]\n', "folders: must be an array of tables"),
    # daemon
    ("daemon-unknown-quoted", D + '"max workers" = 3\n', 'daemon."max workers": unknown key'),
    ("daemon-unknown", D + "workerz = 3\n", "daemon.workerz: unknown key (did you mean 'workers'?)"),
    ("workers-bool", D + "workers = true\n", "daemon.workers: must be an integer (got boolean true)"),
    ("workers-float", D + "workers = 2.5\n", "daemon.workers: must be an integer (got float 2.5)"),
    ("workers-str", D + 'workers = "4"\n', "daemon.workers: must be an integer (got string '4')"),
    ("workers-zero", D + "workers = 0\n", "daemon.workers: must be from 1 to 64 (got 0)"),
    ("workers-big", D + "workers = 65\n", "daemon.workers: must be from 1 to 64 (got 65)"),
    ("small-zero", D + "small_transfers = 0\n", "daemon.small_transfers: must be from 1 to 64 (got 0)"),
    ("small-float", D + "small_transfers = 1.5\n", "daemon.small_transfers: must be an integer (got float 1.5)"),
    ("poll-zero", D + "poll_interval = 0\n", "daemon.poll_interval: must be greater than 0"),
    ("poll-bool", D + "poll_interval = false\n", "daemon.poll_interval: must be a number"),
    ("poll-inf", D + "poll_interval = inf\n", "daemon.poll_interval: must be a finite number"),
    ("rescan-neg", D + "rescan_interval = -1\n", "daemon.rescan_interval: must be greater than 0"),
    ("settle-neg", D + "settle = -0.5\n", "daemon.settle: must be 0 or more (got -0.5)"),
    ("settle-str", D + 'settle = "1s"\n', "daemon.settle: must be a number of seconds"),
    (
        "log-format",
        D + 'log_format = "text"\n',
        "daemon.log_format: must be one of auto, json, console (got 'text')",
    ),
    (
        "log-level",
        D + 'log_level = "trace"\n',
        "daemon.log_level: must be one of debug, info, warning, error (got 'trace')",
    ),
    ("state-dir-int", D + "state_dir = 1\n", "daemon.state_dir: must be a string (got integer 1)"),
    ("state-dir-empty", D + 'state_dir = ""\n', "daemon.state_dir: must not be empty"),
    (
        "state-dir-unset-var",
        D + 'state_dir = "$NOPE_UNSET/x"\n',
        "daemon.state_dir: environment variable $NOPE_UNSET is not set or empty",
    ),
    ("state-dir-bad-var", D + 'state_dir = "${A:-b}"\n', "daemon.state_dir: ${A:-b} is not"),
    # remotes
    ("remote-not-table", "[remotes]\nx = 1\n", "remotes.x: must be a table"),
    (
        "remote-bad-name",
        '[remotes."my remote"]\nkind = "embedded"\nuser_id = "u"\n',
        'remotes."my remote": remote names must be simple identifiers',
    ),
    ("remote-unknown", R + "urll = 'x'\n", "remotes.work.urll: unknown key (did you mean 'url'?)"),
    ("remote-api-key", R + "api_key = 'x'\n", "remotes.work.api_key: unknown key (secrets never"),
    (
        "remote-kind-missing", "[remotes.x]\nuser_id = 'u'\n",
        "remotes.x.kind: missing (one of embedded, bdd, ragent-oss, beray, agentrun)",
    ),
    (
        "remote-kind-bad",
        "[remotes.x]\nkind = 'ftp'\nuser_id = 'u'\n",
        "remotes.x.kind: must be one of embedded, bdd, ragent-oss, beray, agentrun (got 'ftp')",
    ),
    ("remote-user-missing", "[remotes.x]\nkind = 'embedded'\n", "remotes.x.user_id: missing"),
    (
        "remote-user-int",
        "[remotes.x]\nkind = 'embedded'\nuser_id = 7\n",
        'remotes.x.user_id: must be a string (got integer 7); quote it: "7"',
    ),
    (
        "remote-user-empty",
        "[remotes.x]\nkind = 'embedded'\nuser_id = ' '\n",
        "remotes.x.user_id: must not be empty",
    ),
    ("bdd-url-missing", "[remotes.work]\nkind = 'bdd'\nuser_id = 'u'\n", "remotes.work.url: missing"),
    (
        "bdd-url-scheme",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'ftp://h'\n",
        "remotes.w.url: must be an http:// or https:// URL with a host",
    ),
    (
        "bdd-url-nohost",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'https://'\n",
        "remotes.w.url: must be an http:// or https:// URL with a host",
    ),
    (
        "bdd-url-bare",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'files.example.com'\n",
        "remotes.w.url: must be an http:// or https:// URL with a host",
    ),
    (
        "bdd-url-port",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'http://h:99999'\n",
        "remotes.w.url: is not a valid URL",
    ),
    (
        "bdd-url-query",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'http://h/?a=1'\n",
        "remotes.w.url: must be a base URL without a query",
    ),
    (
        "bdd-url-int",
        "[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 1\n",
        "remotes.w.url: must be a string (got integer 1)",
    ),
    (
        "embedded-url",
        "[remotes.e]\nkind = 'embedded'\nuser_id = 'u'\nurl = 'http://h'\n",
        "remotes.e.url: not allowed for an embedded remote",
    ),
    (
        "api-key-env-bad",
        R + "api_key_env = 'my-key'\n",
        "remotes.work.api_key_env: must be the name of an environment variable",
    ),
    ("api-key-env-int", R + "api_key_env = 3\n", "remotes.work.api_key_env: must be a string (got integer)"),
    ("timeout-zero", R + "timeout = 0\n", "remotes.work.timeout: must be greater than 0 (got 0)"),
    ("timeout-bool", R + "timeout = true\n", "remotes.work.timeout: must be a number of seconds"),
    (
        "rpm-neg",
        R + "requests_per_minute = -1\n",
        "remotes.work.requests_per_minute: must be at least 0 (got -1)",
    ),
    (
        "rpm-float",
        R + "requests_per_minute = 1.5\n",
        "remotes.work.requests_per_minute: must be an integer (got float 1.5)",
    ),
    # folders
    ("folder-unknown", R + folder(modee='"upload"'), "folders[0].modee: unknown key (did you mean 'mode'?)"),
    ("folder-path-missing", R + folder(path="None"), "folders[0].path: missing"),
    ("folder-path-int", R + folder(path="3"), "folders[0].path: must be a string (got integer 3)"),
    ("folder-remote-missing", R + folder(remote="None"), "folders[0].remote: missing"),
    (
        "folder-remote-undefined",
        R + folder(remote='"nas"'),
        "folders[0].remote: no remote named 'nas' (defined: demo, work)",
    ),
    ("folder-remote-none-defined", folder(), "folders[0].remote: no remote named 'demo' (defined: none)"),
    ("folder-chat-missing", R + folder(chat_id="None"), "folders[0].chat_id: missing"),
    ("folder-chat-empty", R + folder(chat_id='""'), "folders[0].chat_id: must not be empty"),
    ("folder-chat-int", R + folder(chat_id="12"), "folders[0].chat_id: must be a string (got integer 12)"),
    (
        "folder-mode",
        R + folder() + folder(path='"b"', mode='"mirror"'),
        "folders[1].mode: must be one of two-way, upload, download (got 'mirror')",
    ),
    (
        "folder-delete-str",
        R + folder(delete='"yes"'),
        "folders[0].delete: must be true or false (got string 'yes')",
    ),
    ("folder-delete-int", R + folder(delete="1"), "folders[0].delete: must be true or false (got integer 1)"),
    (
        "folder-max-delete-big",
        R + folder(max_delete="101"),
        "folders[0].max_delete: must be from 0 to 100 (got 101)",
    ),
    (
        "folder-max-delete-neg",
        R + folder(max_delete="-1"),
        "folders[0].max_delete: must be from 0 to 100 (got -1)",
    ),
    (
        "folder-max-delete-bool",
        R + folder(max_delete="false"),
        "folders[0].max_delete: must be an integer (got boolean false)",
    ),
    (
        "folder-conflict",
        R + folder(conflict='"ours"'),
        "folders[0].conflict: must be one of keep-both, local-wins, remote-wins, newer-wins (got 'ours')",
    ),
    ("folder-name-empty", R + folder(name='""'), "folders[0].name: empty name"),
    ("folder-name-slash", R + folder(name='"a/b"'), "folders[0].name: name contains a path separator"),
    ("folder-name-int", R + folder(name="1"), "folders[0].name: must be a string (got integer 1)"),
    (
        "folder-name-underivable",
        R + folder(path='"/"'),
        "folders[0].name: missing, and '/' has no last component to use",
    ),
    (
        "after-upload-bad",
        R + folder(mode='"upload"', after_upload='"archive"'),
        "folders[0].after_upload: must be one of keep, delete, \"move:DIR\" (got 'archive')",
    ),
    (
        "after-upload-int",
        R + folder(mode='"upload"', after_upload="1"),
        "folders[0].after_upload: must be a string (got integer 1)",
    ),
    (
        "after-upload-move-empty",
        R + folder(mode='"upload"', after_upload='"move:"'),
        "folders[0].after_upload: move needs a directory",
    ),
    (
        "after-upload-move-bare",
        R + folder(mode='"upload"', after_upload='"move"'),
        "folders[0].after_upload: move needs a directory",
    ),
    (
        "after-upload-move-abs",
        R + folder(mode='"upload"', after_upload='"move:/tmp/done"'),
        "folders[0].after_upload: move directory must be relative to the folder",
    ),
    (
        "after-upload-move-home",
        R + folder(mode='"upload"', after_upload='"move:~/done"'),
        "folders[0].after_upload: move directory must be relative to the folder",
    ),
    (
        "after-upload-move-dotdot",
        R + folder(mode='"upload"', after_upload='"move:done/../../x"'),
        "folders[0].after_upload: move directory must stay inside the folder",
    ),
    (
        "after-upload-move-dot",
        R + folder(mode='"upload"', after_upload='"move:./"'),
        "folders[0].after_upload: move directory must not be the folder itself",
    ),
    (
        "after-upload-move-marker",
        R + folder(mode='"upload"', after_upload='"move:.syncd/done"'),
        "folders[0].after_upload: move directory must not be inside .syncd/",
    ),
    (
        "after-upload-move-backslash",
        R + folder(mode='"upload"', after_upload='"move:a\\\\b"'),
        "folders[0].after_upload: move directory must be a relative path with '/' separators",
    ),
    (
        "after-upload-two-way",
        R + folder(after_upload='"delete"'),
        "folders[0].after_upload: 'delete' needs mode = \"upload\" (mode is 'two-way')",
    ),
    (
        "after-upload-download",
        R + folder(mode='"download"', after_upload='"move:done"'),
        "folders[0].after_upload: 'move:done' needs mode = \"upload\" (mode is 'download')",
    ),
    (
        "ignore-str",
        R + folder(ignore='"*.bak"'),
        "folders[0].ignore: must be a list of gitignore-style pattern strings",
    ),
    (
        "ignore-item-int",
        R + folder(ignore='["*.bak", 3]'),
        "folders[0].ignore[1]: must be a string (got integer 3)",
    ),
    ("ignore-item-empty", R + folder(ignore='[""]'), "folders[0].ignore[0]: must not be empty"),
    (
        "ignore-item-trailing-backslash",
        R + folder(ignore="['*.bak', 'notes\\']"),
        "folders[0].ignore[1]: 'notes\\\\' is not a valid gitignore pattern",
    ),
    (
        "ignore-item-unclosed-bracket",
        R + folder(ignore="['[draft']"),
        "folders[0].ignore[0]: '[draft' matches nothing as a gitignore pattern",
    ),
    ("ignore-item-nul", R + folder(ignore='["a\\u0000b"]'), "folders[0].ignore[0]: must not contain a NUL character"),
    # across folders
    (
        "dup-name",
        R + folder(name='"x"') + folder(path='"b"', name='"x"'),
        "folders[1].name: 'x' is already used by folders[0]",
    ),
    (
        "dup-derived-name",
        R + folder(path='"one/docs"') + folder(path='"two/docs"'),
        "folders[1].name: 'docs' is already used by folders[0]",
    ),
    (
        "dup-path",
        R + folder(name='"x"') + folder(name='"y"', path='"./sub/../a/"'),
        "folders[1].path: same folder as folders[0] ('x')",
    ),
    (
        "nested-inside",
        R + folder(path='"a"') + folder(path='"a/b"'),
        "folders[1].path: inside folders[0] ('a'); folders may not nest",
    ),
    (
        "nested-contains",
        R + folder(path='"a/b"') + folder(path='"a"'),
        "folders[1].path: contains folders[0] ('b'); folders may not nest",
    ),
    ("in-state-dir", D + 'state_dir = "st"\n' + R + folder(path='"st/x"'), "folders[0].path: "),
    ("is-state-dir", D + 'state_dir = "st"\n' + R + folder(path='"st"'), "folders[0].path: "),
    ("folder-path-empty", R + folder(path='""'), "folders[0].path: must not be empty"),
    (
        "folder-path-unset-var",
        R + folder(path='"$NOPE_UNSET"'),
        "folders[0].path: environment variable $NOPE_UNSET is not set or empty",
    ),
    # syntax
    ("toml-syntax", "[daemon]\nworkers = = 3\n", "invalid TOML: "),
    ("toml-dup-key", "[daemon]\nworkers = 3\nworkers = 4\n", "invalid TOML: "),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_file_and_key(tmp_path: Path, env: dict[str, str], text: str, expected: str) -> None:
    message = error_of(tmp_path, text, env)
    assert message.startswith(f"{tmp_path / 'config.toml'}: {expected}")


def test_folder_in_state_dir_says_why(tmp_path: Path, env: dict[str, str]) -> None:
    message = error_of(tmp_path, D + 'state_dir = "st"\n' + R + folder(path='"st/x"'), env)
    assert "is inside daemon.state_dir" in message
    message = error_of(tmp_path, D + 'state_dir = "st"\n' + R + folder(path='"st/"'), env)
    assert "is daemon.state_dir" in message


def test_toml_syntax_error_names_the_line(tmp_path: Path, env: dict[str, str]) -> None:
    message = error_of(tmp_path, "# comment\n[daemon]\nworkers = = 3\n", env)
    assert "line 3" in message


def test_nesting_is_detected_through_symlinks(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "real/inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    message = error_of(tmp_path, R + folder(path='"real"') + folder(path='"link/inner"'), env)
    assert "folders[1].path: inside folders[0] ('real')" in message


def test_unreadable_and_non_utf8_files(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="missing.toml: cannot read"):
        load_config(tmp_path / "missing.toml", env)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[daemon]\nstate_dir = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="latin1.toml: not UTF-8"):
        load_config(bad, env)


def test_api_key_env_holding_a_secret_is_not_echoed(tmp_path: Path, env: dict[str, str]) -> None:
    message = error_of(tmp_path, R + f"api_key_env = 'sk-{SECRET}'\n", env)
    assert SECRET not in message


def test_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path, env: dict[str, str]) -> None:
    text = f"[remotes.w]\nkind = 'bdd'\nuser_id = 'u'\nurl = 'https://me:{SECRET}@files.example.com'\n"
    message = error_of(tmp_path, text, env)
    assert "remotes.w.url: must not contain a user name or password" in message
    assert SECRET not in message


# -- api keys -------------------------------------------------------------------------


def remote_with_key(tmp_path: Path, env: dict[str, str]) -> RemoteConfig:
    return load(tmp_path, R + "api_key_env = 'SYNCD_WORK_API_KEY'\n", env).remotes["work"]


def test_api_key_is_none_when_not_configured(tmp_path: Path, env: dict[str, str]) -> None:
    assert api_key(load(tmp_path, R, env).remotes["work"], {"SYNCD_WORK_API_KEY": SECRET}) is None


def test_api_key_comes_from_the_environment_at_use(tmp_path: Path, env: dict[str, str]) -> None:
    remote = remote_with_key(tmp_path, env)
    assert api_key(remote, {"SYNCD_WORK_API_KEY": SECRET}) == SECRET
    assert SECRET not in repr(remote)


def test_api_key_from_systemd_credentials(tmp_path: Path, env: dict[str, str]) -> None:
    remote = remote_with_key(tmp_path, env)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "SYNCD_WORK_API_KEY").write_text(f"{SECRET}\n")
    assert api_key(remote, {"CREDENTIALS_DIRECTORY": str(creds)}) == SECRET
    # The environment wins when both are there; an empty variable does not count.
    both = {"CREDENTIALS_DIRECTORY": str(creds), "SYNCD_WORK_API_KEY": "from-env"}
    assert api_key(remote, both) == "from-env"
    empty = {"CREDENTIALS_DIRECTORY": str(creds), "SYNCD_WORK_API_KEY": ""}
    assert api_key(remote, empty) == SECRET


@pytest.mark.parametrize("creds_content", [None, "", "  \n"])
def test_missing_api_key_names_key_and_variable_only(
    tmp_path: Path, env: dict[str, str], creds_content: str | None
) -> None:
    remote = remote_with_key(tmp_path, env)
    creds = tmp_path / "creds"
    creds.mkdir()
    if creds_content is not None:
        (creds / "SYNCD_WORK_API_KEY").write_text(creds_content)
    lookalike = {"SYNCD_WORK_API_KEY": "", "CREDENTIALS_DIRECTORY": str(creds), "OTHER_KEY": SECRET}
    with pytest.raises(ConfigError) as info:
        api_key(remote, lookalike)
    message = str(info.value)
    assert "config.toml: remotes.work.api_key_env:" in message
    assert "SYNCD_WORK_API_KEY is not set" in message
    assert SECRET not in message


# -- finding the file -----------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "fhome"
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "from-env.toml",
        "xdg": tmp_path / "xdg/syncd/config.toml",
        "home": home / ".config/syncd/config.toml",
        "system": tmp_path / "etc/syncd/config.toml",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return paths


def test_find_config_path_order(tmp_path: Path, places: dict[str, Path]) -> None:
    env = {
        "HOME": str(tmp_path / "fhome"),
        "SYNCD_CONFIG": str(places["env"]),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    system = places["system"]
    assert find_config_path(str(places["explicit"]), env, system=system) == places["explicit"]
    assert find_config_path(None, env, system=system) == places["env"]
    del env["SYNCD_CONFIG"]
    assert find_config_path(None, env, system=system) == places["xdg"]
    del env["XDG_CONFIG_HOME"]
    assert find_config_path(None, env, system=system) == places["home"]
    places["home"].unlink()
    assert find_config_path(None, env, system=system) == system
    system.unlink()
    with pytest.raises(ConfigError) as info:
        find_config_path(None, env, system=system)
    message = str(info.value)
    assert str(places["home"]) in message
    assert str(system) in message


def test_find_config_path_skips_missing_defaults(tmp_path: Path, places: dict[str, Path]) -> None:
    env = {"HOME": str(tmp_path / "fhome"), "XDG_CONFIG_HOME": str(tmp_path / "nowhere")}
    assert find_config_path(None, env, system=places["system"]) == places["system"]


@pytest.mark.parametrize(
    ("explicit", "env_var", "origin"),
    [("gone.toml", None, "-c/--config"), (None, "gone.toml", "$SYNCD_CONFIG")],
)
def test_a_given_path_must_exist(
    tmp_path: Path, places: dict[str, Path], explicit: str | None, env_var: str | None, origin: str
) -> None:
    env = {"HOME": str(tmp_path / "fhome")}
    if env_var:
        env["SYNCD_CONFIG"] = str(tmp_path / env_var)
    given = str(tmp_path / explicit) if explicit else None
    with pytest.raises(ConfigError) as info:
        find_config_path(given, env, system=places["system"])
    assert f"config file not found: {tmp_path / 'gone.toml'}" in str(info.value)
    assert origin in str(info.value)


def test_a_given_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file is not a file"):
        find_config_path(str(tmp_path), {"HOME": str(tmp_path)})


def test_defaults_use_the_real_environment() -> None:
    # The env parameters default to os.environ: calling without them must work.
    assert default_state_dir().name == "syncd"


def test_ignore_takes_gitignore_patterns_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    patterns = ["*.bak", "!important.bak", "/build", "logs/", "**/cache/**", "sub/*.txt", "#not-a-comment", "a "]
    text = R + folder(ignore="[" + ", ".join(f"'{p}'" for p in patterns) + "]")
    cfg = load(tmp_path, text, env)
    assert cfg.folders[0].ignore == tuple(patterns)


# -- recursive ------------------------------------------------------------------------


RECURSIVE = """\
[remotes.r]
kind = "{kind}"
url = "https://files.example.com"
user_id = "u"

[[folders]]
path = "~/f"
remote = "r"
chat_id = "c"
{line}
"""


@pytest.mark.parametrize("line", ["", "recursive = false"])
def test_recursive_false_is_the_default_and_accepted(tmp_path: Path, env: dict[str, str], line: str) -> None:
    [folder] = load(tmp_path, RECURSIVE.format(kind="bdd", line=line), env).folders
    assert folder.recursive is False


def test_recursive_on_a_remote_without_folders_names_the_key(tmp_path: Path, env: dict[str, str]) -> None:
    message = error_of(tmp_path, RECURSIVE.format(kind="bdd", line="recursive = true"), env)
    assert "folders[0].recursive" in message and "has no folders" in message and "'r'" in message
    wrong_type = error_of(tmp_path, RECURSIVE.format(kind="bdd", line='recursive = "yes"'), env)
    assert "folders[0].recursive" in wrong_type
