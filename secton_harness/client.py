"""A thin httpx client for probes and tools (not the load path: Locust has its own).

Every call returns an :class:`ApiResponse` and never raises on an HTTP status or a
transport problem, so a probe can record one row per request whatever happened. What went
wrong is one of the record vocabulary's classes (:mod:`secton_harness.error_classes`,
picked by its ``classify``): a transport class (``timeout``, ``connect``, ``reset``,
``too_large``, ``protocol``) or a body class (``invalid_json``, ``content_type``); the
status itself is left to the caller (a probe's conditions judge it).

Every answer is read within bounds (:mod:`secton_harness.limits`): the head is capped by
httpcore, the body is cut at the body cap while it streams in (``too_large``), the whole
answer must arrive within ``timeout_s`` (a target trickling a byte a second is a
``timeout``), and redirects are never followed (a 3xx is returned as it is).

``status`` is 0 when no response line arrived; a connection dropped after the status line
keeps the status it announced, with ``error == "reset"``. Use ``ok`` rather than ``status``
to decide success.

The API key never leaves the request: :class:`ApiResponse` holds only response data, and
every error detail is made by :class:`~secton_harness.redact.Redactor` (the key sent, its
encodings and any credential masked; one line, capped).

Example::

    with SectonClient("http://127.0.0.1:8080") as client:
        reply = client.chat("sk-...", "copilot-zero", [{"role": "user", "content": "Hi"}])
        if not reply.ok:
            print(reply.status, reply.error, reply.ratelimit.retry_after_s)

Paths are joined to the base URL; a base URL that already ends in ``/v1`` (as in
``https://api.secton.org/v1``) is not doubled when a path starts with ``/v1/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from secton_harness import __version__
from secton_harness.answers import read_answer, succeeded
from secton_harness.endpoints import CHAT, MODELS, api_url
from secton_harness.error_classes import (
    CONTENT_TYPE,
    ERROR_CLASSES,
    INVALID_JSON,
    ResponseTooLarge,
)
from secton_harness.errors import BadInput
from secton_harness.keys import mask as mask_key
from secton_harness.limits import max_body_bytes
from secton_harness.ratelimit_headers import RateLimitInfo
from secton_harness.redact import Redactor

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

MODELS_PATH = MODELS.path
CHAT_PATH = CHAT.path
#: Raw text kept on a response; ``bytes`` and ``body`` always reflect the whole body.
TEXT_LIMIT_CHARS = 64 * 1024

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
        """A 2xx response that arrived whole, as JSON: the records' one definition of
        success (:func:`~secton_harness.answers.succeeded`)."""
        return succeeded(self.status, self.error)


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


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                          and media.endswith("+json"))


def _capped(total: int, chunk: bytes, limit: int, deadline: float) -> int:
    """The byte count after ``chunk``; raises past the body cap or the answer's deadline."""
    total += len(chunk)
    if total > limit:
        raise ResponseTooLarge("body", limit)
    if time.perf_counter() > deadline:
        raise TimeoutError("no complete answer within the request timeout")
    return total


def _read(chunks: Iterator[bytes], limit: int, deadline: float) -> bytes:
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total = _capped(total, chunk, limit, deadline)
        parts.append(chunk)
    return b"".join(parts)


async def _aread(chunks: AsyncIterator[bytes], limit: int, deadline: float) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total = _capped(total, chunk, limit, deadline)
        parts.append(chunk)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Prepared:
    method: str
    path: str
    url: str
    headers: dict[str, str]
    params: Any
    content: bytes | None
    redactor: Redactor


