"""The stand-in ragent-oss gateway answers as the real one: the published client, unchanged, over real
HTTP, does everything it can do against it; and the stand-in's test hooks do what they say."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from ragent_oss import (
    AuthenticationError,
    DeleteRequest,
    NetworkError,
    PresignRequest,
    RagentOssClient,
    RagentOssError,
    SignRequest,
    UploadError,
    ValidationError,
)

from tests.support.leaks import no_new_threads
from tests.support.ragent_gateway import RagentGateway

KEY = "k-4f1e"
T = TypeVar("T")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client for what the published client cannot send (no proxy from the environment)."""
    with httpx.Client(trust_env=False) as client:
        yield client


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[RagentGateway]:
    with RagentGateway(KEY, root=tmp_path / "gw") as running:
        yield running


def with_client(gw: RagentGateway, scenario: Callable[[RagentOssClient], Awaitable[T]], key: str = KEY) -> T:
    """Run `scenario` with the published client pointed at the gateway (base URL with a trailing
    slash, as a config might spell it)."""

    async def main() -> T:
        async with RagentOssClient(gw.url + "/", key) as client:
            return await scenario(client)

    return asyncio.run(main())


def presign(gw: RagentGateway, filename: str = "a.txt", content_type: str = "text/plain") -> tuple[str, str]:
    """(object key, upload URL), asked of the gateway by the published client."""

    async def go(client: RagentOssClient) -> tuple[str, str]:
        answer = await client.presign(PresignRequest(filename, content_type, "team"))
        assert answer.headers == {"Content-Type": content_type}
        return answer.object_key, answer.upload_url

    return with_client(gw, go)


def signed(gw: RagentGateway, key: str, expires_in: int | None = None) -> str:
    async def go(client: RagentOssClient) -> str:
        return (await client.sign(SignRequest(key, expires_in))).url

    return with_client(gw, go)


# -- the published client against the stand-in ---------------------------------------------------


def test_health(gw: RagentGateway) -> None:
    health = with_client(gw, lambda client: client.health())
    assert (health.status, health.storage) == ("ok", "local")
    assert "x-api-key" not in gw.seen("health")[0].headers


def test_upload_is_presign_then_a_put_of_exactly_the_presigned_headers(gw: RagentGateway) -> None:
    data = b"quarterly numbers\n" * 100
    key = with_client(gw, lambda client: client.upload("reports/q3.txt", data, "text/plain", "team"))

    assert re.fullmatch(r"team/[0-9a-f]{32}/reports/q3\.txt", key)
    assert gw.objects() == {key: (len(data), sha(data))}
    stored = gw.stored(key)
    assert stored is not None and stored.content_type == "text/plain"
    assert [r.name for r in gw.seen()] == ["presign", "PUT"]
    presigned, put = gw.seen()
    assert presigned.headers["x-api-key"] == KEY
    assert put.headers["content-type"] == "text/plain"
    assert put.headers["content-length"] == str(len(data))
    assert "x-api-key" not in put.headers and "authorization" not in put.headers


