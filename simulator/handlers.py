"""The reference Secton API's state and endpoint handlers (the ASGI layer is app.py).

Request order on the two API endpoints: authentication (401) -> rate limit (429, which
costs nothing) -> validation (400/404/413). A request that passed the rate limit has
spent budget even if it then fails validation, like most real APIs (the limiter runs
before the body is parsed). Faults only replace would-be-200 responses (faults.py).

Handlers take the :class:`Simulator`, the ASGI scope and receive, and a :class:`Trace`
(what the ground truth records about the request), and return a :class:`Reply` or
:data:`DROP` (the drop_connection fault; the ASGI layer resets the connection).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from secton_harness.endpoints import CHAT, MODELS
from simulator.assistant_reply import reply_for
from simulator.budgets import Budgets, rate_limit_raw
from simulator.catalog import CATEGORIES, SORTS, list_models
from simulator.config import KeyConfig, SimulatorConfig
from simulator.faults import FaultInjector
from simulator.keys import AuthFailure, KeyStore
from simulator.latency import LatencyModel
from simulator.responses import (
    RawHeaders,
    Reply,
    body_headers,
    dumps,
    error_response,
    json_response,
    raw_json,
)
from simulator.stats import GroundTruth
from simulator.tokens import count_tokens
from simulator.validation import Problem, parse_chat

DROP = Reply(0, b"", [])  # sentinel: reset the connection, send nothing
WWW_AUTHENTICATE = [(b"www-authenticate", b'Bearer realm="secton"')]
UNKNOWN_CATEGORY = "\0unknown"  # every unknown category lists nothing: one cache entry


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


@dataclass(slots=True)
class Trace:
    """What the ground truth records about one request (see stats.py)."""

    alias: str = "-"
    org: str = "-"
    injected: float | None = None
    fault: str | None = None


class Admitted(NamedTuple):
    """A request that passed auth and the rate limit."""

    key: KeyConfig
    headers: RawHeaders
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
        self.retry_after = config.limits.retry_after
        self.rate_headers = config.limits.headers
        # no fault, no latency: a 200 needs no RNG draw and no sleep
        self.plain = (not self.faults.active and not config.faults.slow
                      and self.latency.zero)
        # (category, sort) -> (encoded body, its content type and length headers)
        self.models_cache: dict[tuple[str | None, str | None], tuple[bytes, RawHeaders]] = {}

    def reset(self) -> None:
        """Rest every limiter, zero the stats, restart the RNGs from the seed."""
        self.budgets.reset()
        self.stats.reset()
        self.latency.reset()
        self.faults.reset()

    def gate(self, scope: dict[str, Any], endpoint: str, trace: Trace) -> Admitted | Reply:
        """Authenticate and rate-limit; an error reply when either refuses."""
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        key = self.keys.authenticate(header)
        if isinstance(key, AuthFailure):
            return error_response(401, key.code, key.message, WWW_AUTHENTICATE)
        trace.alias, trace.org = key.alias, key.org
        if not self.limited:
            return Admitted(key, [], 0.0)
        verdict = self.budgets.admit(key, endpoint)
        decision = verdict.decision
        headers = rate_limit_raw(decision, self.retry_after, self.rate_headers)
        if not verdict.allowed:
            return error_response(
                429, "rate_limit_exceeded",
                f"Rate limit exceeded for {verdict.scope} "
                f"({decision.limit} per {decision.window_s:g}s); retry in "
                f"{decision.retry_after_s:.3f}s", headers)
        return Admitted(key, headers, verdict.delay_s)

    async def serve_ok(self, trace: Trace, admitted: Admitted, body: dict[str, Any],
                       completion_tokens: int, broken_field: str) -> Reply:
        """Sleep the injected latency, apply any fault, build the 200."""
        plan = self.faults.plan()
        delay = admitted.delay_s + self.latency.delay_s(completion_tokens) + plan.slow_s
        trace.injected = delay
        trace.fault = plan.kind or ("slow" if plan.slow_s else None)
        if delay > 0:
            await asyncio.sleep(delay)
        headers = admitted.headers
        if plan.kind is None:
            return json_response(200, body, headers)
        if plan.kind == "drop_connection":
            return DROP
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


def query_params(scope: dict[str, Any]) -> dict[str, str]:
    """The query string as a dict; the last value of a repeated name wins (as Starlette)."""
    raw = scope["query_string"]
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def read_body(receive: Callable[[], Any], limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def models(sim: Simulator, scope: dict[str, Any], receive: Any, trace: Trace) -> Reply:
    """``GET /v1/models?category=chat&sort=name``."""
    admitted = sim.gate(scope, MODELS.name, trace)
    if isinstance(admitted, Reply):
        return admitted
    trace.injected = 0.0
    params = query_params(scope)
    category = params.get("category")
    sort = params.get("sort")
    if sort is not None and sort not in SORTS:
        return error_response(400, "invalid_value",
                              f"'sort' must be one of {', '.join(SORTS)}", admitted.headers)
    if not sim.plain or admitted.delay_s:
        body = {"object": "list", "data": list_models(category, sort)}
        return await sim.serve_ok(trace, admitted, body, 0, "data")
    cache_key = (category if category is None or category in CATEGORIES
                 else UNKNOWN_CATEGORY, sort)
    cached = sim.models_cache.get(cache_key)
    if cached is None:
        encoded = dumps({"object": "list", "data": list_models(category, sort)})
        cached = sim.models_cache[cache_key] = (encoded, body_headers(encoded))
    return Reply(200, cached[0], admitted.headers + cached[1])


async def chat_completions(sim: Simulator, scope: dict[str, Any], receive: Any,
                           trace: Trace) -> Reply:
    """``POST /v1/chat/completions`` in the quick start's shape."""
    admitted = sim.gate(scope, CHAT.name, trace)
    if isinstance(admitted, Reply):
        return admitted
    trace.injected = 0.0
    limit = sim.config.max_body_bytes
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
            break
    raw = None
    if declared is None or not declared.isdigit() or int(declared) <= limit:
        raw = await read_body(receive, limit)
    if raw is None:
        return error_response(413, "request_too_large",
                              f"Request body is larger than {limit} bytes", admitted.headers)
    parsed = parse_chat(raw)
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
    return await sim.serve_ok(trace, admitted, body, completion_tokens, "usage")


#: The handler of each API endpoint, by endpoint name (secton_harness.endpoints); the
#: app routes every endpoint's method and path to it, so a new endpoint is one handler and
#: one entry here.
API_HANDLERS: dict[str, Callable[..., Any]] = {MODELS.name: models, CHAT.name: chat_completions}

HEALTHY = json_response(200, {"status": "ok"})


async def healthz(sim: Simulator, scope: dict[str, Any], receive: Any, trace: Trace) -> Reply:
    """Readiness: no auth, not rate limited."""
    return HEALTHY
