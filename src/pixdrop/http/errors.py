"""The one place errors become responses: RFC 9457 ``application/problem+json``.

A full database (SQLite's "database or disk is full", PostgreSQL's ``disk_full``; the blob
stores translate their own ``ENOSPC``) is ``InsufficientStorage`` (507), not an internal
error: it is the operator's to fix, and the same request succeeds afterwards.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from pixdrop.errors import (
    BadRequest,
    InsufficientStorage,
    InvalidUploadRequest,
    NotFound,
    PixdropError,
)
from pixdrop.protocols.problem import MEDIA_TYPE, problem_body

errors_log = logging.getLogger("pixdrop.errors")

#: PostgreSQL's SQLSTATE for "could not extend file: No space left on device".
_PG_DISK_FULL = "53100"


def problem_response(error: PixdropError, request: Request) -> JSONResponse:
    body = problem_body(error, instance=request.url.path)
    return JSONResponse(
        body, status_code=error.status, headers=error.headers, media_type=MEDIA_TYPE
    )


async def _pixdrop_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PixdropError)
    if isinstance(exc, InsufficientStorage):  # the operator must hear of it
        errors_log.warning("disk full: %s %s: %s", request.method, request.url.path, exc)
    return problem_response(exc, request)


def is_disk_full(exc: BaseException) -> bool:
    """Whether *exc*, or an error it wraps or was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.Error) and current.sqlite_errorcode == sqlite3.SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:  # psycopg's DiskFull
            return True
        wrapped = current.orig if isinstance(current, DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return False


async def _maybe_disk_full(request: Request, exc: Exception) -> JSONResponse:
    """A database that is full: 507; any other database error: raised on, to the generic 500
    (``http.middleware``)."""
    if not is_disk_full(exc):
        raise exc
    error = InsufficientStorage(
        "The server's disk or database is full: the request could not be stored. Nothing "
        "stored before was lost; try again later, once there is room."
    )
    errors_log.warning("disk full: %s %s: %r", request.method, request.url.path, exc)
    return problem_response(error, request)


def invalid_request(errors: Sequence[Any], skip: int = 0) -> InvalidUploadRequest:
    """A 400 problem listing pydantic's field errors (``skip`` drops leading location parts)."""
    problems = [
        {"field": ".".join(str(p) for p in err["loc"][skip:]) or "body", "message": err["msg"]}
        for err in errors
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidUploadRequest(f"The request is invalid: {summary}.", errors=problems)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI locations start with where the value was ("query", "body"): drop that.
    return problem_response(invalid_request(exc.errors(), skip=1), request)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Router-level errors (unknown path, wrong method) in the same problem format."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (400, 404):
        error = (
            NotFound(f"Nothing is at {request.url.path}.")
            if exc.status_code == 404
            else BadRequest(str(exc.detail))
        )
        error.headers.update(exc.headers or {})
        return problem_response(error, request)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "app" in request.scope:
        # The router names the methods of the first route that matched the path only.
        headers["Allow"] = ", ".join(allowed_methods(request))
    body = {
        "type": "about:blank",
        "title": str(exc.detail),
        "status": exc.status_code,
        "detail": f"{exc.detail}: {request.method} {request.url.path}.",
    }
    return JSONResponse(body, status_code=exc.status_code, headers=headers, media_type=MEDIA_TYPE)


#: The methods pixdrop's routes use, in the order ``Allow`` lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (RFC 9110 §15.5.6):
    each is tried against the routes as the router itself would (``BaseRoute.matches``)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in routes
            if isinstance(route, BaseRoute)
        )
    ]


def internal_error(request_id: str) -> JSONResponse:
    """The generic 500 problem: says what to quote, reveals nothing about the failure."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": "Internal server error",
        "status": 500,
        "detail": f"The server failed on this request; quote request id {request_id} "
        "when reporting it.",
        "request_id": request_id,
    }
    return JSONResponse(body, status_code=500, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on *app*."""
    app.add_exception_handler(PixdropError, _pixdrop_error)
    # Not OSError: a handler would turn an OSError raised after the response started (a
    # client gone mid-download) into Starlette's RuntimeError. The stores translate their own
    # ENOSPC (``storage.files.room``); the database's comes wrapped in DBAPIError.
    app.add_exception_handler(DBAPIError, _maybe_disk_full)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
