"""What a user has stored: the listings of a chat and of directories, and deleting a file.

Invariants: each endpoint sees only the requesting user's files (another user's id is "not
found"); a page holds at most 1000 items. A delete first checks the file is the user's, then
fences its part writers, so nothing of another user's upload is touched and no part still
arriving writes into a deleted upload.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from syncd.server import params as p
from syncd.server.problems import ApiError, envelope
from syncd.server.service import Service, endpoint, log


@endpoint()
async def delete_file(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    file_id = p.query_int(request, "file_id", minimum=1)
    service.store.get(user, file_id)  # 404 before fencing anything of another user's
    service.stop_writers(file_id)
    service.store.delete(user, file_id)
    log.info("deleted", user=user, file_id=file_id)
    return envelope(file_id)


@endpoint()
async def list_chat_files(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    chat_id = request.query_params.get("chat_id")
    if not chat_id:
        raise ApiError(400, "missing query parameter 'chat_id'")
    offset = p.query_int(request, "offset", default=0, minimum=0)
    limit = p.query_int(request, "limit", default=100, minimum=1, maximum=1000)
    total, files = service.store.list_chat(user, chat_id, offset, limit)
    return envelope({"total": total, "items": [f.info() for f in files]})


@endpoint()
async def list_directories(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    limit, offset = p.page(request)
    order = p.sort_order(request, p.DIRECTORY_ORDER)
    total, items = service.store.list_directories(user, request.query_params.get("name"), order, limit, offset)
    return envelope({"total": total, "items": items})


@endpoint()
async def list_files_in_directory(service: Service, request: Request) -> Response:
    user = p.user_of(request)
    directory_id = p.query_int(request, "directory_id", minimum=0)
    limit, offset = p.page(request)
    order = p.sort_order(request, p.FILE_ORDER)
    total, files = service.store.list_directory_files(
        user, directory_id, request.query_params.get("name"), order, limit, offset
    )
    return envelope({"total": total, "items": [f.info() for f in files]})
