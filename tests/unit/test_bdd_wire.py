"""The BDD protocol's answers: status codes and envelopes to syncd errors and values."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.base import RemoteFile
from syncd.remote.bdd.chatfile import FileStatus
from syncd.remote.bdd.errors import Call, check_status, parse_retry_after, safe_origin
from syncd.remote.bdd.wire import (
    DecodedBody,
    describe_size,
    envelope_data,
    expect_int,
    parse_multipart_status,
    parse_page,
    read_error_body,
    read_json_capped,
)

CALL = Call(action="upload", subject="'a.txt'", endpoint="/uploadSimpleFile", remote="http://files:80")
ITEM = {
    "id": 7,
    "filename": "a.txt",
    "size": 3,
    "hashcode": "ab" * 32,
    "upload_at": "2024-05-01T12:00:00",
    "user_id": "u",
    "status": "ok",
    "biz": "chat",
    "biz_params": {"chat_id": "c"},
}


def answer(
    status: int, payload: object = None, *, body: bytes | None = None, **headers: str
) -> httpx.Response:
    content = body if body is not None else json.dumps(payload).encode()
    return httpx.Response(
        status, content=content, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def test_a_good_envelope_gives_its_data() -> None:
    assert envelope_data(answer(200, {"code": 0, "data": 42, "message": None}), CALL) == 42
    assert expect_int(42, CALL) == 42


@pytest.mark.parametrize(
    "response",
    [
        answer(200, body=b"<html>oops</html>"),
        answer(200, body=b""),
        answer(200, [1, 2]),
        answer(200, {"data": 1}),
        answer(200, {"code": "0", "data": 1}),
        answer(200, {"code": True, "data": 1}),
        answer(200, {"code": 0, "message": None}),
        answer(200, {"code": 0, "data": None, "message": None}),
        answer(200, {"code": 0, "data": 1, "message": 5}),
    ],
)
def test_anything_but_the_envelope_is_malformed_and_transient(response: httpx.Response) -> None:
    with pytest.raises(
        TransientError, match=r"upload 'a.txt' failed: malformed answer from /uploadSimpleFile"
    ):
        envelope_data(response, CALL)


@pytest.mark.parametrize("data", ["7", 7.0, True, None, [7]])
def test_a_wrongly_typed_id_is_malformed(data: object) -> None:
    with pytest.raises(TransientError, match="malformed"):
        expect_int(data, CALL)


def test_an_error_code_is_an_item_error_with_the_message() -> None:
    with pytest.raises(ItemError, match="upload 'a.txt' failed: name taken"):
        envelope_data(answer(200, {"code": 3, "data": None, "message": "name taken"}), CALL)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_transient(status: int) -> None:
    with pytest.raises(TransientError) as caught:
        check_status(answer(status, body=b"<html>down</html>", content_type="text/html"), CALL)
    assert type(caught.value) is TransientError
    assert caught.value.status == status
    assert "<html>" not in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_statuses_are_fatal(status: int) -> None:
    with pytest.raises(FatalError, match="authentication failed for remote http://files:80"):
        check_status(answer(status, {"code": status, "data": None, "message": "bad key"}), CALL)


@pytest.mark.parametrize("status", [301, 400, 404, 409, 413, 422])
def test_other_statuses_are_item_errors(status: int) -> None:
    with pytest.raises(ItemError, match=f"HTTP {status} from /uploadSimpleFile: nope"):
        check_status(answer(status, {"code": status, "data": None, "message": "nope"}), CALL)


def test_retry_after_is_carried() -> None:
    with pytest.raises(TransientError) as caught:
        check_status(answer(429, {}, retry_after="7"), CALL)
    assert caught.value.retry_after == 7.0


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0  # in the past
    for junk in (None, "", "soon", "-5", "nan", "inf"):
        assert parse_retry_after(junk) is None


def test_safe_origin_drops_credentials_and_paths() -> None:
    assert (
        safe_origin(httpx.URL("https://user:pw@files.example.com:8443/api?k=v"))
        == "https://files.example.com:8443"
    )
    assert safe_origin(httpx.URL("http://files")) == "http://files"


def test_parse_page() -> None:
    page = parse_page({"total": 1, "items": [ITEM]}, CALL)
    assert page.total == 1
    [f] = page.items
    assert (f.id, f.filename, f.size, f.status) == (7, "a.txt", 3, FileStatus.OK)
    assert f.upload_at == datetime(2024, 5, 1, 12, tzinfo=UTC)  # naive taken as UTC
    later = parse_page({"total": 1, "items": [ITEM | {"upload_at": "2024-05-01T12:00:00+02:00"}]}, CALL)
    assert later.items[0].upload_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_page({"total": 1, "items": [ITEM | {"status": "quarantined"}]}, CALL).items[0].status is (
        FileStatus.ERROR
    )


@pytest.mark.parametrize(
    ("hashcode", "sha256"),
    [("ab" * 32, "ab" * 32), ("AB" * 32, "ab" * 32), ("md5:abc", None), ("", None), ("ab" * 31, None)],
)
def test_a_listed_file_in_syncds_words(hashcode: str, sha256: str | None) -> None:
    [f] = parse_page({"total": 1, "items": [ITEM | {"hashcode": hashcode}]}, CALL).items
    assert f.entry() == RemoteFile(
        path="a.txt", version="7", size=3, sha256=sha256, written_at=datetime(2024, 5, 1, 12, tzinfo=UTC), seq=7
    )


@pytest.mark.parametrize(
    "change",
    [
        {"id": None},
        {"size": "3"},
        {"filename": 1},
        {"hashcode": None},
        {"upload_at": "yesterday"},
        {"status": 1},
    ],
)
def test_a_bad_file_entry_is_malformed(change: dict[str, object]) -> None:
    with pytest.raises(TransientError, match="malformed"):
        parse_page({"total": 1, "items": [ITEM | change]}, CALL)


def test_parse_multipart_status() -> None:
    data = {
        "file_id": 3,
        "status": "uploading",
        "part_size": 10,
        "uploaded_parts": [2, 1],
        "remaining_parts": None,
    }
    status = parse_multipart_status(data, CALL)
    assert (status.uploaded_parts, status.remaining_parts, status.status) == (
        (1, 2),
        (),
        FileStatus.UPLOADING,
    )
    for bad in ({"part_size": 0}, {"uploaded_parts": [0]}, {"remaining_parts": ["1"]}, {"file_id": None}):
        with pytest.raises(TransientError, match="malformed"):
            parse_multipart_status(data | bad, CALL)


def test_a_page_longer_than_the_limit_asked_is_malformed() -> None:
    items = [ITEM | {"id": n} for n in range(1, 4)]
    assert len(parse_page({"total": 3, "items": items}, CALL, limit=3).items) == 3
    with pytest.raises(TransientError, match=r"\(a page of 3 items where at most 2 were asked\)"):
        parse_page({"total": 3, "items": items}, CALL, limit=2)


# -- reading answers within bounds ----------------------------------------------------------------

KiB = 1024


class Pieces(httpx.SyncByteStream):
    """A streamed body in the given pieces; `pulled` counts the bytes handed out so far."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.pulled += len(piece)
            yield piece


