"""The reference Secton API as a Starlette app: ``build_app(config) -> Starlette``.

Request order on the two API endpoints: authentication (401) -> rate limit (429, which
costs nothing) -> validation (400/404/413). A request that passed the rate limit has
spent budget even if it then fails validation, like most real APIs (the limiter runs
before the body is parsed). Faults only replace would-be-200 responses (faults.py).

Dropped connections: uvicorn gives the ASGI app no way to abort, and raising before
``http.response.start`` makes uvicorn answer 500. So the outermost middleware
(:class:`GroundTruthMiddleware`), which still holds uvicorn's own ``send`` (a bound
method of its per-request cycle object, which carries the connection's ``transport``),
sets ``SO_LINGER`` to 0 and calls ``transport.abort()``: the client sees a TCP reset and
not one byte of response. Under another server without that attribute it falls back
to raising (the server's own 500 or close).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.budgets import Budgets, rate_limit_headers
from simulator.catalog import CATEGORIES, SORTS, list_models
from simulator.config import KeyConfig, SimulatorConfig
from simulator.faults import FaultInjector
from simulator.keys import AuthFailure, KeyStore
from simulator.latency import LatencyModel
from simulator.replies import reply_for
from simulator.responses import dumps, error_response, json_response, raw_json
from simulator.stats import GroundTruth
from simulator.tokens import count_tokens
from simulator.validation import Problem, parse_chat

ENDPOINTS = {"/v1/models": "models", "/v1/chat/completions": "chat", "/healthz": "healthz"}


@dataclass(slots=True)
class Admitted:
    """A request that passed auth and the rate limit."""

    key: KeyConfig
    headers: dict[str, str]
    delay_s: float


class Simulator:
    """All server state: keys, budgets, latency and fault RNGs, ground truth."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.keys = KeyStore(config)
        self.budgets = Budgets(config, clock)
        self.latency = LatencyModel(config.latency, config.seed)
        self.faults = FaultInjector(config.faults, config.seed)
        self.stats = GroundTruth()
        self.limited = config.limits.algorithm != "none"
        self.models_cache: dict[tuple[str | None, str | None], bytes] = {}

    def reset(self) -> None:
        """Rest every limiter, zero the stats, restart the RNGs from the seed."""
        self.budgets.reset()
        self.stats.reset()
        self.latency.reset()
        self.faults.reset()

    def gate(self, request: Request, endpoint: str) -> Admitted | Response:
        """Authenticate and rate-limit; an error response when either refuses."""
        ctx = request.scope["secton"]
        key = self.keys.authenticate(request.headers.get("authorization"))
        if isinstance(key, AuthFailure):
            return error_response(401, key.code, key.message,
                                  {"WWW-Authenticate": 'Bearer realm="secton"'})
        ctx["alias"], ctx["org"] = key.alias, key.org
        if not self.limited:
            return Admitted(key, {}, 0.0)
        verdict = self.budgets.admit(key, endpoint)
        limits = self.config.limits
        headers = rate_limit_headers(verdict.decision, limits.retry_after, limits.headers)
        if not verdict.allowed:
            return error_response(
                429, "rate_limit_exceeded",
                f"Rate limit exceeded for {verdict.scope} "
                f"({verdict.decision.limit} per {verdict.decision.window_s:g}s); retry in "
                f"{verdict.decision.retry_after_s:.3f}s", headers)
        return Admitted(key, headers, verdict.delay_s)

    async def serve_ok(self, request: Request, admitted: Admitted, body: dict[str, Any],
                       completion_tokens: int, broken_field: str) -> Response:
        """Sleep the injected latency, apply any fault, send the 200."""
        ctx = request.scope["secton"]
        plan = self.faults.plan()
        delay = admitted.delay_s + self.latency.delay_s(completion_tokens) + plan.slow_s
        ctx["injected"] = delay
        ctx["fault"] = plan.kind or ("slow" if plan.slow_s else None)
        if delay > 0:
            await asyncio.sleep(delay)
        headers = admitted.headers
        if plan.kind is None:
            return json_response(200, body, headers)
        if plan.kind == "drop_connection":
            ctx["drop"] = True
            return Response(b"", 200)
        if plan.kind == "error_500":
            return error_response(500, "internal_error", "Injected internal error", headers)
        if plan.kind == "error_503":
            return error_response(503, "service_unavailable",
                                  "Injected: service temporarily unavailable", headers)
        if plan.kind == "malformed_json":
            encoded = dumps(body)
            return raw_json(200, encoded[: max(1, len(encoded) // 2)], headers)
        if plan.kind == "wrong_content_type":
            return raw_json(200, dumps(body), headers, media_type="text/html")
        broken = {k: v for k, v in body.items() if k != broken_field}
        return json_response(200, broken, headers)


def _sim(request: Request) -> Simulator:
    return request.app.state.sim  # type: ignore[no-any-return]


async def models(request: Request) -> Response:
    """``GET /v1/models?category=chat&sort=name``."""
    sim = _sim(request)
    admitted = sim.gate(request, "models")
    if isinstance(admitted, Response):
        return admitted
    request.scope["secton"]["injected"] = 0.0
    category = request.query_params.get("category")
    sort = request.query_params.get("sort")
    if sort is not None and sort not in SORTS:
        return error_response(400, "invalid_value",
                              f"'sort' must be one of {', '.join(SORTS)}", admitted.headers)
    body = {"object": "list", "data": list_models(category, sort)}
    if sim.faults.active or sim.config.faults.slow or not sim.latency.zero or admitted.delay_s:
        return await sim.serve_ok(request, admitted, body, 0, "data")
    cache_key = (category if category in CATEGORIES else None, sort)
    if category is not None and category not in CATEGORIES:
        return json_response(200, body, admitted.headers)
    encoded = sim.models_cache.get(cache_key)
    if encoded is None:
        encoded = sim.models_cache[cache_key] = dumps(body)
    return raw_json(200, encoded, admitted.headers)


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions`` in the quick start's shape."""
    sim = _sim(request)
    admitted = sim.gate(request, "chat")
    if isinstance(admitted, Response):
        return admitted
    request.scope["secton"]["injected"] = 0.0
    limit = sim.config.max_body_bytes
    too_large = error_response(413, "request_too_large",
                               f"Request body is larger than {limit} bytes", admitted.headers)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    parsed = parse_chat(b"".join(chunks))
    if isinstance(parsed, Problem):
        return error_response(parsed.status, parsed.code, parsed.message, admitted.headers)
    content = reply_for(sim.config.seed, parsed.model, parsed.messages, parsed.max_tokens)
    prompt_tokens = sum(count_tokens(m["content"]) for m in parsed.messages)
    completion_tokens = count_tokens(content)
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": parsed.model,
        "organization_id": admitted.key.org,
        "messages": [*parsed.messages, {"role": "assistant", "content": content}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    return await sim.serve_ok(request, admitted, body, completion_tokens, "usage")


async def healthz(request: Request) -> Response:
    """Readiness: no auth, not rate limited."""
    return json_response(200, {"status": "ok"})


def _admin_refusal(request: Request) -> Response | None:
    if not _sim(request).config.admin.enabled:
        return error_response(404, "not_found", f"No such path: {request.url.path}")
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return error_response(403, "forbidden", "Admin endpoints answer loopback clients only")
    return None


async def admin_stats(request: Request) -> Response:
    """Ground truth since start or the last reset (aliases only, never keys)."""
    return _admin_refusal(request) or json_response(200, _sim(request).stats.snapshot())


async def admin_reset(request: Request) -> Response:
    """Zero the stats and rest every limiter (for tests)."""
    refusal = _admin_refusal(request)
    if refusal is not None:
        return refusal
    _sim(request).reset()
    return json_response(200, {"status": "reset"})


async def http_error(request: Request, exc: Exception) -> Response:
    """404/405 (and any HTTPException) in the one JSON error shape, Allow header kept."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else None
    if status == 404:
        return error_response(404, "not_found", f"No such path: {request.url.path}", headers)
    if status == 405:
        return error_response(405, "method_not_allowed",
                              f"Method {request.method} not allowed on {request.url.path}",
                              headers)
    return error_response(status, "http_error", str(getattr(exc, "detail", "error")), headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Any bug still answers JSON."""
    return error_response(500, "internal_error", "Internal server error")


class GroundTruthMiddleware:
    """Outermost pure-ASGI layer: records every request in the ground truth and carries
    out dropped connections (see the module docstring)."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_admin/"):
            await self.app(scope, receive, send)
            return
        ctx: dict[str, Any] = {"alias": "-", "org": "-", "injected": None, "fault": None,
                               "drop": False}
        scope["secton"] = ctx
        status = 0

        async def send_recorded(message: Message) -> None:
            nonlocal status
            if ctx["drop"]:
                if message["type"] == "http.response.start":
                    await _abort(send)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        finally:
            self.sim.stats.record(ctx["alias"], ctx["org"], ENDPOINTS.get(path, "other"),
                                  0 if ctx["drop"] else status, ctx["injected"], ctx["fault"])


async def _abort(send: Send) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("drop_connection fault: no transport to abort")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let connection_lost run so uvicorn marks the cycle disconnected and does not
    # complain that the app returned without a response.
    for _ in range(3):
        await asyncio.sleep(0)


class SimulatorApp(Starlette):
    """Starlette with :class:`GroundTruthMiddleware` outside even ServerErrorMiddleware,
    so it receives the server's own ``send`` (needed to abort a connection)."""

    def build_middleware_stack(self) -> ASGIApp:
        return GroundTruthMiddleware(super().build_middleware_stack(), self.state.sim)


def build_app(config: SimulatorConfig, clock: Callable[[], float] = time.monotonic,
              stats_file: str | None = None) -> Starlette:
    """The ASGI app for ``config``; ``clock`` drives the limiters (monotonic seconds)."""
    sim = Simulator(config, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if stats_file:
            sim.stats.write(stats_file)

    app = SimulatorApp(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/_admin/stats", admin_stats, methods=["GET"]),
            Route("/_admin/reset", admin_reset, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.sim = sim
    return app