def test_presign_answers_an_absolute_signed_url_on_this_server(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw, "notes/x.md", "text/markdown")
    assert url.startswith(gw.url + "/blob/")
    query = parse_qs(urlsplit(url).query)
    expires = int(query["exp"][0])
    assert abs(expires - (time.time() + 900)) < 5
    assert re.fullmatch(r"[0-9a-f]{64}", query["sig"][0])
    data = b"# notes"
    answer = http.put(url, content=data, headers={"Content-Type": "text/markdown"})
    assert (answer.status_code, answer.content) == (200, b"")
    assert answer.headers["etag"] == f'"{sha(data)}"'
    assert gw.read(key) == data


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * 1024 * 1024 + 7])
def test_upload_then_download_and_download_to_temp_are_byte_identical(gw: RagentGateway, size: int) -> None:
    data = (bytes(range(251)) * (size // 251 + 1))[:size]

    async def go(client: RagentOssClient) -> tuple[bytes, Path]:
        key = await client.upload("blob.bin", data, "application/octet-stream", "team")
        return await client.download(key), await client.download_to_temp(key, expires_in=60)

    downloaded, temp = with_client(gw, go)
    try:
        assert sha(downloaded) == sha(data)
        assert sha(temp.read_bytes()) == sha(data)
        assert temp.suffix == ".bin"
    finally:
        temp.unlink()
    assert list(gw.objects().values()) == [(size, sha(data))]


def test_download_answer_headers_and_no_redirect(gw: RagentGateway, http: httpx.Client) -> None:
    data = "résumé".encode()
    key = with_client(gw, lambda client: client.upload("cv.txt", data, "text/plain; charset=utf-8", "team"))
    answer = http.get(signed(gw, key, 3600))
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["content-length"] == str(len(data))
    assert answer.headers["etag"] == f'"{sha(data)}"'
    assert "GMT" in answer.headers["last-modified"]
    assert not answer.is_redirect


def test_delete_then_download_is_the_clients_404(gw: RagentGateway) -> None:
    async def go(client: RagentOssClient) -> tuple[bool, RagentOssError, RagentOssError, bool]:
        key = await client.upload("gone.txt", b"bye", "text/plain", "team")
        deleted = (await client.delete(DeleteRequest(key))).success
        with pytest.raises(RagentOssError) as plain:
            await client.download(key)
        with pytest.raises(RagentOssError) as to_temp:
            await client.download_to_temp(key)
        again = (await client.delete(DeleteRequest(key))).success  # idempotent
        return deleted, plain.value, to_temp.value, again

    deleted, plain, to_temp, again = with_client(gw, go)
    assert deleted and again
    assert type(plain) is RagentOssError and plain.status_code == 404
    assert json.loads(plain.body) == {"error": "not found"}  # download keeps the body as text
    assert type(to_temp) is RagentOssError and (to_temp.status_code, to_temp.body) == (404, None)
    assert gw.objects() == {}
    assert list((gw.root / "objects").iterdir()) == []


def test_sign_of_an_unknown_key_signs_and_its_get_is_404(gw: RagentGateway, http: httpx.Client) -> None:
    answer = http.get(signed(gw, "team/never/uploaded.txt"))
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})


def test_a_wrong_key_is_the_clients_authentication_error_everywhere_but_health(gw: RagentGateway) -> None:
    key = with_client(gw, lambda client: client.upload("a.txt", b"a", "text/plain", "team"))

    async def go(client: RagentOssClient) -> list[AuthenticationError]:
        assert (await client.health()).status == "ok"
        calls: list[Awaitable[object]] = [
            client.presign(PresignRequest("b.txt", "text/plain", "team")),
            client.upload("b.txt", b"b", "text/plain", "team"),
            client.sign(SignRequest(key)),
            client.download(key),
            client.download_to_temp(key),
            client.delete(DeleteRequest(key)),
        ]
        errors = []
        for call in calls:
            with pytest.raises(AuthenticationError) as caught:
                await call
            errors.append(caught.value)
        return errors

    errors = with_client(gw, go, key="wrong")
    assert {(e.status_code, json.dumps(e.body)) for e in errors} == {(401, '{"error": "invalid api key"}')}
    assert all(isinstance(e, RagentOssError) for e in errors)
    assert gw.objects() == {key: (1, sha(b"a"))}  # the delete did nothing


def test_a_key_revoked_at_runtime_is_refused_from_then_on(gw: RagentGateway, http: httpx.Client) -> None:
    with_client(gw, lambda client: client.sign(SignRequest("x")))
    gw.api_key = "rotated"
    with pytest.raises(AuthenticationError):
        with_client(gw, lambda client: client.sign(SignRequest("x")))
    assert with_client(gw, lambda client: client.sign(SignRequest("x")), key="rotated").url
    answer = http.post(f"{gw.url}/api/sign", json={"objectKey": "x"})  # no key at all
    assert (answer.status_code, answer.json()) == (401, {"error": "invalid api key"})


