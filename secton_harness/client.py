"""A thin httpx client for probes and tools (not the load path: Locust has its own).

Every call returns an :class:`ApiResponse` and never raises on an HTTP status or a
transport problem, so a probe can record one row per request whatever happened. What went
wrong is one of :data:`ERROR_CLASSES`:

================  ==========================================================================
``timeout``       no complete response within ``timeout_s`` (connect, read, write or pool)
``connect``       the connection could not be opened (refused, DNS failure, TLS handshake)
``reset``         the connection was closed or dropped mid-request or mid-body
``invalid_json``  a JSON content type whose body does not parse
``content_type``  a response that is not JSON (``application/json`` or ``*/*+json``)
``http``          any other transport or protocol problem
================  ==========================================================================

``status`` is 0 when no response line arrived; a connection dropped after the status line
keeps the status it announced, with ``error == "reset"``. Use ``ok`` rather than ``status``
to decide success.

The API key never leaves the request: :class:`ApiResponse` holds only response data, and
transport error messages are reduced to ``"<ExceptionClass>: <short message>"`` with the
key and the Authorization value masked.

Example::

    with SectonClient("http://127.0.0.1:8080") as client:
        reply = client.chat("sk-...", "copilot-zero", [{"role": "user", "content": "Hi"}])
        if not reply.ok:
            print(reply.status, reply.error, reply.ratelimit.retry_after_s)

Paths are joined to the base URL; a base URL that already ends in ``/v1`` (as in
``https://api.secton.org/v1``) is not doubled when a path starts with ``/v1/``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from secton_harness import __version__
from secton_harness.endpoints import CHAT, MODELS
from secton_harness.errors import BadInput
from secton_harness.keys import mask as mask_key
from secton_harness.ratelimit_headers import RateLimitInfo, parse_ratelimit

__all__ = [
    "CHAT_PATH",
    "ERROR_CLASSES",
    "MODELS_PATH",
    "USER_AGENT",
    "ApiResponse",
    "AsyncSectonClient",
    "SectonClient",
    "chat_payload",
    "mask_key",
]

#: Every value ``ApiResponse.error`` can take besides ``""``.
ERROR_CLASSES: tuple[str, ...] = (
    "timeout", "connect", "reset", "invalid_json", "content_type", "http",
)
MODELS_PATH = MODELS.path
CHAT_PATH = CHAT.path
#: Raw text kept on a response; ``bytes`` and ``body`` always reflect the whole body.
TEXT_LIMIT_CHARS = 64 * 1024
_DETAIL_LIMIT_CHARS = 200



USER_AGENT = f"secton-harness/{__version__}"




def chat_payload(model: str, messages: list[dict[str, Any]], temperature: float | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The chat request body as the quick start shows it (temperature only when given)."""
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if temperature is not None:
        payload["temperature"] = temperature
    payload.update(extra)
    return payload


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """One request's outcome: response data only (request headers, hence keys, never)."""

    method: str
    path: str
    status: int
    latency_s: float
    ts: float
    headers: dict[str, str] = field(repr=False)
    content_type: str
    body: Any = field(repr=False)
    text: str = field(repr=False)
    bytes: int
    error: str
    error_detail: str
    ratelimit: RateLimitInfo = field(repr=False)

    @property
    def ok(self) -> bool:
        """A 2xx response that arrived whole, as JSON."""
        return 200 <= self.status < 300 and not self.error

    @property
    def is_ratelimited(self) -> bool:
        return self.status == 429


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise BadInput(f"target URL {base_url!r} is not a string; use e.g. "
                       "'http://127.0.0.1:8080'")
    parts = urlsplit(base_url.strip())
    bad = parts.scheme not in ("http", "https") or not parts.hostname
    if not bad:
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            bad = True
    if bad:
        shown = parts._replace(netloc=parts.hostname or "").geturl() if parts.password else base_url
        raise BadInput(f"target URL {shown!r} is not an http(s) URL with a host; "
                       "use e.g. 'http://127.0.0.1:8080'")
    return base_url.strip().rstrip("/")