def streamed(body: bytes, *, status: int = 200, piece: int = 1000, **headers: str) -> httpx.Response:
    """An answer not yet read, its body arriving in `piece`-byte reads."""
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    return httpx.Response(
        status, headers={k.replace("_", "-"): v for k, v in headers.items()}, stream=Pieces(pieces)
    )


def compress(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


GZIP, ZLIB, RAW = zlib.MAX_WBITS | 16, zlib.MAX_WBITS, -zlib.MAX_WBITS
ENVELOPE = json.dumps({"code": 0, "data": 42, "message": None}).encode()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("", ENVELOPE),
        ("identity", ENVELOPE),
        ("gzip", compress(ENVELOPE, GZIP)),
        ("GZip", compress(ENVELOPE, GZIP)),
        ("x-gzip", compress(ENVELOPE, GZIP)),
        ("deflate", compress(ENVELOPE, ZLIB)),
        ("deflate", compress(ENVELOPE, RAW)),  # raw deflate, as some servers send it
        ("identity, gzip", compress(ENVELOPE, GZIP)),
    ],
)
@pytest.mark.parametrize("piece", [1, 5, 1000])
def test_plain_and_compressed_answers_are_decoded(encoding: str, body: bytes, piece: int) -> None:
    response = streamed(body, piece=piece, content_encoding=encoding)
    assert envelope_data(response, CALL) == 42


def test_the_cap_counts_decompressed_bytes_and_is_inclusive() -> None:
    exact = b" " * (100 * KiB - len(ENVELOPE)) + ENVELOPE
    assert envelope_data(streamed(compress(exact, GZIP), content_encoding="gzip"), CALL, cap=100 * KiB) == 42
    over = b" " + exact
    with pytest.raises(TransientError, match=r"\(answer larger than 100 KiB\)"):
        envelope_data(streamed(compress(over, GZIP), content_encoding="gzip"), CALL, cap=100 * KiB)
    with pytest.raises(TransientError, match=r"\(answer larger than 100 KiB\)"):
        envelope_data(streamed(over), CALL, cap=100 * KiB)


