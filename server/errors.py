"""API error codes, the error envelope and the handlers that produce it.

Every failure answers `{success: false, code, message, data: null}` with a
4xx/5xx status. Client mistakes are always 4xx; a 500 means a fetchdeck bug
and never carries a traceback (it goes to the server log file).
The table is documented in docs/api.md; keep the two in step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from quart import Quart, Response, current_app, has_request_context, has_websocket_context, request, websocket
from werkzeug.exceptions import HTTPException

from core.errors import FetchdeckError, IllegalTransition, InvalidInput, StoreUnavailable, TaskNotFound
from server.respond import envelope_response

log = logging.getLogger("fetchdeck.server")


class ErrorCode(IntEnum):
    OK = 0
    BAD_REQUEST = 40000  # a malformed request that fits no finer code
    MALFORMED_JSON = 40001  # the body is not JSON (or not UTF-8)
    VALIDATION_FAILED = 40002  # body or query fields missing, of the wrong type or out of range
    UNKNOWN_TYPE = 40003  # `type` is not a download type fetchdeck knows
    INVALID_URL = 40004  # not an http(s) URL with a host
    INVALID_HEADERS = 40005  # a header line is not `Name: value`
    INVALID_FOLDER = 40006  # folder/localPath outside the allowed download roots
    INVALID_STATUS = 40007  # an unknown status, or one a client cannot set
    UNAUTHORIZED = 40100  # token missing or wrong
    FORBIDDEN_HOST = 40300  # Host header not allowed (DNS-rebinding guard)
    FORBIDDEN_ORIGIN = 40301  # a browser page from an origin not on server.cors_origins
    ROUTE_NOT_FOUND = 40400  # no such endpoint
    TASK_NOT_FOUND = 40401  # no task with that id
    METHOD_NOT_ALLOWED = 40500
    ILLEGAL_TRANSITION = 40900  # the status machine forbids it (e.g. stop a finished task)
    PAYLOAD_TOO_LARGE = 41300
    UNSUPPORTED_MEDIA_TYPE = 41500  # a request body that is not Content-Type: application/json
    # downloads from the browser (server/files.py)
    LINK_REFUSED = 40302  # a /files/ link whose signature is wrong or whose time is up
    OUTSIDE_ROOTS = 40303  # the task's file (links resolved) is outside the download roots
    FILE_NOT_FOUND = 40402  # a /files/ link whose task has no finished file on disk any more
    NO_FILE = 40901  # a file link asked for a task without a finished file on disk
    RANGE_NOT_SATISFIABLE = 41600  # a Range that starts past the file's end
    INTERNAL_ERROR = 50000  # a fetchdeck bug; details are in the server log
    STORE_UNAVAILABLE = 50300  # the task store refused a write (e.g. its disk is full); nothing changed


class ApiError(Exception):
    """Raise from a route to answer with this status, code and message."""

    def __init__(self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class CompatError(ApiError):
    """An error in a compat dialect's own terms: `dialect_code` is its error code (e.g. "task_not_found")."""

    def __init__(self, status: int, dialect_code: str, message: str, headers: dict[str, str] | None = None) -> None:
        fallback = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.BAD_REQUEST)
        super().__init__(status, fallback, message, headers)
        self.dialect_code = dialect_code


def bad_request(code: ErrorCode, message: str) -> ApiError:
    return ApiError(400, code, message)


# A compat dialect answers errors in its own format on its own paths. Each app keeps its own
# list (a path matcher and a renderer per dialect it serves): on the main listener /api/tasks is
# MediaGo's, on the m3u8 listener it is the m3u8 dialect's. Unmatched paths get the envelope.
ErrorRenderer = Callable[[int, ErrorCode, "str | None", str, dict[str, str]], Response]
PathMatcher = Callable[[str], bool]
_RENDERERS_KEY = "fetchdeck.error_renderers"


def every_path(path: str) -> bool:
    """The matcher of a listener that serves one dialect only."""
    return True


def use_dialect_errors(app: Quart, matches: PathMatcher, render: ErrorRenderer) -> None:
    """Answer errors on the paths `matches` accepts with `render` (first registered wins)."""
    app.extensions.setdefault(_RENDERERS_KEY, []).append((matches, render))


def _current_path() -> str | None:
    if has_request_context():
        return request.path
    if has_websocket_context():
        return websocket.path
    return None


def error_response(
    status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None,
    dialect_code: str | None = None,
) -> Response:
    path = _current_path()
    if path is not None:
        renderers: list[tuple[PathMatcher, ErrorRenderer]] = current_app.extensions.get(_RENDERERS_KEY, [])
        for matches, render in renderers:
            if matches(path):
                return render(status, code, dialect_code, message, dict(headers or {}))
    return envelope_response(None, status=status, code=int(code), message=message, success=False, headers=headers)


_HTTP_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN_HOST,
    404: ErrorCode.ROUTE_NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

_HTTP_MESSAGES: dict[int, str] = {
    404: "no such endpoint",
    405: "method not allowed for this endpoint",
    413: "request body too large",
}


def _from_fetchdeck(exc: FetchdeckError) -> tuple[int, ErrorCode]:
    if isinstance(exc, TaskNotFound):
        return 404, ErrorCode.TASK_NOT_FOUND
    if isinstance(exc, IllegalTransition):
        return 409, ErrorCode.ILLEGAL_TRANSITION
    if isinstance(exc, InvalidInput):
        return 400, ErrorCode.VALIDATION_FAILED
    if isinstance(exc, StoreUnavailable):
        return 503, ErrorCode.STORE_UNAVAILABLE
    return 500, ErrorCode.INTERNAL_ERROR


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers, getattr(exc, "dialect_code", None))

    @app.errorhandler(FetchdeckError)
    async def _core_error(exc: FetchdeckError) -> Response:
        status, code = _from_fetchdeck(exc)
        if code is ErrorCode.STORE_UNAVAILABLE:
            log.warning("%s", exc)
            return error_response(status, code, f"{exc}; try again later", {"Retry-After": "5"})
        if status >= 500:
            log.error("unexpected engine error: %s", exc, exc_info=exc)
            return error_response(status, code, "internal error; see the server log")
        return error_response(status, code, str(exc))

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500 else ErrorCode.BAD_REQUEST)
        message = _HTTP_MESSAGES.get(status) or (exc.description or exc.name or "error")
        headers: dict[str, Any] = {}
        allow = [value for key, value in exc.get_headers() if key.lower() == "allow"]
        if allow:
            headers["Allow"] = allow[0]
        return error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    async def _crash(exc: Exception) -> Response:
        log.error("unhandled error in request", exc_info=exc)
        return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error; see the server log")