class _Base:
    def __init__(self, base_url: str, timeout_s: float = 10.0,
                 max_body: int | None = None) -> None:
        self.base_url = _check_base_url(base_url)
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) \
                or not 0 < timeout_s < float("inf"):
            raise BadInput(f"timeout_s: {timeout_s!r} must be a positive number of seconds")
        self.timeout_s = float(timeout_s)
        self.max_body = max_body_bytes() if max_body is None else max_body

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
        # h11 and codecs quote offending values as bytes or escaped text: mask those too
        forms = {form for secret in secrets if secret.strip()
                 for form in (secret, repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1],
                              secret.strip())}
        return _Prepared(method.upper(), path, api_url(self.base_url, path), sent, params, body,
                         Redactor(forms))

    def _build(self, client: httpx.Client | httpx.AsyncClient,
               prep: _Prepared) -> httpx.Request:
        return client.build_request(prep.method, prep.url, params=prep.params,
                                    headers=prep.headers, content=prep.content)

    @staticmethod
    def _failed(prep: _Prepared, exc: BaseException, ts: float, start: float,
                status: int = 0, headers: httpx.Headers | None = None) -> ApiResponse:
        latency = time.perf_counter() - start
        lowered = {k.lower(): v for k, v in headers.items()} if headers is not None else {}
        answer = read_answer(status, exc, lowered, prep.redactor, now=ts + latency,
                             status_class=False)
        return ApiResponse(
            method=prep.method, path=prep.path, status=status, latency_s=latency, ts=ts,
            headers=lowered, content_type=lowered.get("content-type", ""), body=None,
            text="", bytes=0, error=answer.error, error_detail=answer.reason,
            ratelimit=answer.ratelimit,
        )

    @staticmethod
    def _finished(prep: _Prepared, response: httpx.Response, raw: bytes, ts: float,
                  start: float) -> ApiResponse:
        latency = time.perf_counter() - start
        lowered = {k.lower(): v for k, v in response.headers.items()}
        # status, rate-limit fields: the core's one reading, as the load and mapper records;
        # the status's class is left to the probe's conditions, the body is the client's
        answer = read_answer(response.status_code, None, lowered, prep.redactor,
                             now=ts + latency, status_class=False)
        content_type = lowered.get("content-type", "")
        text = raw[:TEXT_LIMIT_CHARS * 4].decode(response.encoding or "utf-8", "replace")
        body = None
        error, detail = answer.error, answer.reason
        if not _is_json_type(content_type):
            error = CONTENT_TYPE
            detail = prep.redactor.text(f"content-type {content_type!r} is not JSON")
        else:
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                error = INVALID_JSON
                detail = prep.redactor.text(f"{exc.__class__.__name__}: {exc}")
        return ApiResponse(
            method=prep.method, path=prep.path, status=answer.status,
            latency_s=latency, ts=ts, headers=lowered, content_type=content_type, body=body,
            text=text[:TEXT_LIMIT_CHARS], bytes=len(raw), error=error, error_detail=detail,
            ratelimit=answer.ratelimit,
        )


_CAUGHT = (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, UnicodeError,
           ResponseTooLarge)


@functools.cache
def _verifying_tls() -> ssl.SSLContext:
    """One verifying TLS context for every client of the process. httpx builds a new one
    per client, reading the CA bundle each time (~40 ms; eight clients per ``probe --once``
    spent 0.35 s on it)."""
    return httpx.create_ssl_context()


def _tls(verify: bool) -> ssl.SSLContext | bool:
    return _verifying_tls() if verify else False


@functools.cache
def _load_async_transport() -> None:
    """Import what httpx's async transport imports lazily on its first request (anyio's
    asyncio backend, h11, ~70 modules): done inside the first checks' timed window, it
    added ~0.1 s to every latency of a ``probe --once``."""
    for module in ("anyio._backends._asyncio", "h11", "httpcore._async.http11"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


class SectonClient(_Base):
    """Synchronous client; one connection pool per instance. Use as a context manager."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, *, verify: bool = True,
                 max_body: int | None = None) -> None:
        super().__init__(base_url, timeout_s, max_body)
        self._client = httpx.Client(timeout=self.timeout_s, verify=_tls(verify),
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
        deadline = start + self.timeout_s
        try:
            response = self._client.send(self._build(self._client, prep), stream=True)
            status, got = response.status_code, response.headers
            try:
                raw = _read(response.iter_bytes(), self.max_body, deadline)
            finally:
                response.close()
        except _CAUGHT as exc:
            return self._failed(prep, exc, ts, start, status, got)
        return self._finished(prep, response, raw, ts, start)

    def list_models(self, key: str | None, **params: Any) -> ApiResponse:
        return self.request("GET", MODELS_PATH, key=key, params=params or None)

    def chat(self, key: str | None, model: str, messages: list[dict[str, Any]],
             temperature: float | None = None, **extra: Any) -> ApiResponse:
        return self.request("POST", CHAT_PATH, key=key,
                            json_body=chat_payload(model, messages, temperature, **extra))


class AsyncSectonClient(_Base):
    """The same API as :class:`SectonClient`, awaitable. Use as an async context manager."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, *, verify: bool = True,
                 max_body: int | None = None) -> None:
        super().__init__(base_url, timeout_s, max_body)
        _load_async_transport()
        self._client = httpx.AsyncClient(timeout=self.timeout_s, verify=_tls(verify),
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
        deadline = start + self.timeout_s
        try:
            async with asyncio.timeout(self.timeout_s):  # the whole answer, trickle or not
                response = await self._client.send(self._build(self._client, prep),
                                                   stream=True)
                status, got = response.status_code, response.headers
                try:
                    raw = await _aread(response.aiter_bytes(), self.max_body, deadline)
                finally:
                    await response.aclose()
        except _CAUGHT as exc:
            return self._failed(prep, exc, ts, start, status, got)
        return self._finished(prep, response, raw, ts, start)

    async def list_models(self, key: str | None, **params: Any) -> ApiResponse:
        return await self.request("GET", MODELS_PATH, key=key, params=params or None)

    async def chat(self, key: str | None, model: str, messages: list[dict[str, Any]],
                   temperature: float | None = None, **extra: Any) -> ApiResponse:
        return await self.request("POST", CHAT_PATH, key=key,
                                  json_body=chat_payload(model, messages, temperature, **extra))
