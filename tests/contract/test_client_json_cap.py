"""A hostile service cannot make the client hold a JSON answer whole.

Every JSON answer is read as a stream, decompressed step by step by the client itself (gzip and
deflate only), and cut off past `max_json_bytes` of decompressed JSON (16 MiB by default) as a
malformed answer, which is retried like any other and then fails the call. The service here is a
real HTTP server on loopback (`HostileServer`) producing its answers lazily: a gzip answer of
about 1 MiB that inflates to 1 GiB, an uncompressed answer of hundreds of MiB that never ends, a
listing page far longer than the `limit` asked for, error answers of the same kinds. The
client runs in this process, so this process's peak memory is what must stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.errors import ItemError, TransientError
from syncd.remote.bdd.client import BddClient
from tests.support.hostile_server import (
    HostileServer,
    Scripted,
    encoded,
    endless,
    fresh_pages,
    gzip_bomb,
    listed_item,
    many_items,
)
from tests.support.leaks import no_new_threads, peak_memory

CHAT = "chat-1"
KiB = 1024
MiB = 1024 * KiB
ATTEMPTS = 3
#: The most this process's resident memory may rise while a hostile answer is refused (the cap
#: itself is 16 MiB; before the fix a gzip bomb took gigabytes).
GROWTH = 100 * MiB


def make_remote(url: str, **options: object) -> BddClient:
    """A client with test-sized retries: a few quick attempts, no long waits."""
    settings: dict[str, object] = {
        "retry_attempts": ATTEMPTS,
        "retry_backoff": 0.01,
        "max_wait": 0.05,
        "timeout": 10.0,
    }
    settings.update(options)
    return BddClient(url, "u", **settings)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    with no_new_threads():
        yield


def too_large(endpoint: str, cap: str = "16 MiB") -> str:
    return rf"malformed answer from {endpoint} \(answer larger than {cap}\)"


# -- the cap, and memory --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(gzip_bomb, id="gzip-1GiB"),
        pytest.param(endless, id="endless-384MiB"),
        pytest.param(lambda: many_items(10**6), id="page-of-a-million"),
    ],
)
def test_a_huge_answer_fails_the_call_and_memory_stays_small(answer: Callable[[], Scripted]) -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = answer()
        with (
            make_remote(server.url) as remote,
            peak_memory() as peak,
            pytest.raises(TransientError, match=too_large("/listChatFiles")),
        ):
            remote.list_chat(CHAT)
        # Retried like any malformed answer, a bounded number of times, each attempt cut off.
        assert len(server.seen("/listChatFiles")) == ATTEMPTS
    assert peak.growth < GROWTH, f"memory rose by {peak.growth / MiB:.0f} MiB"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: gzip_bomb(status=500), id="gzip-1GiB"),
        pytest.param(lambda: endless(status=500), id="endless"),
    ],
)
def test_an_error_answer_is_read_only_a_little(answer: Callable[[], Scripted]) -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = answer()
        with (
            make_remote(server.url) as remote,
            peak_memory() as peak,
            pytest.raises(TransientError, match="HTTP 500 from /listChatFiles") as caught,
        ):
            remote.list_chat(CHAT)
        assert caught.value.status == 500
        assert len(server.seen("/listChatFiles")) == ATTEMPTS
    assert peak.growth < GROWTH, f"memory rose by {peak.growth / MiB:.0f} MiB"


def test_a_huge_error_answer_that_is_not_retried_is_still_an_item_error() -> None:
    with HostileServer([]) as server:
        server.scripted["/deleteFile"] = gzip_bomb(status=409)
        with (
            make_remote(server.url) as remote,
            peak_memory() as peak,
            pytest.raises(ItemError, match="HTTP 409 from /deleteFile"),
        ):
            remote.delete(7)
        assert len(server.seen("/deleteFile")) == 1
    assert peak.growth < GROWTH


# -- every JSON call goes through the cap ---------------------------------------------------------

OK_INT = {"code": 0, "data": 5, "message": None}

JsonCall = Callable[[BddClient, Path], object]


def upload(size: int) -> JsonCall:
    def call(remote: BddClient, tmp_path: Path) -> object:
        path = tmp_path / "up.bin"
        path.write_bytes(b"u" * size)
        return remote.upload(path, chat_id=CHAT, filename="up.bin", size=size, sha256=None)

    return call


CALLS: dict[str, tuple[JsonCall, dict[str, Scripted]]] = {
    "/listChatFiles": (lambda remote, _: remote.list_chat(CHAT), {}),
    "/getMultipartUploadFileStatus": (lambda remote, _: remote.multipart_status(5), {}),
    "/deleteFile": (lambda remote, _: remote.delete(5), {}),
    "/abortMultipartUpload": (lambda remote, _: remote.abort_multipart(5), {}),
    "/getFileDownloadUrl": (lambda remote, _: remote.download_url(5), {}),
    "/uploadSimpleFile": (upload(100), {}),
    "/initMultipartUploadFile": (upload(3 * KiB), {}),
    "/uploadFilePart": (upload(3 * KiB), {"/initMultipartUploadFile": encoded(OK_INT, "identity")}),
    "/completeMultipartUpload": (
        upload(3 * KiB),
        {
            "/initMultipartUploadFile": encoded(OK_INT, "identity"),
            "/uploadFilePart": encoded(OK_INT, "gzip"),
        },
    ),
}


@pytest.mark.parametrize("endpoint", list(CALLS))
def test_every_json_call_is_capped_and_asks_only_for_what_it_decodes(endpoint: str, tmp_path: Path) -> None:
    call, others = CALLS[endpoint]
    with HostileServer([]) as server:
        server.scripted.update(others)
        server.scripted[endpoint] = endless(8 * MiB)
        with (
            make_remote(server.url, max_json_bytes=256 * KiB, multipart_threshold=2 * KiB, part_size=KiB) as remote,
            pytest.raises(TransientError, match=too_large(endpoint, "256 KiB")),
        ):
            call(remote, tmp_path)
        seen = server.seen()
    assert [r for r in seen if r.path == endpoint]
    for request in seen:
        assert request.headers.get("accept-encoding") == "gzip, deflate", request


# -- encodings ------------------------------------------------------------------------------------

PAGE = {"code": 0, "message": None, "data": {"total": 2, "items": [listed_item(1), listed_item(2)]}}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "identity"])
def test_compressed_answers_are_read(encoding: str) -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = encoded(PAGE, encoding)
        with make_remote(server.url) as remote:
            assert [f.id for f in remote.list_chat(CHAT)] == [1, 2]


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_an_encoding_the_client_cannot_decode_is_malformed(encoding: str) -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = encoded(PAGE, encoding)
        with (
            make_remote(server.url) as remote,
            pytest.raises(TransientError, match=r"malformed answer from /listChatFiles \(.*encoding"),
        ):
            remote.list_chat(CHAT)
        assert len(server.seen("/listChatFiles")) == ATTEMPTS


# -- listing --------------------------------------------------------------------------------------


def test_a_page_longer_than_the_limit_asked_fails_the_listing() -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = many_items(5000)
        with (
            make_remote(server.url) as remote,
            pytest.raises(TransientError, match=r"\(a page of 5000 items where at most 1000 were asked\)"),
        ):
            remote.list_chat(CHAT)
        assert {r.query["limit"] for r in server.seen("/listChatFiles")} == {"1000"}


def test_a_page_exactly_as_long_as_the_limit_is_fine() -> None:
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = many_items(100)
        with make_remote(server.url, page_size=100) as remote:
            assert len(remote.list_chat(CHAT)) == 100  # ids 1..100 on every page: the second adds nothing


def test_a_listing_that_never_ends_is_cut_off() -> None:
    """A `total` of 10**12 and a fresh full page at every offset: the walk stops at the most files
    a listing may hold instead of paging (and keeping) forever."""
    with HostileServer([]) as server:
        server.scripted["/listChatFiles"] = fresh_pages(10**12)
        with (
            make_remote(server.url, page_size=100, max_listed_files=1000) as remote,
            pytest.raises(TransientError, match=r"\(listing holds more than 1000 files\)"),
        ):
            remote.list_chat(CHAT)
        assert len(server.seen("/listChatFiles")) == 11