def _join(base_url: str, path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    if base_url.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        path = path[3:]
    return base_url + path


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                          and media.endswith("+json"))


def _classify(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
                  | ConnectionError):
        return "reset"
    return "http"


@dataclass(frozen=True, slots=True)
class _Prepared:
    method: str
    path: str
    url: str
    headers: dict[str, str]
    params: Any
    content: bytes | None
    secrets: tuple[str, ...]


class _Base:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = _check_base_url(base_url)
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) \
                or timeout_s <= 0:
            raise BadInput(f"timeout_s: {timeout_s!r} must be a positive number of seconds")
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, timeout_s={self.timeout_s:g})"

    def _prepare(self, method: str, path: str, key: str | None, params: Any,
                 json_body: Any, authorization: str | None, content: bytes | str | None,
                 headers: Mapping[str, str] | None) -> _Prepared:
        if json_body is not None and content is not None:
            raise BadInput("request: give json_body or content, not both")
        sent = {"Content-Type": "application/json", "Accept": "application/json",
                "User-Agent": USER_AGENT}
        secrets: list[str] = []
        if authorization is not None:
            # RFC 9110 §5.5: surrounding whitespace is not part of a field value (and h11
            # refuses to send it), so "Bearer " goes out as "Bearer" - the same to a server.
            sent["Authorization"] = authorization.strip(" \t")
            secrets.append(authorization)
        elif key is not None:
            sent["Authorization"] = f"Bearer {key}"
            secrets.append(key)
        if headers:
            sent.update(headers)
        body: bytes | None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
        elif isinstance(content, str):
            body = content.encode()
        else:
            body = content
        return _Prepared(method.upper(), path, _join(self.base_url, path), sent, params, body,
                         tuple(s for s in secrets if s.strip()))

    def _build(self, client: httpx.Client | httpx.AsyncClient,
               prep: _Prepared) -> httpx.Request:
        return client.build_request(prep.method, prep.url, params=prep.params,
                                    headers=prep.headers, content=prep.content)

    @staticmethod
    def _failed(prep: _Prepared, exc: BaseException, ts: float, start: float,
                status: int = 0, headers: httpx.Headers | None = None) -> ApiResponse:
        latency = time.perf_counter() - start
        message = str(exc) or exc.__class__.__name__
        for secret in sorted(prep.secrets, key=len, reverse=True):
            # h11 and codecs quote offending values as bytes or escaped text: mask those too
            for form in {secret, repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1],
                         secret.strip()}:
                if form.strip():
                    message = message.replace(form, mask_key(secret))
        message = re.sub(r"(?i)(bearer|basic)\s+\S+", r"\1 ***", message)
        detail = f"{exc.__class__.__name__}: {message}"[:_DETAIL_LIMIT_CHARS]
        lowered = {k.lower(): v for k, v in headers.items()} if headers is not None else {}
        return ApiResponse(
            method=prep.method, path=prep.path, status=status, latency_s=latency, ts=ts,
            headers=lowered, content_type=lowered.get("content-type", ""), body=None,
            text="", bytes=0, error=_classify(exc), error_detail=detail,
            ratelimit=parse_ratelimit(lowered, now=ts + latency),
        )

    @staticmethod
    def _finished(prep: _Prepared, response: httpx.Response, ts: float,
                  start: float) -> ApiResponse:
        latency = time.perf_counter() - start
        raw = response.content
        lowered = {k.lower(): v for k, v in response.headers.items()}
        content_type = lowered.get("content-type", "")
        text = raw[:TEXT_LIMIT_CHARS * 4].decode(response.encoding or "utf-8", "replace")
        body = None
        error = detail = ""
        if not _is_json_type(content_type):
            error = "content_type"
            detail = f"content-type {content_type!r} is not JSON"
        else:
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                error = "invalid_json"
                detail = f"{exc.__class__.__name__}: {exc}"[:_DETAIL_LIMIT_CHARS]
        return ApiResponse(
            method=prep.method, path=prep.path, status=response.status_code,
            latency_s=latency, ts=ts, headers=lowered, content_type=content_type, body=body,
            text=text[:TEXT_LIMIT_CHARS], bytes=len(raw), error=error, error_detail=detail,
            ratelimit=parse_ratelimit(lowered, now=ts + latency),
        )


