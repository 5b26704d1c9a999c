"""Downloads: a file by id, a signed link to it, and the link's download.

Invariants: only a complete file (`ok`) is served, from a blob opened before the answer
starts, so a delete while it streams cannot cut it short. A signed link names its file, owner
and expiry under the service's key; `/signedDownload` needs no API key, and serves only what
such a link names, until it expires.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from syncd.server import params as p
from syncd.server.filestream import OpenFileResponse
from syncd.server.problems import ApiError, envelope
from syncd.server.service import Service, endpoint
from syncd.server.signing import sign, verify


def _file_response(service: Service, user: str, file_id: int) -> Response:
    f = service.store.get(user, file_id)
    if f.status != "ok":
        raise ApiError(409, f"file {file_id} is not ready (status {f.status})")
    try:  # opened now: a delete while the answer streams cannot cut it short
        blob = open(service.store.blob_path(file_id), "rb")  # noqa: SIM115 - closed by the response
    except FileNotFoundError:
        raise ApiError(404, f"file {file_id} not found") from None
    return OpenFileResponse(blob, filename=f.filename)


@endpoint()
async def download(service: Service, request: Request) -> Response:
    return _file_response(service, p.user_of(request), p.query_int(request, "file_id", minimum=1))


@endpoint()
async def download_url(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.query_int(request, "file_id", minimum=1)
    expires_in = p.query_int(request, "expires_in", default=600, minimum=1, maximum=7 * 86400)
    service.store.get(user, file_id)
    base = service.base_url(request)
    expires = int(time.time()) + expires_in
    query = urlencode(
        {"file_id": file_id, "expires": expires, "signature": sign(service.key, file_id, user, expires)}
    )
    return envelope(f"{base}/signedDownload?{query}")


@endpoint(auth=False)
async def signed_download(service: Service, request: Request) -> Response:
    file_id = p.query_int(request, "file_id", minimum=1)
    expires = p.query_int(request, "expires")
    signature = request.query_params.get("signature", "")
    owner = service.store.owner_of(file_id)
    if owner is None or not verify(service.key, file_id, owner, expires, signature, time.time()):
        raise ApiError(403, "download link is invalid or has expired")
    return _file_response(service, owner, file_id)