def test_an_expired_upload_url_is_403_and_stores_nothing(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw)
    gw.advance(899)
    assert http.put(url, content=b"in time", headers={"Content-Type": "text/plain"}).status_code == 200
    gw.advance(2)
    answer = http.put(url, content=b"too late", headers={"Content-Type": "text/plain"})
    assert (answer.status_code, answer.json()) == (403, {"error": "Request has expired"})
    assert gw.read(key) == b"in time"


def test_upload_ttl_and_an_injected_clock(tmp_path: Path, http: httpx.Client) -> None:
    now = [1_000_000.0]
    with RagentGateway(KEY, root=tmp_path / "gw", upload_ttl=10, clock=lambda: now[0]) as gw:
        key, url = presign(gw)
        assert parse_qs(urlsplit(url).query)["exp"] == ["1000010"]
        now[0] += 11
        assert http.put(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 403
        assert gw.objects() == {}


def test_an_expired_download_url_is_403(gw: RagentGateway, http: httpx.Client) -> None:
    key = with_client(gw, lambda client: client.upload("a.txt", b"a", "text/plain", "team"))
    url = signed(gw, key, 60)
    assert http.get(url).content == b"a"
    gw.advance(61)
    answer = http.get(url)
    assert (answer.status_code, answer.json()) == (403, {"error": "Request has expired"})
    default = parse_qs(urlsplit(signed(gw, key)).query)["exp"][0]
    assert abs(int(default) - (gw.now() + 86400)) < 5


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain; charset=utf-8", None])
def test_a_put_without_the_presigned_content_type_is_403(
    gw: RagentGateway, content_type: str | None, http: httpx.Client
) -> None:
    _, url = presign(gw, content_type="text/plain")
    headers = {} if content_type is None else {"Content-Type": content_type}
    answer = http.put(url, content=b"data", headers=headers)
    assert (answer.status_code, answer.json()) == (403, {"error": "SignatureDoesNotMatch"})
    assert gw.objects() == {}


def test_a_mangled_url_is_403(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw, "dir/a.txt")
    put = {"content": b"x", "headers": {"Content-Type": "text/plain"}}
    split = urlsplit(url)
    decoded_slashes = url.replace("%2F", "/")
    later = re.sub(r"exp=(\d+)", lambda m: f"exp={int(m[1]) + 1}", url)
    lower_hex = split._replace(path=split.path.replace("%2F", "%2f")).geturl()
    for bad in (decoded_slashes, later, lower_hex, url.replace("sig=", "sig=0")):
        assert http.put(bad, **put).status_code == 403, bad  # type: ignore[arg-type]
    assert http.get(url).status_code == 403  # an upload URL does not download
    assert http.put(signed(gw, key), **put).status_code == 403  # type: ignore[arg-type]
    assert gw.objects() == {}


def test_an_odd_key_round_trips_byte_identical(gw: RagentGateway) -> None:
    filename = "../up/ and  spaces/ünï ☃ 𝄞/../..//x\u200b.d..at"
    data = bytes(range(256)) * 40

    async def go(client: RagentOssClient) -> tuple[str, bytes, Path]:
        key = await client.upload(filename, data, "application/x-odd", "team ☃")
        return key, await client.download(key), await client.download_to_temp(key)

    key, downloaded, temp = with_client(gw, go)
    try:
        assert key.startswith("team ☃/") and key.endswith("/" + filename)
        assert sha(downloaded) == sha(data) == sha(temp.read_bytes())
    finally:
        temp.unlink()
    assert gw.objects() == {key: (len(data), sha(data))}
    put = gw.seen("PUT")[0]
    assert ".." not in urlsplit(put.path).path.split("/")  # quoted whole: no dot-segment
    # Nothing under root is named after the key.
    assert {p.name for p in (gw.root / "objects").iterdir()} == {sha(key.encode())}


def test_the_clients_temp_suffix_breaks_on_a_key_whose_last_dot_precedes_a_slash(gw: RagentGateway) -> None:
    """The published client names its temporary file after the text after the key's last `.`:
    with a `/` in it, the file cannot be created. A quirk of the client, not of the gateway."""

    async def go(client: RagentOssClient) -> bytes:
        key = await client.upload("v1.2/readme", b"r", "text/plain", "team")
        with pytest.raises(FileNotFoundError):
            await client.download_to_temp(key)
        return await client.download(key)

    assert with_client(gw, go) == b"r"


def test_a_chunked_put_is_accepted(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw, "stream.bin", "application/octet-stream")
    pieces = [b"a" * 100_000, b"", b"b" * 3, bytes(range(256)) * 1000]

    def body() -> Iterator[bytes]:
        yield from pieces

    answer = http.put(url, content=body(), headers={"Content-Type": "application/octet-stream"})
    data = b"".join(pieces)
    assert (answer.status_code, answer.headers["etag"]) == (200, f'"{sha(data)}"')
    put = gw.seen("PUT")[0]
    assert put.headers.get("transfer-encoding") == "chunked" and "content-length" not in put.headers
    assert gw.objects() == {key: (len(data), sha(data))}
    assert with_client(gw, lambda client: client.download(key)) == data


def test_a_second_put_to_the_same_url_replaces_the_same_key(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw)
    for data in (b"first", b"second, longer"):
        assert http.put(url, content=data, headers={"Content-Type": "text/plain"}).status_code == 200
    assert gw.objects() == {key: (14, sha(b"second, longer"))}
    assert len(list((gw.root / "objects").iterdir())) == 1
    assert list((gw.root / "tmp").iterdir()) == []


@pytest.mark.parametrize("expires_in", [0, -1, 604801])
def test_sign_outside_1_to_604800_seconds_is_the_clients_validation_error(gw: RagentGateway, expires_in: int) -> None:
    with pytest.raises(ValidationError) as caught:
        signed(gw, "team/x", expires_in)
    assert caught.value.status_code == 422
    assert signed(gw, "team/x", 1) and signed(gw, "team/x", 604800)


@pytest.mark.parametrize(
    "payload",
    [
        {"filename": "", "contentType": "text/plain", "category": "team"},
        {"filename": "a", "contentType": "", "category": "team"},
        {"filename": "a", "contentType": "text/plain", "category": ""},
        {"filename": "é" * 512 + "x", "contentType": "text/plain", "category": "team"},
        {"filename": "a", "contentType": "text/plain\r\nX-Evil: 1", "category": "team"},
    ],
)
def test_presign_refuses_what_it_cannot_key(gw: RagentGateway, payload: dict[str, str]) -> None:
    request = PresignRequest(payload["filename"], payload["contentType"], payload["category"])
    with pytest.raises(ValidationError):
        with_client(gw, lambda client: client.presign(request))


def test_presign_takes_a_filename_of_exactly_1024_bytes(gw: RagentGateway) -> None:
    key, _ = presign(gw, "é" * 512)
    assert key.endswith("/" + "é" * 512)


def test_json_endpoints_refuse_bad_bodies_unknown_routes_and_methods(gw: RagentGateway, http: httpx.Client) -> None:
    headers = {"X-API-Key": KEY}
    assert http.post(f"{gw.url}/api/sign", content=b"not json", headers=headers).status_code == 422
    assert http.post(f"{gw.url}/api/sign", json=["a"], headers=headers).status_code == 422
    assert http.post(f"{gw.url}/api/sign", json={"objectKey": 3}, headers=headers).status_code == 422
    assert http.post(f"{gw.url}/api/delete", json={}, headers=headers).status_code == 422
    big = http.post(f"{gw.url}/api/sign", json={"objectKey": "x" * 70_000}, headers=headers)
    assert big.status_code == 413
    missing = http.get(f"{gw.url}/api/list")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert http.get(f"{gw.url}/api/presign").status_code == 405
    with pytest.raises(RagentOssError) as caught:
        with_client(gw, lambda client: client.presign(PresignRequest("x" * 70_000, "text/plain", "team")))
    assert caught.value.status_code == 413


def test_an_object_over_max_object_is_413(tmp_path: Path, http: httpx.Client) -> None:
    with RagentGateway(KEY, root=tmp_path / "gw", max_object=1000) as gw:
        with pytest.raises(UploadError) as caught:
            with_client(gw, lambda client: client.upload("big", b"x" * 1001, "text/plain", "team"))
        assert caught.value.status == 413
        _, url = presign(gw)
        answer = http.put(url, content=iter([b"x" * 600, b"x" * 600]), headers={"Content-Type": "text/plain"})
        assert answer.status_code == 413
        assert with_client(gw, lambda client: client.upload("fits", b"x" * 1000, "text/plain", "team"))
        assert [size for size, _ in gw.objects().values()] == [1000]
        assert list((gw.root / "tmp").iterdir()) == []


def test_concurrent_uploads_each_land_whole(gw: RagentGateway) -> None:
    blobs = [bytes([i]) * (50_000 + i) for i in range(12)]

    async def go(client: RagentOssClient) -> list[str]:
        return await asyncio.gather(
            *(client.upload(f"f{i}", data, "application/octet-stream", "team") for i, data in enumerate(blobs))
        )

    keys = with_client(gw, go)
    assert gw.objects() == {key: (len(data), sha(data)) for key, data in zip(keys, blobs, strict=True)}


# -- the fault hooks ------------------------------------------------------------------------------


def upload(gw: RagentGateway, data: bytes = b"payload") -> str:
    return with_client(gw, lambda client: client.upload("f.txt", data, "text/plain", "team"))


def test_a_put_failure_stores_nothing_then_the_next_put_is_normal(gw: RagentGateway) -> None:
    gw.fail_next("PUT", status=503, headers={"Retry-After": "2"})
    assert gw.pending_faults("put") == 1
    with pytest.raises(UploadError) as caught:
        upload(gw)
    assert caught.value.status == 503
    assert gw.objects() == {} and gw.pending_faults("PUT") == 0
    key = upload(gw)
    assert gw.read(key) == b"payload"


def test_an_ambiguous_put_stores_and_fails_and_its_retry_keeps_one_key(gw: RagentGateway, http: httpx.Client) -> None:
    key, url = presign(gw)
    gw.fail_next("PUT", status=500, after_store=True)
    first = http.put(url, content=b"data", headers={"Content-Type": "text/plain"})
    assert first.status_code == 500
    assert gw.objects() == {key: (4, sha(b"data"))}  # stored all the same
    retry = http.put(url, content=b"data", headers={"Content-Type": "text/plain"})
    assert retry.status_code == 200
    assert gw.objects() == {key: (4, sha(b"data"))}
    gw.fail_next("PUT", status=500, after_store=True)
    with pytest.raises(UploadError) as caught:
        upload(gw, b"other")
    assert caught.value.status == 500 and len(gw.objects()) == 2


@pytest.mark.parametrize("after_store", [False, True])
def test_a_reset_put_is_the_clients_network_error(gw: RagentGateway, after_store: bool) -> None:
    gw.fail_next("PUT", reset=True, after_store=after_store)
    with pytest.raises(NetworkError) as caught:
        upload(gw)
    assert isinstance(caught.value.__cause__, httpx.HTTPError)
    assert len(gw.objects()) == (1 if after_store else 0)
    key = upload(gw, b"next")
    assert gw.read(key) == b"next"


@pytest.mark.parametrize("name", ["presign", "sign", "delete", "health"])
def test_a_json_endpoint_failure_is_the_clients_error_then_normal(gw: RagentGateway, name: str) -> None:
    key = upload(gw)
    calls: dict[str, Callable[[RagentOssClient], Awaitable[object]]] = {
        "presign": lambda client: client.presign(PresignRequest("a", "text/plain", "team")),
        "sign": lambda client: client.sign(SignRequest(key)),
        "delete": lambda client: client.delete(DeleteRequest(key)),
        "health": lambda client: client.health(),
    }
    gw.fail_next(name, status=502, body=b'{"error": "bad gateway"}')
    with pytest.raises(RagentOssError) as caught:
        with_client(gw, calls[name])
    assert (type(caught.value), caught.value.status_code, caught.value.body) == (
        RagentOssError,
        502,
        {"error": "bad gateway"},
    )
    assert gw.read(key) == b"payload"  # a failed delete deleted nothing
    with_client(gw, calls[name])
    gw.fail_next(name, reset=True)
    with pytest.raises(NetworkError):
        with_client(gw, calls[name])


def test_a_delete_that_deletes_then_fails(gw: RagentGateway) -> None:
    key = upload(gw)
    gw.fail_next("delete", status=500, after_store=True)
    with pytest.raises(RagentOssError) as caught:
        with_client(gw, lambda client: client.delete(DeleteRequest(key)))
    assert caught.value.status_code == 500
    assert gw.objects() == {}


def test_download_faults_then_normal(gw: RagentGateway) -> None:
    data = b"0123456789" * 1000
    key = upload(gw, data)
    gw.fail_next("GET", status=503)
    with pytest.raises(RagentOssError) as caught:
        with_client(gw, lambda client: client.download(key))
    assert caught.value.status_code == 503
    gw.fail_next("GET", truncate=100)
    with pytest.raises(NetworkError):
        with_client(gw, lambda client: client.download(key))
    gw.fail_next("get", reset=True)
    with pytest.raises(NetworkError):
        with_client(gw, lambda client: client.download(key))
    assert with_client(gw, lambda client: client.download(key)) == data
    with pytest.raises(ValueError):
        gw.fail_next("PUT", truncate=1)


def test_a_stall_times_out_and_ends_when_the_gateway_stops(tmp_path: Path, http: httpx.Client) -> None:
    with no_new_threads(), RagentGateway(KEY, root=tmp_path / "gw") as gw:
        gw.fail_next("sign", stall=60)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            http.post(f"{gw.url}/api/sign", json={"objectKey": "x"}, headers={"X-API-Key": KEY}, timeout=0.3)
        assert with_client(gw, lambda client: client.sign(SignRequest("x"))).url
        gw.fail_next("health", stall=60)  # left stalling: stop() must end it
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{gw.url}/api/health", timeout=0.3)
    assert time.monotonic() - started < 10


def test_faults_queue_in_order_and_seen_records_every_request(gw: RagentGateway, http: httpx.Client) -> None:
    gw.fail_next("sign", status=500)
    gw.fail_next("sign", status=429, headers={"Retry-After": "1"})
    statuses = [
        http.post(f"{gw.url}/api/sign", json={"objectKey": "x"}, headers={"X-API-Key": KEY}).status_code
        for _ in range(3)
    ]
    assert statuses == [500, 429, 200]
    assert [(r.method, r.route) for r in gw.seen()] == [("POST", "/api/sign")] * 3
    method, path, headers = gw.seen()[0]
    assert (method, path, headers["x-api-key"]) == ("POST", "/api/sign", KEY)


def test_the_gateway_leaves_no_threads_behind(tmp_path: Path) -> None:
    with no_new_threads(), RagentGateway(KEY, root=tmp_path / "gw") as gw:
        key = upload(gw)
        assert with_client(gw, lambda client: client.download(key)) == b"payload"
