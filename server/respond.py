"""The `{success, code, message, data}` envelope, serialized once, fast.

Routes build plain JSON-ready data (dicts, lists) and hand it to `ok()`;
pydantic models in server/schemas.py describe the same shapes for OpenAPI.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def envelope_response(
    data: Any,
    *,
    status: int = 200,
    code: int = 0,
    message: str = "ok",
    success: bool = True,
    headers: dict[str, str] | None = None,
) -> Response:
    body = _dumps({"success": success, "code": code, "message": message, "data": data})
    response = Response(body, status=status, content_type="application/json")
    if headers:
        response.headers.update(headers)
    return response


def ok(data: Any, status: int = 200) -> Response:
    return envelope_response(data, status=status)
