"""The stand-in AgentRun sandbox server answers as the real data plane: the published SDK, unchanged, over
real HTTP, signed and unsigned, does everything syncd needs against it; its signature check accepts the
protocol page's worked example; and its test hooks do what they say."""

from __future__ import annotations

import hashlib
import os
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

# The SDK prints a banner on import unless told not to.
os.environ.setdefault("DISABLE_BREAKING_CHANGES_WARNING", "1")

import httpx  # noqa: E402
import pytest  # noqa: E402
from agentrun.sandbox import SandboxClient  # noqa: E402
from agentrun.sandbox.api import CodeInterpreterDataAPI  # noqa: E402
from agentrun.sandbox.code_interpreter_sandbox import CodeInterpreterSandbox  # noqa: E402
from agentrun.sandbox.model import TemplateType  # noqa: E402
from agentrun.sandbox.sandbox import Sandbox  # noqa: E402
from agentrun.utils.config import Config  # noqa: E402
from agentrun.utils.exception import ClientError, ResourceNotExistError, ServerError  # noqa: E402
from agentrun.utils.ram_signature.signer import get_agentrun_signed_headers  # noqa: E402

from tests.support.agentrun_server import (  # noqa: E402
    AgentRunServer,
    canonical_request,
    signature,
    signing_key,
)

