"""The BDD protocol's answers: status codes and envelopes to syncd errors and values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from syncd.errors import FatalError, ItemError, TransientError
from syncd.remote.base import FileStatus
from syncd.remote.bdd_errors import Call, check_status, parse_retry_after, safe_origin
from syncd.remote.bdd_wire import envelope_data, expect_int, parse_multipart_status, parse_page

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