_CAUGHT = (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, UnicodeError)


class SectonClient(_Base):
    """Synchronous client; one connection pool per instance. Use as a context manager."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, *, verify: bool = True) -> None:
        super().__init__(base_url, timeout_s)
        self._client = httpx.Client(timeout=self.timeout_s, verify=verify,
                                    follow_redirects=False)

    def __enter__(self) -> SectonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, key: str | None, params: Any = None,
                json_body: Any = None, authorization: str | None = None,
                content: bytes | str | None = None,
                headers: Mapping[str, str] | None = None) -> ApiResponse:
        """Send one request; ``authorization`` (raw header value) overrides ``key``.

        ``key=None`` and no ``authorization`` sends no Authorization header at all.
        """
        prep = self._prepare(method, path, key, params, json_body, authorization, content,
                             headers)
        ts, start = time.time(), time.perf_counter()
        status, got = 0, None
        try:
            response = self._client.send(self._build(self._client, prep), stream=True)
            status, got = response.status_code, response.headers
            try:
                response.read()
            finally:
                response.close()
        except _CAUGHT as exc:
            return self._failed(prep, exc, ts, start, status, got)
        return self._finished(prep, response, ts, start)

    def list_models(self, key: str | None, **params: Any) -> ApiResponse:
        return self.request("GET", MODELS_PATH, key=key, params=params or None)

    def chat(self, key: str | None, model: str, messages: list[dict[str, Any]],
             temperature: float | None = None, **extra: Any) -> ApiResponse:
        return self.request("POST", CHAT_PATH, key=key,
                            json_body=chat_payload(model, messages, temperature, **extra))


class AsyncSectonClient(_Base):
    """The same API as :class:`SectonClient`, awaitable. Use as an async context manager."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, *, verify: bool = True) -> None:
        super().__init__(base_url, timeout_s)
        self._client = httpx.AsyncClient(timeout=self.timeout_s, verify=verify,
                                         follow_redirects=False)

    async def __aenter__(self) -> AsyncSectonClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, *, key: str | None, params: Any = None,
                      json_body: Any = None, authorization: str | None = None,
                      content: bytes | str | None = None,
                      headers: Mapping[str, str] | None = None) -> ApiResponse:
        """Send one request; ``authorization`` (raw header value) overrides ``key``.

        ``key=None`` and no ``authorization`` sends no Authorization header at all.
        """
        prep = self._prepare(method, path, key, params, json_body, authorization, content,
                             headers)
        ts, start = time.time(), time.perf_counter()
        status, got = 0, None
        try:
            response = await self._client.send(self._build(self._client, prep), stream=True)
            status, got = response.status_code, response.headers
            try:
                await response.aread()
            finally:
                await response.aclose()
        except _CAUGHT as exc:
            return self._failed(prep, exc, ts, start, status, got)
        return self._finished(prep, response, ts, start)

    async def list_models(self, key: str | None, **params: Any) -> ApiResponse:
        return await self.request("GET", MODELS_PATH, key=key, params=params or None)

    async def chat(self, key: str | None, model: str, messages: list[dict[str, Any]],
                   temperature: float | None = None, **extra: Any) -> ApiResponse:
        return await self.request("POST", CHAT_PATH, key=key,
                                  json_body=chat_payload(model, messages, temperature, **extra))
