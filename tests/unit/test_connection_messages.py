"""A transport failure says where the call went: the remote's origin (never its user info,
path or query), so "could not connect" is followed by what could not be reached."""

from __future__ import annotations

import httpx
import pytest

from syncd.errors import TransientError
from syncd.remote.httperrors import Call, converting, safe_origin

CALL = Call("list", "chat 'c'", "/listChatFiles", "http://files.example.com:8080")


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (httpx.ConnectError("refused"), "could not connect to"),
        (httpx.ConnectTimeout("slow"), "timed out connecting to"),
        (httpx.ReadTimeout("slow"), "timed out waiting for the answer of"),
        (httpx.WriteTimeout("slow"), "timed out sending to"),
        (httpx.PoolTimeout("busy"), "timed out waiting for a free connection to"),
        (httpx.ReadError("reset"), "connection lost to"),
        (httpx.RemoteProtocolError("eof"), "connection lost or broken answer from"),
    ],
)
def test_every_transport_failure_names_the_remote(raised: Exception, said: str) -> None:
    with pytest.raises(TransientError) as caught, converting(CALL):
        raise raised
    assert str(caught.value) == f"list chat 'c' failed: {said} http://files.example.com:8080 (/listChatFiles)"


def test_an_embedded_remote_is_named_by_its_socket() -> None:
    call = Call("list", "chat 'c'", "/listChatFiles", "embedded (unix socket /s/service.sock)")
    with pytest.raises(TransientError, match=r"could not connect to embedded \(unix socket /s/service.sock\)"), \
            converting(call):
        raise httpx.ConnectError("no such file")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://user:pw@files.example.com/base/path?token=t#f", "https://files.example.com"),
        ("http://127.0.0.1:9/x", "http://127.0.0.1:9"),
        ("http://[::1]:8765/", "http://[::1]:8765"),
    ],
)
def test_the_origin_carries_no_credentials_path_or_query(url: str, origin: str) -> None:
    assert safe_origin(httpx.URL(url)) == origin
