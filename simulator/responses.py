"""JSON responses, errors included: every error has the same OpenAI-style body
``{"error": {"type": ..., "message": ..., "code": ...}}`` and ``application/json``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

JSON = "application/json"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
}


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response from a Python value."""
    return Response(dumps(body), status, headers, media_type=JSON)


def raw_json(status: int, body: bytes, headers: dict[str, str] | None = None,
             media_type: str = JSON) -> Response:
    """A response from already-encoded bytes (cached bodies, faults)."""
    return Response(body, status, headers, media_type=media_type)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The one error body shape."""
    return {"error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message,
                      "code": code}}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """An error response in the one error body shape."""
    return json_response(status, error_body(status, code, message), headers)