def test_no_decompression_step_makes_more_than_64_kib() -> None:
    bomb = compress(b"\0" * (64 * 1024 * KiB), GZIP)  # 64 MiB in about 64 KiB: one network read
    response = streamed(bomb, piece=len(bomb), content_encoding="gzip")
    sizes = [len(piece) for piece in DecodedBody(response, CALL)]
    assert sum(sizes) == 64 * 1024 * KiB
    assert max(sizes) <= 64 * KiB


def test_reading_stops_at_the_cap() -> None:
    stream = Pieces([b" " * KiB] * 10_000)  # 10 MiB of whitespace
    response = httpx.Response(200, stream=stream)
    with pytest.raises(TransientError, match=r"\(answer larger than 64 KiB\)"):
        read_json_capped(response, 64 * KiB, CALL)
    assert stream.pulled <= 65 * KiB


def test_a_content_length_past_the_cap_is_refused_unread() -> None:
    stream = Pieces([b" " * KiB] * 100)
    response = httpx.Response(200, headers={"Content-Length": str(100 * KiB)}, stream=stream)
    with pytest.raises(TransientError, match=r"\(answer larger than 64 KiB\)"):
        read_json_capped(response, 64 * KiB, CALL)
    assert stream.pulled == 0


def test_compressed_bytes_that_make_nothing_are_capped_too() -> None:
    header = compress(b"", GZIP)[:10]
    empty_block = b"\x00\x00\x00\xff\xff"  # a stored deflate block, not final, of no bytes
    stream = Pieces([header] + [empty_block * 100] * 200)  # 100 KiB of gzip, not one byte of JSON
    response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=stream)
    with pytest.raises(TransientError, match=r"\(answer larger than 32 KiB\)"):
        read_json_capped(response, 32 * KiB, CALL)
    assert stream.pulled <= 33 * KiB


@pytest.mark.parametrize(
    ("encoding", "body", "why"),
    [
        ("br", ENVELOPE, "content encoding 'br' cannot be decoded"),
        ("zstd", ENVELOPE, "content encoding 'zstd' cannot be decoded"),
        ("gzip, gzip", compress(compress(ENVELOPE, GZIP), GZIP), "content encoding 'gzip, gzip' cannot be decoded"),
        ("gzip", b"not gzip at all", "the compressed answer is damaged"),
        ("gzip", compress(ENVELOPE, GZIP)[:-6], "the compressed answer is cut short"),
        ("gzip", b"", "the compressed answer is cut short"),
        ("deflate", b"x", "the compressed answer is cut short"),
        ("gzip", compress(ENVELOPE, GZIP) + b"more", "data after the end of the compressed answer"),
        ("gzip", compress(ENVELOPE, GZIP) * 2, "data after the end of the compressed answer"),
    ],
)
def test_an_answer_that_cannot_be_decoded_is_malformed(encoding: str, body: bytes, why: str) -> None:
    with pytest.raises(TransientError, match=rf"malformed answer from /uploadSimpleFile \({why}"):
        envelope_data(streamed(body, content_encoding=encoding), CALL)


def test_json_nested_too_deep_is_malformed() -> None:
    with pytest.raises(TransientError, match=r"\(not JSON\)"):
        envelope_data(streamed(b"[" * 200_000 + b"]" * 200_000), CALL)


def test_an_error_answer_is_read_only_a_little() -> None:
    stream = Pieces([b"x" * KiB] * 10_000)
    response = httpx.Response(503, headers={"Content-Type": "text/plain"}, stream=stream)
    with pytest.raises(TransientError, match=r"HTTP 503 from /uploadSimpleFile: xxx") as caught:
        envelope_data(response, CALL)
    assert caught.value.status == 503
    assert stream.pulled <= 65 * KiB


def test_an_error_answer_keeps_its_message_and_status_whatever_its_body() -> None:
    message = json.dumps({"code": 409, "data": None, "message": "name taken"}).encode()
    gzipped = streamed(compress(message, GZIP), status=409, content_encoding="gzip")
    with pytest.raises(ItemError, match="HTTP 409 from /uploadSimpleFile: name taken"):
        envelope_data(gzipped, CALL)
    for encoding, body in (("br", message), ("gzip", b"damaged")):
        with pytest.raises(ItemError, match=r"HTTP 409 from /uploadSimpleFile$"):
            envelope_data(streamed(body, status=409, content_encoding=encoding), CALL)
    bomb = compress(b" " * (256 * 1024 * KiB), GZIP)
    assert len(read_error_body(streamed(bomb, content_encoding="gzip"), CALL)) == 64 * KiB


def test_describe_size() -> None:
    assert [describe_size(n) for n in (16 * 1024 * KiB, 64 * KiB, 1000, 1536 * KiB)] == [
        "16 MiB", "64 KiB", "1000 bytes", "1536 KiB"
    ]