KEY_ID = "LTAI-test-key"
SECRET = "s3cr3t-for-tests"
SANDBOX = "sb-1"
HOME = "/home/user"
T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or endpoints from the environment (or a .env the SDK loaded), no proxy for loopback."""
    for name in list(os.environ):
        if name.startswith(("AGENTRUN_", "ALIBABA_CLOUD_", "FC_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(params=["unsigned", "signed"])
def signed(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "signed")


@pytest.fixture
def server(tmp_path: Path, signed: bool) -> Iterator[AgentRunServer]:
    start = time.time()
    keys = {KEY_ID: SECRET} if signed else None
    # a clock that stands still (near the real time, so that signatures are not skewed): upload mtimes are exact
    with AgentRunServer(root=tmp_path / "sandboxes", keys=keys, clock=lambda: start) as running:
        running.create_sandbox(SANDBOX)
        yield running


def config(
    server: AgentRunServer, signed: bool, *, key_id: str = KEY_ID, secret: str = SECRET, token: str = ""
) -> Config:
    return Config(
        data_endpoint=server.url,
        control_endpoint="http://127.0.0.1:9",  # never called: connect is given the template type
        account_id="1",
        access_key_id=key_id if signed else "",
        access_key_secret=secret if signed else "",
        security_token=token,
        region_id="cn-hangzhou",
        timeout=10,
    )


def api(server: AgentRunServer, signed: bool, sandbox: str = SANDBOX, **kwargs: str) -> CodeInterpreterDataAPI:
    return CodeInterpreterDataAPI(sandbox_id=sandbox, config=config(server, signed, **kwargs))


def check_signing(server: AgentRunServer, signed: bool) -> None:
    """Every request the server saw was signed exactly when the SDK had keys."""
    seen = server.seen()
    assert seen
    for request in seen:
        assert ("agentrun-authorization" in request.headers) is signed
        if signed:
            assert request.headers["x-acs-content-sha256"] == "UNSIGNED-PAYLOAD"


# -- the worked example ----------------------------------------------------------------------------------

EXAMPLE_HOST = "1234567890-ram.agentrun-data.cn-hangzhou.aliyuncs.com"
EXAMPLE_TARGET = "/sandboxes/sb-0123/filesystem?path=%2Fhome%2Fuser%2Fmy+project&depth=2"
EXAMPLE_CANONICAL = (
    "GET\n/sandboxes/sb-0123/filesystem\ndepth=2&path=%2Fhome%2Fuser%2Fmy%20project\n"
    f"host:{EXAMPLE_HOST}\nx-acs-content-sha256:UNSIGNED-PAYLOAD\nx-acs-date:2026-01-15T08:30:00Z\n\n"
    "host;x-acs-content-sha256;x-acs-date\nUNSIGNED-PAYLOAD"
)
EXAMPLE_SIGNATURE = "25163c89f0d8c91889e4e7cfba530f8737f6f6adba2170b2405f60b09e30b5d0"
EXAMPLE_MOVE_SIGNATURE = "8c6b0c3b7c5ad031210e9584fc9b21dcbd8975f6e608680b0b1b358694849a7c"


def example_headers(signature_hex: str, *, scope: str = "20260115/cn-hangzhou/agentrun") -> dict[str, str]:
    return {
        "Host": EXAMPLE_HOST,
        "x-acs-date": "2026-01-15T08:30:00Z",
        "x-acs-content-sha256": "UNSIGNED-PAYLOAD",
        "Content-Type": "application/json",
        "Agentrun-Authorization": f"AGENTRUN4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}/aliyun_v4_request,"
        f"SignedHeaders=host;x-acs-content-sha256;x-acs-date,Signature={signature_hex}",
    }


def test_the_verifier_accepts_the_protocol_pages_worked_example(tmp_path: Path) -> None:
    at = 1768465800.0  # 2026-01-15T08:30:00Z
    server = AgentRunServer(root=tmp_path, keys={"AKIDEXAMPLE": "sEcReTeXaMpLe"}, clock=lambda: at)
    try:
        lower = {k.lower(): v for k, v in example_headers(EXAMPLE_SIGNATURE).items()}
        signed = ["host", "x-acs-content-sha256", "x-acs-date"]
        canonical = canonical_request("GET", EXAMPLE_TARGET, lower, signed)
        assert canonical == EXAMPLE_CANONICAL
        assert sha(canonical.encode()) == "4fcb6aa4a6d66740548b4712ca28a4537fb83bd4a59778ba6d2934b74377fb3d"
        key = signing_key("sEcReTeXaMpLe", "20260115", "cn-hangzhou")
        assert key.hex() == "ad5fbb7300a406ea46bca06a8ade37a9affd5b1cc851f3f63d20e4a9f4b003a8"
        assert signature("sEcReTeXaMpLe", "20260115", "cn-hangzhou", canonical) == EXAMPLE_SIGNATURE

        assert server.verify("GET", EXAMPLE_TARGET, example_headers(EXAMPLE_SIGNATURE)) is None
        # %20 for the space is the same canonical query
        assert server.verify("GET", EXAMPLE_TARGET.replace("+", "%20"), example_headers(EXAMPLE_SIGNATURE)) is None
        move = "/sandboxes/sb-0123/filesystem/move"
        assert server.verify("POST", move, example_headers(EXAMPLE_MOVE_SIGNATURE)) is None

        # the SDK's own signer gives the very same header
        sdk = get_agentrun_signed_headers(
            url=f"https://{EXAMPLE_HOST}{EXAMPLE_TARGET}",
            access_key_id="AKIDEXAMPLE",
            access_key_secret="sEcReTeXaMpLe",
            sign_time=datetime.fromtimestamp(at, UTC),
        )
        assert sdk["Agentrun-Authorization"] == example_headers(EXAMPLE_SIGNATURE)["Agentrun-Authorization"]

        def refused(method: str, target: str, headers: dict[str, str]) -> str:
            failure = server.verify(method, target, headers)
            assert failure is not None
            return f"{failure.status} {failure.code}"

        assert refused("GET", EXAMPLE_TARGET.replace("depth=2", "depth=3"), example_headers(EXAMPLE_SIGNATURE)) == (
            "403 SignatureDoesNotMatch"
        )
        assert refused("POST", EXAMPLE_TARGET, example_headers(EXAMPLE_SIGNATURE)) == "403 SignatureDoesNotMatch"
        wrong_region = example_headers(EXAMPLE_SIGNATURE, scope="20260115/cn-shanghai/agentrun")
        assert refused("GET", EXAMPLE_TARGET, wrong_region) == "403 SignatureDoesNotMatch"
        wrong_date = example_headers(EXAMPLE_SIGNATURE, scope="20260116/cn-hangzhou/agentrun")
        assert refused("GET", EXAMPLE_TARGET, wrong_date) == "403 SignatureDoesNotMatch"
        unsigned_date = example_headers(EXAMPLE_SIGNATURE)
        unsigned_date["Agentrun-Authorization"] = unsigned_date["Agentrun-Authorization"].replace(
            "SignedHeaders=host;x-acs-content-sha256;x-acs-date", "SignedHeaders=host;x-acs-content-sha256"
        )
        assert refused("GET", EXAMPLE_TARGET, unsigned_date) == "401 InvalidAuthorization"
        no_header = {k: v for k, v in example_headers(EXAMPLE_SIGNATURE).items() if k != "Agentrun-Authorization"}
        assert refused("GET", EXAMPLE_TARGET, no_header) == "401 Unauthorized"
        other_key = example_headers(EXAMPLE_SIGNATURE)
        other_key["Agentrun-Authorization"] = other_key["Agentrun-Authorization"].replace("AKIDEXAMPLE", "AKIDOTHER")
        assert refused("GET", EXAMPLE_TARGET, other_key) == "403 InvalidAccessKeyId.NotFound"
        server.advance(16 * 60)
        assert refused("GET", EXAMPLE_TARGET, example_headers(EXAMPLE_SIGNATURE)) == "403 RequestTimeTooSkewed"
    finally:
        server.stop()


# -- the SDK against the stand-in ------------------------------------------------------------------------


def test_get_sandbox_and_connect(server: AgentRunServer, signed: bool) -> None:
    cfg = config(server, signed)
    sandbox = SandboxClient(config=cfg).get_sandbox(SANDBOX, config=cfg)
    assert isinstance(sandbox, Sandbox)
    assert (sandbox.sandbox_id, sandbox.status, sandbox.template_name) == (SANDBOX, "Running", "code-interpreter-test")
    connected = Sandbox.connect(SANDBOX, template_type=TemplateType.CODE_INTERPRETER, config=cfg)
    assert isinstance(connected, CodeInterpreterSandbox)
    assert connected.sandbox_id == SANDBOX
    assert [(r.method, r.path) for r in server.seen()] == [("GET", f"/sandboxes/{SANDBOX}")] * 2
    check_signing(server, signed)


def test_check_health(server: AgentRunServer, signed: bool) -> None:
    assert api(server, signed).check_health() == {"status": "ok"}
    assert [r.name for r in server.seen()] == ["health"]
    check_signing(server, signed)


def test_list_directory_depth_1_and_2(server: AgentRunServer, signed: bool) -> None:
    project = f"{HOME}/project"
    server.write_file(SANDBOX, f"{project}/a.txt", b"hello\n", mtime=1767225600.25)
    server.write_file(SANDBOX, f"{project}/sub/b.bin", b"\0" * 1000, mtime=1767225700.5)
    server.host_path(SANDBOX, f"{project}/sub/deep").mkdir()
    server.host_path(SANDBOX, f"{project}/empty").mkdir()
    client = api(server, signed)

    one = client.list_directory(path=project, depth=1)
    assert one["path"] == project
    assert [(e["name"], e["type"]) for e in one["entries"]] == [
        ("a.txt", "file"),
        ("empty", "directory"),
        ("sub", "directory"),
    ]
    a = one["entries"][0]
    assert a == {"name": "a.txt", "path": f"{project}/a.txt", "type": "file", "size": 6, "mode": a["mode"],
                 "mtime": 1767225600.25}  # fmt: skip
    assert a["mode"] == oct(server.host_path(SANDBOX, f"{project}/a.txt").stat().st_mode & 0o777)
    assert all("children" not in e for e in one["entries"])  # at the depth limit: no children key

    two = client.list_directory(path=project, depth=2)
    by_name = {e["name"]: e for e in two["entries"]}
    assert by_name["empty"]["children"] == []
    children = by_name["sub"]["children"]
    assert [(c["name"], c["path"], c["type"]) for c in children] == [
        ("b.bin", f"{project}/sub/b.bin", "file"),
        ("deep", f"{project}/sub/deep", "directory"),
    ]
    assert (children[0]["size"], children[0]["mtime"]) == (1000, 1767225700.5)
    assert "children" not in children[1]

    default = client.list_directory()  # no path: the stand-in lists /home/user
    assert default["path"] == HOME and [e["name"] for e in default["entries"]] == ["project"]
    assert "depth=2" in server.seen("list")[1].path
    check_signing(server, signed)


def test_stat(server: AgentRunServer, signed: bool) -> None:
    host = server.write_file(SANDBOX, f"{HOME}/s.txt", b"12345", mtime=T0 + 0.5)
    host.chmod(0o640)
    entry = api(server, signed).stat(f"{HOME}/s.txt")
    assert entry == {"name": "s.txt", "path": f"{HOME}/s.txt", "type": "file", "size": 5, "mode": "0o640",
                     "mtime": T0 + 0.5}  # fmt: skip
    assert api(server, signed).stat(HOME)["type"] == "directory"
    with pytest.raises(ClientError) as missing:
        api(server, signed).stat(f"{HOME}/nope")
    assert (missing.value.status_code, missing.value.error_code) == (404, "FileNotFound")
    assert missing.value.request_id
    check_signing(server, signed)


def test_mkdir(server: AgentRunServer, signed: bool) -> None:
    client = api(server, signed)
    assert client.mkdir(f"{HOME}/new/deeper/deepest") == {"success": True, "path": f"{HOME}/new/deeper/deepest"}
    assert server.host_path(SANDBOX, f"{HOME}/new/deeper/deepest").is_dir()
    assert client.mkdir(f"{HOME}/new") == {"success": True, "path": f"{HOME}/new"}  # parents: an existing one is fine
    with pytest.raises(ClientError) as exists:
        client.mkdir(f"{HOME}/new", parents=False)
    assert (exists.value.status_code, exists.value.error_code) == (409, "FileAlreadyExists")
    with pytest.raises(ClientError) as orphan:
        client.mkdir(f"{HOME}/none/x", parents=False)
    assert (orphan.value.status_code, orphan.value.error_code) == (404, "FileNotFound")
    assert not server.host_path(SANDBOX, f"{HOME}/none").exists()
    check_signing(server, signed)


def test_move_file(server: AgentRunServer, signed: bool) -> None:
    client = api(server, signed)
    server.write_file(SANDBOX, f"{HOME}/a.txt", b"payload", mtime=T0 + 7.25)
    answer = client.move_file(f"{HOME}/a.txt", f"{HOME}/x/y/b.txt")  # parents made
    assert answer == {"success": True, "source": f"{HOME}/a.txt", "destination": f"{HOME}/x/y/b.txt"}
    moved = server.host_path(SANDBOX, f"{HOME}/x/y/b.txt")
    assert moved.read_bytes() == b"payload" and moved.stat().st_mtime == T0 + 7.25
    assert not server.host_path(SANDBOX, f"{HOME}/a.txt").exists()

    server.write_file(SANDBOX, f"{HOME}/c.txt", b"newer")
    client.move_file(f"{HOME}/c.txt", f"{HOME}/x/y/b.txt")  # overwrites a file
    assert moved.read_bytes() == b"newer"
    with pytest.raises(ClientError) as onto_dir:
        client.move_file(f"{HOME}/x/y/b.txt", f"{HOME}/x")
    assert (onto_dir.value.status_code, onto_dir.value.error_code) == (409, "FileAlreadyExists")
    with pytest.raises(ClientError) as missing:
        client.move_file(f"{HOME}/gone.txt", f"{HOME}/z.txt")
    assert (missing.value.status_code, missing.value.error_code) == (404, "FileNotFound")
    check_signing(server, signed)


def test_remove_file(server: AgentRunServer, signed: bool) -> None:
    client = api(server, signed)
    server.write_file(SANDBOX, f"{HOME}/tree/a/b/c.txt", b"c")
    server.write_file(SANDBOX, f"{HOME}/one.txt", b"1")
    assert client.remove_file(f"{HOME}/one.txt") == {"success": True, "path": f"{HOME}/one.txt"}
    assert client.remove_file(f"{HOME}/tree") == {"success": True, "path": f"{HOME}/tree"}  # recursive
    assert sorted(os.listdir(server.host_path(SANDBOX, HOME))) == []
    with pytest.raises(ClientError) as missing:
        client.remove_file(f"{HOME}/tree")
    assert (missing.value.status_code, missing.value.error_code) == (404, "FileNotFound")
    assert missing.value.response_headers and missing.value.response_headers["x-acs-request-id"]
    check_signing(server, signed)


def test_upload_and_download(server: AgentRunServer, signed: bool, tmp_path: Path) -> None:
    client = api(server, signed)
    data = os.urandom(300 * 1024) + b"\r\n--boundary-like\r\n" + os.urandom(1000)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    target = f"{HOME}/up/nested/file.bin"
    assert client.upload_file(str(local), target) == {"success": True, "path": target, "size": len(data)}
    host = server.host_path(SANDBOX, target)
    assert sha(host.read_bytes()) == sha(data)
    assert host.stat().st_mtime == pytest.approx(server.now(), abs=1e-6)  # the server's clock
    entry = client.stat(target)
    assert entry["size"] == len(data) and entry["mtime"] == pytest.approx(server.now(), abs=1e-6)

    smaller = b"overwritten"
    local.write_bytes(smaller)
    client.upload_file(str(local), target)  # overwrites
    assert host.read_bytes() == smaller

    server.write_file(SANDBOX, f"{HOME}/down.bin", data, mtime=T0 + 1)
    saved = tmp_path / "saved.bin"
    assert client.download_file(f"{HOME}/down.bin", str(saved)) == {"saved_path": str(saved), "size": len(data)}
    assert sha(saved.read_bytes()) == sha(data)

    with pytest.raises(ClientError) as is_dir:
        client.upload_file(str(local), f"{HOME}/up")
    assert is_dir.value.status_code == 409 and "IsADirectory" in is_dir.value.message
    with pytest.raises(ClientError) as not_file:
        client.download_file(f"{HOME}/up", str(saved))
    assert not_file.value.status_code == 400 and "NotAFile" in not_file.value.message
    with pytest.raises(ClientError) as missing:
        client.download_file(f"{HOME}/nope.bin", str(saved))
    assert missing.value.status_code == 404 and "FileNotFound" in missing.value.message
    check_signing(server, signed)


def test_download_headers(server: AgentRunServer, signed: bool) -> None:
    server.write_file(SANDBOX, f"{HOME}/h.txt", b"headers", mtime=1767225600.0)
    api(server, signed).download_file(f"{HOME}/h.txt", os.devnull)
    with httpx.Client(trust_env=False) as http:
        server.keys = None  # a plain request, unsigned
        answer = http.get(f"{server.url}/sandboxes/{SANDBOX}/filesystem/download", params={"path": f"{HOME}/h.txt"})
    assert answer.status_code == 200 and answer.content == b"headers"
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-length"] == "7"
    assert answer.headers["last-modified"] == "Thu, 01 Jan 2026 00:00:00 GMT"


def test_names_with_spaces_unicode_and_plus(server: AgentRunServer, signed: bool, tmp_path: Path) -> None:
    client = api(server, signed)
    nfd = unicodedata.normalize("NFD", "café é+1")
    assert nfd != unicodedata.normalize("NFC", nfd)
    folder = f"{HOME}/dir with space+plus"
    target = f"{folder}/{nfd} %2F.txt"
    local = tmp_path / f"{nfd}.txt"
    local.write_bytes(b"unicode")
    client.upload_file(str(local), target)
    on_disk = os.listdir(os.fsencode(server.host_path(SANDBOX, folder)))
    assert on_disk == [f"{nfd} %2F.txt".encode()]  # NFD stays NFD, byte for byte; %2F stays literal
    listing = client.list_directory(path=folder, depth=1)
    assert listing["path"] == folder
    assert [(e["name"], e["path"]) for e in listing["entries"]] == [(f"{nfd} %2F.txt", target)]
    assert client.stat(target)["size"] == 7
    saved = tmp_path / "saved"
    client.download_file(target, str(saved))
    assert saved.read_bytes() == b"unicode"
    client.move_file(target, f"{folder}/a+b c.txt")
    assert client.stat(f"{folder}/a+b c.txt")["name"] == "a+b c.txt"
    assert "%2B" in server.seen("stat")[-1].path  # urlencode: a literal + travels as %2B, a space as +
    check_signing(server, signed)


def test_dot_dot_and_relative_paths_are_refused(server: AgentRunServer, signed: bool, tmp_path: Path) -> None:
    client = api(server, signed)
    (server.root / "secret.txt").write_text("outside")
    for bad in (f"{HOME}/../../../secret.txt", f"{HOME}/./x", "home/user", f"{HOME}/a\0b"):
        with pytest.raises(ClientError) as refused:
            client.stat(bad)
        assert (refused.value.status_code, refused.value.error_code) == (400, "InvalidParameter"), bad
    with pytest.raises(ClientError) as listing:
        client.list_directory(path="/..", depth=1)
    assert (listing.value.status_code, listing.value.error_code) == (400, "InvalidParameter")
    with pytest.raises(ClientError) as moved:
        client.move_file(f"{HOME}/../../../secret.txt", f"{HOME}/stolen.txt")
    assert (moved.value.status_code, moved.value.error_code) == (400, "InvalidParameter")
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    with pytest.raises(ClientError) as upload:
        client.upload_file(str(local), "/../../x.txt")
    assert upload.value.status_code == 400 and "InvalidParameter" in upload.value.message
    with pytest.raises(ClientError) as download:
        client.download_file(f"{HOME}/../../../secret.txt", str(local))
    assert download.value.status_code == 400 and "InvalidParameter" in download.value.message
    assert sorted(p.name for p in server.root.iterdir() if not p.name.startswith(".")) == [SANDBOX, "secret.txt"]

    # a symlink out of the sandbox is not followed
    os.symlink(server.root, server.host_path(SANDBOX, f"{HOME}/escape"))
    with pytest.raises(ClientError) as through_link:
        client.stat(f"{HOME}/escape/secret.txt")
    assert (through_link.value.status_code, through_link.value.error_code) == (400, "InvalidParameter")
    assert client.stat(f"{HOME}/escape")["type"] == "symlink"
    check_signing(server, signed)


def test_unknown_and_removed_sandbox(server: AgentRunServer, signed: bool, tmp_path: Path) -> None:
    with pytest.raises(ClientError) as unknown:
        api(server, signed, sandbox="sb-nope").list_directory(path=HOME, depth=1)
    assert (unknown.value.status_code, unknown.value.error_code) == (404, "SandboxNotFound")
    assert unknown.value.message == "sandbox not found: sb-nope"
    cfg = config(server, signed)
    with pytest.raises(ResourceNotExistError):
        SandboxClient(config=cfg).get_sandbox("sb-nope", config=cfg)

    server.write_file(SANDBOX, f"{HOME}/kept.txt", b"k")
    server.remove_sandbox(SANDBOX)
    client = api(server, signed)
    for call in (lambda: client.stat(f"{HOME}/kept.txt"), client.check_health, lambda: client.mkdir(f"{HOME}/d")):
        with pytest.raises(ClientError) as gone:
            call()
        assert (gone.value.status_code, gone.value.error_code) == (404, "SandboxNotFound")
    with pytest.raises(ClientError) as download:
        client.download_file(f"{HOME}/kept.txt", str(tmp_path / "k"))
    assert download.value.status_code == 404 and "SandboxNotFound" in download.value.message
    check_signing(server, signed)


# -- authentication failures (signed only) ---------------------------------------------------------------


@pytest.mark.parametrize("signed", ["signed"], indirect=True)
def test_wrong_secret_unknown_key_and_no_signature(server: AgentRunServer, signed: bool) -> None:
    with pytest.raises(ClientError) as wrong:
        api(server, signed, secret="not-the-secret").stat(HOME)
    assert (wrong.value.status_code, wrong.value.error_code) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as unknown:
        api(server, signed, key_id="LTAI-unknown").stat(HOME)
    assert (unknown.value.status_code, unknown.value.error_code) == (403, "InvalidAccessKeyId.NotFound")
    with pytest.raises(ClientError) as unsigned:
        api(server, False).stat(HOME)
    assert (unsigned.value.status_code, unsigned.value.error_code) == (401, "Unauthorized")
    assert api(server, signed).stat(HOME)["type"] == "directory"


@pytest.mark.parametrize("signed", ["signed"], indirect=True)
def test_skewed_clock(server: AgentRunServer, signed: bool) -> None:
    server.advance(3600)
    with pytest.raises(ClientError) as skewed:
        api(server, signed).check_health()
    assert (skewed.value.status_code, skewed.value.error_code) == (403, "RequestTimeTooSkewed")


@pytest.mark.parametrize("signed", ["signed"], indirect=True)
def test_sts_token(server: AgentRunServer, signed: bool) -> None:
    server.sts_tokens = {"sts-good"}
    assert api(server, signed, token="sts-good").check_health() == {"status": "ok"}
    request = server.seen()[-1]
    assert request.headers["x-acs-security-token"] == "sts-good"
    assert "x-acs-security-token" in request.headers["agentrun-authorization"]
    with pytest.raises(ClientError) as bad:
        api(server, signed, token="sts-bad").check_health()
    assert (bad.value.status_code, bad.value.error_code) == (403, "InvalidSecurityToken")


# -- the test hooks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", ["unsigned"], indirect=True)
def test_fail_next(server: AgentRunServer, signed: bool, tmp_path: Path) -> None:
    client = api(server, signed)
    server.fail_next("list", status=503)
    with pytest.raises(ServerError) as failed:
        client.list_directory(path=HOME, depth=1)
    assert (failed.value.status_code, failed.value.error_code) == (503, "InjectedFault")
    assert client.list_directory(path=HOME, depth=1)["entries"] == []  # only the next one

    local = tmp_path / "f"
    local.write_bytes(b"stored anyway")
    server.fail_next("upload", status=500, after=True)
    with pytest.raises(ClientError) as upload:
        client.upload_file(str(local), f"{HOME}/f")
    assert upload.value.status_code == 500  # the SDK's upload raises ClientError even for 5xx
    assert server.host_path(SANDBOX, f"{HOME}/f").read_bytes() == b"stored anyway"

    server.fail_next("download", truncate=3)
    with pytest.raises(httpx.TransportError):  # the SDK's download lets a cut body through as is
        client.download_file(f"{HOME}/f", str(tmp_path / "g"))
    assert not (tmp_path / "g").exists()
    assert server.pending_faults("download") == 0
    assert client.download_file(f"{HOME}/f", str(tmp_path / "g"))["size"] == len(b"stored anyway")


@pytest.mark.parametrize("signed", ["unsigned"], indirect=True)
def test_chunked_multipart_upload(server: AgentRunServer, signed: bool) -> None:
    boundary = "b0undary"
    data = os.urandom(200_000)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{HOME}/chunked.bin\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n'.encode(),
        b"Content-Type: application/octet-stream\r\n\r\n",
        data[:70_000],
        data[70_000:],
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    with httpx.Client(trust_env=False) as http:
        answer = http.post(
            f"{server.url}/sandboxes/{SANDBOX}/filesystem/upload",
            content=iter(parts),  # no length: sent chunked
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "path": f"{HOME}/chunked.bin", "size": len(data)}
    assert server.seen("upload")[0].headers["transfer-encoding"] == "chunked"
    assert sha(server.host_path(SANDBOX, f"{HOME}/chunked.bin").read_bytes()) == sha(data)
