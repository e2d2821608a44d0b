"""Turn request bodies and query strings into models, or into precise 400s.

Bodies are parsed as JSON whatever the Content-Type says (curl's `-d`
sends form encoding), straight into pydantic (strict JSON types). Each
validation problem maps onto an error code from server/errors.py.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from quart import request

from server.errors import ApiError, ErrorCode
from server.schemas import ACCEPTED_TYPES

M = TypeVar("M", bound=BaseModel)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _explain(error: ErrorDetails) -> tuple[ErrorCode, str]:
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    where = _where(loc)
    field = loc[-1] if loc else None
    if kind == "json_invalid":
        return ErrorCode.MALFORMED_JSON, f"request body is not valid JSON: {error.get('msg', '')}"
    if kind == "model_type" and not loc:
        return ErrorCode.VALIDATION_FAILED, "request body must be a JSON object"
    if field == "type" and kind == "literal_error":
        known = ", ".join(sorted(ACCEPTED_TYPES))
        return ErrorCode.UNKNOWN_TYPE, f"{where}: unknown task type {_short(error.get('input'))} (known: {known})"
    if field == "url" and kind == "string_pattern_mismatch":
        return ErrorCode.INVALID_URL, (
            f"{where}: invalid URL {_short(error.get('input'))}: only http:// and https:// URLs are accepted"
        )
    if field == "status" and kind in ("enum", "literal_error"):
        return ErrorCode.INVALID_STATUS, f"{where}: unknown status {_short(error.get('input'))}"
    if kind == "missing":
        return ErrorCode.VALIDATION_FAILED, f"{where}: field required"
    return ErrorCode.VALIDATION_FAILED, f"{where}: {error.get('msg', 'invalid value')}"


def validation_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False)
    code, message = _explain(errors[0])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ApiError(400, code, message)


async def parse_body(model: type[M], *, optional: bool = False) -> M:
    """The request body as `model`; an empty body is `{}` when optional."""
    raw = await request.get_data(cache=False)
    if not raw.strip():
        if optional:
            return model.model_validate_json(b"{}")
        raise ApiError(400, ErrorCode.MALFORMED_JSON, "a JSON request body is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_query(model: type[M]) -> M:
    values = {key: request.args.get(key) for key in request.args}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc) from None
