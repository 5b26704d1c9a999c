"""The file service's one error type and its envelope.

Every failure a client can cause becomes an `ApiError` with an HTTP status and
a human message; the app turns it into `{"code": status, "data": null,
"message": ...}`. Anything else is a bug: logged here, answered as a bare 500
with no stack trace.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A request the service refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def envelope(data: Any) -> JSONResponse:
    """A successful answer: `{"code": 0, "data": data, "message": null}`."""
    return JSONResponse({"code": 0, "data": data, "message": None})


def error_envelope(status: int, message: str) -> JSONResponse:
    """A refusal: HTTP `status`, `code` = status, and the message."""
    return JSONResponse({"code": status, "data": None, "message": message}, status_code=status)
