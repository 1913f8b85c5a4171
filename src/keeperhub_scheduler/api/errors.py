"""Errors as answers: one shape per kind, declared in the OpenAPI schema.

* 422 ``{"detail": [{"field": ..., "message": ...}]}``: pydantic's errors and the scheduler's
  ``InvalidScheduleError`` alike, each naming the field and the reason.
* 404, 409, 401 ``{"detail": "..."}``: unknown ids, conflicts with the current state, no token.
* 503 when the database cannot be reached (no input causes it, so it is not a 500 either).
* 500 ``{"detail": "...", "request_id": ...}`` for anything else: ``CatchAll`` answers it, and
  logs the error (with its traceback, on one line) under the same request id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keeperhub_scheduler.errors import ConflictError, InvalidScheduleError, NotFoundError
from keeperhub_scheduler.management.models import (
    ErrorBody,
    ValidationErrorBody,
    error_message,
    field_name,
)

log = logging.getLogger("keeperhub_scheduler.api")

_DESCRIPTIONS = {
    401: "Missing or invalid bearer token",
    404: "No such schedule, run or workflow",
    409: "Conflicts with the current state",
    413: "The request body is larger than SCHEDULER_API_MAX_BODY_BYTES",
    422: "Invalid input: each entry names the field and the reason",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for the OpenAPI schema."""
    return {
        code: {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": _DESCRIPTIONS[code],
        }
        for code in codes
    }


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidScheduleError, _schedule_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(NotFoundError, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(ConflictError, _conflict)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(InterfaceError, _unavailable)


def _invalid(entries: list[tuple[str, str]]) -> JSONResponse:
    body = {"detail": [{"field": field, "message": error_message(text)} for field, text in entries]}
    return JSONResponse(body, status_code=422)


async def _request_invalid(_: Request, error: RequestValidationError) -> JSONResponse:
    entries = [
        # A body that is not JSON at all: its "location" is a character offset, not a field.
        ("body" if e["type"] == "json_invalid" else field_name(tuple(e["loc"])), str(e["msg"]))
        for e in error.errors()
    ]
    return _invalid(entries)


async def _http_error(request: Request, error: HTTPException) -> Response:
    # FastAPI answers 400 for a body it cannot decode (not UTF-8); to a client that is invalid
    # input like any other, so it gets the one 422 shape. Nothing of ours raises a 400.
    if error.status_code == 400:
        return _invalid([("body", "the body is not valid JSON")])
    return await http_exception_handler(request, error)


async def _schedule_invalid(_: Request, error: InvalidScheduleError) -> JSONResponse:
    return _invalid([(error.field, error.message)])


def _detail(code: int, text: str) -> JSONResponse:
    return JSONResponse({"detail": error_message(text)}, status_code=code)


async def _not_found(_: Request, error: NotFoundError) -> JSONResponse:
    return _detail(status.HTTP_404_NOT_FOUND, str(error))


async def _conflict(_: Request, error: ConflictError) -> JSONResponse:
    return _detail(status.HTTP_409_CONFLICT, str(error))


async def _unavailable(_: Request, error: Exception) -> JSONResponse:
    log.error("database unavailable", extra={"error": type(error).__name__})
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not reachable; try again")


class CatchAll:
    """ASGI middleware: an error no handler answered becomes a JSON 500 with a request id, never
    a bare text page or a dropped connection. The id is logged with the error, so an operator
    finds the traceback from what the client was told."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            request_id = uuid.uuid4().hex
            log.exception(
                "unexpected error answering a request",
                extra={"request_id": request_id, "method": scope["method"], "path": scope["path"]},
            )
            if started:  # half an answer is out: nothing to add, the server closes the connection
                return
            body = {"detail": f"internal error (request id {request_id})", "request_id": request_id}
            answer = JSONResponse(body, 500, {"X-Request-ID": request_id})
            await answer(scope, receive, send)
