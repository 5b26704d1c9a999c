"""The control socket's HTTP API, as a Starlette app (the stack `syncd serve` runs on).

| request | does | answer |
|---|---|---|
| `GET /health` | is a daemon there | 200 `{"pid": n}` |
| `GET /status?folder=NAME&files=1` | the `status --json` document | 200 JSON |
| `POST /retry {"folders": [...]}` | failed jobs back in the queue, taken at once | 200 `{"requeued": n}` |
| `POST /pass {"folders": [...]}` | a full pass now, without waiting for its work | 202 `{"queued": [names]}` |
| `POST /reconcile {"folders", "max_delete"}` | a full pass, answered once its work is done | 200 `reconcile --json` |
| `POST /hold {"folder", "reason"}` | no passes and no transfers for the folder | 200 `{"held": bool}` |
| `POST /release {"folder"}` | undo `hold` | 200 `{"released": bool}` |
| `GET /events` | what the daemon does, one JSON object per line, until it stops | 200 NDJSON stream |

`folders` empty or absent means every folder. An unknown folder is a 404 naming it, a body
that is not what the request needs a 400; nothing a client sends stops the daemon. Only the
daemon's user can connect (see `server.py`), so there is no authentication on top.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from syncd.control.bus import EventBus

#: The largest request body the API reads.
MAX_BODY = 64 * 1024


class UnknownFolder(Exception):
    """A request named a folder the daemon's config does not have."""


class Refused(Exception):
    """The daemon cannot do this now (a held folder): 409 with this message."""


class Controls(Protocol):
    """What the daemon lets its control socket do (`syncd.daemon.controls` implements it)."""

    bus: EventBus

    def status(self, folders: list[str] | None, files: bool) -> dict[str, Any]: ...
    def retry(self, folders: list[str] | None) -> int: ...
    def pass_now(self, folders: list[str] | None) -> list[str]: ...
    def reconcile(self, folders: list[str] | None, max_delete: int | None) -> dict[str, Any]: ...
    def hold(self, folder: str, reason: str) -> bool: ...
    def release(self, folder: str) -> bool: ...


class BadRequest(Exception):
    """The body is not what the request needs: 400 with this message."""


def build_api(controls: Controls) -> Starlette:
    """The control API over `controls`."""

    async def health(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid()})

    async def status(request: Request) -> Response:
        folders = request.query_params.getlist("folder") or None
        files = request.query_params.get("files", "") in ("1", "true", "yes")
        return await _answer(controls.status, folders, files)

    async def retry(request: Request) -> Response:
        body = await _body(request)
        return await _answer(lambda f: {"requeued": controls.retry(f)}, _folders(body))

    async def pass_now(request: Request) -> Response:
        body = await _body(request)
        return await _answer(lambda f: {"queued": controls.pass_now(f)}, _folders(body), status=202)

    async def reconcile(request: Request) -> Response:
        body = await _body(request)
        max_delete = body.get("max_delete")
        if max_delete is not None and (type(max_delete) is not int or not 0 <= max_delete <= 100):
            return _error(400, "max_delete: expected a whole number from 0 to 100")
        return await _answer(controls.reconcile, _folders(body), max_delete)

    async def hold(request: Request) -> Response:
        body = await _body(request)
        reason = body.get("reason") or "held by the user"
        if not isinstance(reason, str) or len(reason) > 500:
            return _error(400, "reason: expected text of at most 500 characters")
        return await _answer(lambda f: {"held": controls.hold(f, reason)}, _folder(body))

    async def release(request: Request) -> Response:
        body = await _body(request)
        return await _answer(lambda f: {"released": controls.release(f)}, _folder(body))

    async def events(request: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            stream = controls.bus.open()  # before the hello: nothing after it is missed
            try:
                yield (json.dumps({"event": "hello", "pid": os.getpid()}) + "\n").encode()
                async for doc in stream:
                    yield (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
            finally:
                stream.close()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/retry", retry, methods=["POST"]),
        Route("/pass", pass_now, methods=["POST"]),
        Route("/reconcile", reconcile, methods=["POST"]),
        Route("/hold", hold, methods=["POST"]),
        Route("/release", release, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
    ])
    app.add_exception_handler(BadRequest, _bad_request)
    return app


async def _answer(call: Any, *args: Any, status: int = 200) -> Response:
    """Run a blocking control in the thread pool; an unknown folder is a 404."""
    try:
        doc = await run_in_threadpool(call, *args)
    except UnknownFolder as exc:
        return _error(404, str(exc))
    except Refused as exc:
        return _error(409, str(exc))
    return JSONResponse(doc, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (empty body: `{}`), at most MAX_BODY bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object")
    return doc


def _folders(body: dict[str, Any]) -> list[str] | None:
    folders = body.get("folders")
    if folders is None or folders == []:
        return None
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise BadRequest("folders: expected a list of folder names")
    return folders


def _folder(body: dict[str, Any]) -> str:
    folder = body.get("folder")
    if not isinstance(folder, str) or not folder:
        raise BadRequest("folder: expected a folder name")
    return folder


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))
