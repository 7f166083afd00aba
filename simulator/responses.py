"""JSON responses, errors included: every error has the same OpenAI-style body
``{"error": {"type": ..., "message": ..., "code": ...}}`` and ``application/json``.

A response is a :class:`Reply`: status, encoded body and the complete raw ASGI header
list (content type and length included), ready for ``http.response.start``. The server
is plain ASGI (see app.py), so nothing here builds framework objects; header names are
lowercase bytes, as HTTP/1.1 servers send them anyway.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

JSON = "application/json"
RawHeaders = list[tuple[bytes, bytes]]
CONTENT_TYPE_JSON = (b"content-type", b"application/json")

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


class Reply(NamedTuple):
    """One complete response: ``headers`` is the full raw header list."""

    status: int
    body: bytes
    headers: RawHeaders


def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def body_headers(body: bytes, media_type: str = JSON) -> RawHeaders:
    """Content type and length of ``body`` (``text/*`` gets ``charset=utf-8``, as
    Starlette did before the server became plain ASGI)."""
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return [(b"content-type", media_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode())]


def raw_json(status: int, body: bytes, headers: RawHeaders | None = None,
             media_type: str = JSON) -> Reply:
    """A response from already-encoded bytes (cached bodies, faults)."""
    return Reply(status, body, [*(headers or ()), *body_headers(body, media_type)])


def json_response(status: int, body: Any, headers: RawHeaders | None = None) -> Reply:
    """A JSON response from a Python value."""
    return raw_json(status, dumps(body), headers)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The one error body shape."""
    return {"error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message,
                      "code": code}}


def error_response(status: int, code: str, message: str,
                   headers: RawHeaders | None = None) -> Reply:
    """An error response in the one error body shape."""
    return json_response(status, error_body(status, code, message), headers)
