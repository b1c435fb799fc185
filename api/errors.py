"""One mapping from errors to HTTP; every error body is {"detail", and "field" or "status"}."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.schemas import ErrorBody
from shared import db

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A domain error with its HTTP status; raised by handlers, rendered by `api_error`."""

    def __init__(
        self, status_code: int, detail: str, *, field: str | None = None, status: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.body = ErrorBody(detail=detail, field=field, status=status)


def _respond(
    status_code: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)


class DatabaseUnavailable(Exception):
    """The database did not answer in time (raised by GET /ready)."""


# Each answers 503 with Retry-After: the pool reconnects on a later acquire by itself.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (*db.CONNECTION_ERRORS, DatabaseUnavailable)
RETRY_AFTER_SECONDS = 1
_WARN_EVERY_SECONDS = 10.0


class _Warned:
    """When an outage was last logged: one line per interval, not one per refused request."""

    at = float("-inf")


def api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return _respond(exc.status_code, exc.body)


_PATH = re.compile(r"`\$\.([\w.\[\]]+)`")


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar's body/param validation, reworded so the message starts with the field's name."""
    field: str | None = None
    message = exc.detail
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict) and extra[0].get("source") == "path":
        # The one typed path parameter is task_id, a UUID.
        key = str(extra[0].get("key"))
        raw = request.path_params.get(key)
        return _respond(400, ErrorBody(detail=f"{key}: {raw!r} is not a UUID", field=key))
    if extra and isinstance(extra[0], dict):
        first = extra[0]
        message = str(first.get("message", message))
        field = first.get("key") or None
        if field is None:
            found = _PATH.search(message)
            field = found.group(1) if found else None
        # msgspec names unknown and missing fields only in its message.
        named = re.search(r"(?:unknown|missing required) field `([^`]+)`", message)
        if named:  # inside an array's item (POST /tasks) the path says which: "[3].colour"
            item = field if field and field.startswith("[") else None
            field = f"{item}.{named.group(1)}" if item else named.group(1)
        message = _PATH.sub("", message).strip(" -")
    detail = f"{field}: {message}" if field else message
    return _respond(400, ErrorBody(detail=detail, field=field))


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _respond(exc.status_code, ErrorBody(detail=str(exc.detail)), exc.headers)


def database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    now = time.monotonic()
    if now - _Warned.at >= _WARN_EVERY_SECONDS:
        _Warned.at = now
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
    # A socket error's text names the database's address, which clients need not learn.
    if isinstance(exc, db.DatabaseTimeout):
        reason = str(exc)
    elif isinstance(exc, OSError):
        reason = type(exc).__name__
    else:
        reason = str(exc) or type(exc).__name__
    return _respond(
        503,
        ErrorBody(detail=f"database unavailable: {reason}"),
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(HTTP_500_INTERNAL_SERVER_ERROR, ErrorBody(detail="internal server error"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable),
    # A value asyncpg cannot encode is a bug here, not an outage, though it is an InterfaceError.
    asyncpg.DataError: internal_error,
    ApiError: api_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error,
}
