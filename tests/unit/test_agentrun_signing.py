"""syncd's AGENTRUN4-HMAC-SHA256 signer, against the protocol notes' worked example and, on
fixed inputs, against the published SDK's own signer."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from syncd.remote.agentrun.signing import Credentials, canonical_query, ram_host, sign, signing_key

KEY = Credentials("AKIDEXAMPLE", "sEcReTeXaMpLe")
WHEN = datetime(2026, 1, 15, 8, 30, tzinfo=UTC)
HOST = "https://1234567890-ram.agentrun-data.cn-hangzhou.aliyuncs.com"


def test_the_worked_example_of_the_protocol_notes() -> None:
    url = f"{HOST}/sandboxes/sb-0123/filesystem?path=%2Fhome%2Fuser%2Fmy+project&depth=2"
    headers = sign("GET", url, KEY, "cn-hangzhou", WHEN)
    assert headers["x-acs-date"] == "2026-01-15T08:30:00Z"
    assert headers["host"] == "1234567890-ram.agentrun-data.cn-hangzhou.aliyuncs.com"
    assert headers["x-acs-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert signing_key(KEY.secret, "20260115", "cn-hangzhou").hex() == (
        "ad5fbb7300a406ea46bca06a8ade37a9affd5b1cc851f3f63d20e4a9f4b003a8"
    )
    assert headers["Agentrun-Authorization"] == (
        "AGENTRUN4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260115/cn-hangzhou/agentrun/aliyun_v4_request,"
        "SignedHeaders=host;x-acs-content-sha256;x-acs-date,"
        "Signature=25163c89f0d8c91889e4e7cfba530f8737f6f6adba2170b2405f60b09e30b5d0"
    )
    move = sign("POST", f"{HOST}/sandboxes/sb-0123/filesystem/move", KEY, "cn-hangzhou", WHEN)
    assert move["Agentrun-Authorization"].endswith(
        "Signature=8c6b0c3b7c5ad031210e9584fc9b21dcbd8975f6e608680b0b1b358694849a7c"
    )


def test_an_sts_token_is_sent_and_signed() -> None:
    headers = sign("GET", f"{HOST}/sandboxes/x", Credentials("id", "s", token="tok"), "cn-shanghai", WHEN)
    assert headers["x-acs-security-token"] == "tok"
    assert "SignedHeaders=host;x-acs-content-sha256;x-acs-date;x-acs-security-token," in (
        headers["Agentrun-Authorization"]
    )
    assert "/cn-shanghai/agentrun/" in headers["Agentrun-Authorization"]


def test_the_secret_is_never_in_a_repr_or_a_header() -> None:
    credentials = Credentials("id", "very-secret", token="sts-secret")
    assert "very-secret" not in repr(credentials) and "sts-secret" not in repr(credentials)
    headers = sign("GET", f"{HOST}/sandboxes/x", credentials, "cn-hangzhou", WHEN)
    assert not any("very-secret" in value for value in headers.values())


@pytest.mark.parametrize(("query", "canonical"), [
    ("", ""),
    ("path=%2Fa+b&depth=2", "depth=2&path=%2Fa%20b"),
    ("b=1&a=2&b=3", "a=2&b=3"),  # the last of a repeated key wins
    ("flag&x=", "x="),  # a piece without "=" is skipped; an empty value keeps its "="
    ("p=%2Fdir%2Fa%2Bb%20%C3%A9", "p=%2Fdir%2Fa%2Bb%20%C3%A9"),
    ("p=~-_.", "p=~-_."),
])
def test_the_canonical_query(query: str, canonical: str) -> None:
    assert canonical_query(query) == canonical


@pytest.mark.parametrize(("url", "expected"), [
    ("https://123.agentrun-data.cn-hangzhou.aliyuncs.com", "https://123-ram.agentrun-data.cn-hangzhou.aliyuncs.com"),
    ("https://123-ram.agentrun-data.cn-hangzhou.aliyuncs.com", "https://123-ram.agentrun-data.cn-hangzhou.aliyuncs.com"),
    ("https://9.funagent-data-pre.cn-hangzhou.aliyuncs.com/x", "https://9-ram.funagent-data-pre.cn-hangzhou.aliyuncs.com/x"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://files.example.com", "https://files.example.com"),
])
def test_the_ram_host_rule_applies_to_data_endpoints_only_and_never_twice(url: str, expected: str) -> None:
    assert ram_host(url) == expected


def test_the_signature_is_the_hmac_of_the_canonical_request() -> None:
    # Recomputed from the steps by hand, independently of `sign`'s own assembly.
    url = f"{HOST}/sandboxes/sb%201/filesystem/download?path=%2Fhome%2Fa+b.txt"
    headers = sign("GET", url, KEY, "cn-hangzhou", WHEN)
    canonical = "\n".join([
        "GET", "/sandboxes/sb%201/filesystem/download", "path=%2Fhome%2Fa%20b.txt",
        "host:1234567890-ram.agentrun-data.cn-hangzhou.aliyuncs.com\nx-acs-content-sha256:UNSIGNED-PAYLOAD\n"
        "x-acs-date:2026-01-15T08:30:00Z\n",
        "host;x-acs-content-sha256;x-acs-date", "UNSIGNED-PAYLOAD",
    ])
    to_sign = "AGENTRUN4-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(signing_key(KEY.secret, "20260115", "cn-hangzhou"), to_sign.encode(), hashlib.sha256)
    assert headers["Agentrun-Authorization"].endswith(f"Signature={expected.hexdigest()}")


CASES = [
    ("GET", f"{HOST}/sandboxes/sb-0123/filesystem?path=%2Fhome%2Fuser%2Fmy+project&depth=2", None),
    ("POST", f"{HOST}/sandboxes/sb-0123/filesystem/upload", None),
    ("GET", "http://127.0.0.1:8080/sandboxes/a%20b/filesystem/stat?path=%2Fx%2F%C3%A9t%C3%A9%2Bz.txt", "sts"),
    ("POST", f"{HOST}/sandboxes/sb-9/filesystem/remove", "sts"),
    ("GET", f"{HOST}/sandboxes/sb-9?b=2&a=1&a=3", None),
]


@pytest.mark.parametrize(("method", "url", "token"), CASES)
def test_the_published_sdks_signer_agrees(method: str, url: str, token: str | None) -> None:
    signer = pytest.importorskip("agentrun.utils.ram_signature").get_agentrun_signed_headers
    theirs = signer(url, method, access_key_id="AKID", access_key_secret="s3cr3t", security_token=token,
                    region="cn-beijing", sign_time=WHEN)
    ours = sign(method, url, Credentials("AKID", "s3cr3t", token=token), "cn-beijing", WHEN)
    assert ours == theirs
