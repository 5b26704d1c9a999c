"""`syncd serve` as users start it: a real subprocess on a real port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)  # polling a condition, not waiting for time to pass
    raise AssertionError("syncd serve never became healthy")


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SYNCD_TEST_KEY": "super-secret-value"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "serve", "--data", str(tmp_path / "data"), "--port", str(port),
         "--api-key-env", "SYNCD_TEST_KEY"],
        stderr=subprocess.PIPE, env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        headers = {"X-User-Id": "u", "X-API-Key": "super-secret-value"}
        assert httpx.get(f"{url}/listChatFiles", params={"chat_id": "c"}, headers=headers).json()["code"] == 0
        assert httpx.get(f"{url}/listChatFiles", params={"chat_id": "c"},
                         headers={"X-User-Id": "u", "X-API-Key": "wrong"}).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert b"super-secret-value" not in err
    assert b'"event": "serving"' in err  # JSON log lines when not on a TTY


def test_serve_refuses_a_missing_key_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_NO_SUCH_VAR"}
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "serve", "--data", str(tmp_path), "--api-key-env", "SYNCD_NO_SUCH_VAR"],
        capture_output=True, env=env, timeout=30,
    )
    assert result.returncode == 2
    assert b"SYNCD_NO_SUCH_VAR" in result.stderr
