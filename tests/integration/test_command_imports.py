"""What `syncd status`, `reconcile` and `run` import, on a config with a plain `bdd` remote.

Each command runs through the real entry (`python -m syncd ...`, by `runpy`) in a fresh
interpreter, which then writes down every module it holds. Invariants:

- no command but `serve`, and no config without an ``embedded`` remote, loads the reference
  file service or its stack (starlette, uvicorn, python-multipart, `syncd.server`); but `run`
  serves its control socket (`syncd.control`) with starlette and uvicorn through the service's
  runner, so for `run` only the file service itself (its app, routes and store) is ruled out;
- the daemon's state is plain `sqlite3`: sqlite-utils, and what it brings (dateutil), is the
  file service's alone;
- `status` reads the config and the state database and nothing else: no HTTP client at all
  (so neither h11 nor the click that httpx loads for its own command line when it is installed).

`reconcile` and `run` do load h11 (httpx speaks HTTP/1.1 through it) and click (httpx's
package imports its optional command line whenever click is installed, and sqlite-utils, a
dependency of the file service, installs it): what syncd cannot choose is not asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import syncd
from tests.support.syncd_cli import write_config

#: The checkout under test, first on the children's path whatever their working directory.
SOURCE = str(Path(syncd.__file__).resolve().parents[1])

#: Never loaded by a syncing or reading command on a `bdd`-only config.
NOT_SYNCING = ("uvicorn", "starlette", "multipart", "python_multipart", "syncd.server", "sqlite_utils", "dateutil")
#: Never loaded by the daemon: the file service itself, beside the stack its control socket shares.
NOT_IN_DAEMON = ("syncd.server.app", "syncd.server.service", "syncd.server.store", "syncd.server.simpleupload",
                 "syncd.server.multipartupload", "syncd.server.download", "syncd.server.catalog",
                 "sqlite_utils", "dateutil")
#: Besides, never loaded by `status` (which reads `syncd.sync.status`, and no other part of the engine).
NOT_STATUS = (*NOT_SYNCING, "httpx", "httpcore", "h11", "click", "tenacity", "watchdog", "syncd.app",
              "syncd.sync.engine", "syncd.sync.passes", "syncd.sync.workers", "syncd.sync.execute")

#: Runs `syncd ARGS` as `python -m syncd` would, then writes the loaded modules to OUT. With
#: STOP_WHEN_DB, a thread sends SIGTERM once that state database records a finished pass.
DRIVER = """
import os, runpy, signal, sqlite3, sys, threading, time
out, db, args = sys.argv[1], sys.argv[2], sys.argv[3:]

def stop_after_first_pass():
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                if conn.execute("SELECT 1 FROM folders WHERE last_pass IS NOT NULL").fetchone():
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)

if db:
    threading.Thread(target=stop_after_first_pass, daemon=True).start()
sys.argv = ["syncd", *args]
code = None
try:
    runpy.run_module("syncd", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as fh:
    fh.write(f"{code}\\n" + "\\n".join(sorted(sys.modules)))
"""


def start(tmp_path: Path, name: str, config: Path, *args: str, stop_db: Path | None = None) -> subprocess.Popen[str]:
    """`syncd ARGS -c CONFIG` under the driver, its module list to be read by `loaded`."""
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (SOURCE, env.get("PYTHONPATH"))))
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / f"{name}.modules"), str(stop_db or ""),
         *args, "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )


def loaded(tmp_path: Path, name: str, proc: subprocess.Popen[str]) -> set[str]:
    """The modules command `name` held at its end; it must have exited 0."""
    _, stderr = proc.communicate(timeout=30)
    code, *modules = (tmp_path / f"{name}.modules").read_text().splitlines()
    assert (proc.returncode, code) == (0, "0"), stderr
    return set(modules)


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The `packages` of which `modules` holds the package itself or a submodule."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


def config_in(base: Path, url: str) -> Path:
    folder = base / "docs"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    return write_config(
        base / "config.toml", state_dir=base / "state", url=url,
        folders=[{"name": "docs", "path": folder, "chat_id": "imports"}],
    )


def test_syncing_and_reading_commands_load_no_server_stack(tmp_path: Path, server_url: str) -> None:
    once, daemon = config_in(tmp_path / "once", server_url), config_in(tmp_path / "daemon", server_url)
    run = start(tmp_path, "run", daemon, "run", stop_db=tmp_path / "daemon" / "state" / "syncd.db")
    reconcile = start(tmp_path, "reconcile", once, "reconcile")
    found = {"reconcile": among(loaded(tmp_path, "reconcile", reconcile), NOT_SYNCING)}
    status = start(tmp_path, "status", once, "status")  # over what reconcile wrote
    found["status"] = among(loaded(tmp_path, "status", status), NOT_STATUS)
    found["run"] = among(loaded(tmp_path, "run", run), NOT_IN_DAEMON)
    assert found == {"reconcile": [], "status": [], "run": []}
