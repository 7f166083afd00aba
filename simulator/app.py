"""The reference Secton API as a plain ASGI app: ``build_app(config) -> SimulatorApp``.

Why no framework: the server must never be the bottleneck of a load test (at least 2x
one Locust process, docs/reference-server.md). Under Starlette, py-spy put ~60 % of the
server's time in the framework (middleware chain, Request/Response objects, routing) for
five fixed routes. Here one dict lookup routes, handlers (handlers.py) return a
:class:`Reply` with the raw header list already built, and the ground truth is counted in
the same call.
Behaviour is what the Starlette app did: JSON everywhere, 404 for unknown paths, 405 with
``Allow`` (GET routes also answer HEAD), a JSON 500 for any bug, lifespan shutdown
writing ``--stats-file``.

Dropped connections: ASGI gives an app no way to abort, and raising before
``http.response.start`` makes uvicorn answer 500. uvicorn's ``send`` is a bound method
of its per-request cycle object, which carries the connection's ``transport``: the app
sets ``SO_LINGER`` to 0 and calls ``transport.abort()``, so the client sees a TCP reset
and not one byte of response. Under another server without that attribute it falls back
to raising (the server's own 500 or close).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from secton_harness.endpoints import ENDPOINTS
from simulator.config import SimulatorConfig
from simulator.handlers import (
    API_HANDLERS,
    DROP,
    ClientGone,
    Simulator,
    Trace,
    healthz,
)
from simulator.responses import Reply, error_response, json_response

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Simulator, Scope, Receive, Trace], Awaitable[Reply]]

#: Path -> the endpoint name the ground-truth stats count under.
STATS_NAMES = {endpoint.path: endpoint.name for endpoint in ENDPOINTS} | {"/healthz": "healthz"}
log = logging.getLogger("simulator")


async def admin_stats(sim: Simulator, scope: Scope, receive: Receive, trace: Trace) -> Reply:
    """Ground truth since start or the last reset (aliases only, never keys)."""
    return _admin_refusal(sim, scope) or json_response(200, sim.stats.snapshot())


async def admin_reset(sim: Simulator, scope: Scope, receive: Receive, trace: Trace) -> Reply:
    """Zero the stats and rest every limiter (for tests)."""
    refusal = _admin_refusal(sim, scope)
    if refusal is not None:
        return refusal
    sim.reset()
    return json_response(200, {"status": "reset"})


def _admin_refusal(sim: Simulator, scope: Scope) -> Reply | None:
    if not sim.config.admin.enabled:
        return not_found(scope)
    client = scope.get("client")
    try:
        loopback = ipaddress.ip_address(client[0] if client else "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return error_response(403, "forbidden", "Admin endpoints answer loopback clients only")
    return None


def not_found(scope: Scope) -> Reply:
    """404 in the one error shape."""
    return error_response(404, "not_found", f"No such path: {scope['path']}")


@dataclass(frozen=True, slots=True)
class Route:
    """One path: its method (GET also answers HEAD), its handler and ``Allow`` value."""

    method: str
    handler: Handler
    allow: bytes


def _route(method: str, handler: Handler) -> Route:
    return Route(method, handler, b"GET, HEAD" if method == "GET" else method.encode())


ROUTES = {
    **{endpoint.path: _route(endpoint.method, API_HANDLERS[endpoint.name])
       for endpoint in ENDPOINTS},
    "/healthz": _route("GET", healthz),
    "/_admin/stats": _route("GET", admin_stats),
    "/_admin/reset": _route("POST", admin_reset),
}


class SimulatorApp:
    """The ASGI callable: routes, records the ground truth, sends or drops the reply."""

    def __init__(self, sim: Simulator, stats_file: str | None = None) -> None:
        self.sim = sim
        self.stats_file = stats_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request: route, handle, send, count (admin requests are not counted)."""
        path = scope["path"]
        trace = Trace()
        status = 0
        try:
            reply = await self.handle(path, scope, receive, trace)
            if reply is DROP:
                await _abort(send)
            else:
                status = reply.status
                await send({"type": "http.response.start", "status": status,
                            "headers": reply.headers})
                await send({"type": "http.response.body", "body": reply.body})
        finally:
            if not path.startswith("/_admin/"):
                self.sim.stats.record(trace.alias, trace.org, STATS_NAMES.get(path, "other"),
                                      status, trace.injected, trace.fault)

    async def handle(self, path: str, scope: Scope, receive: Receive, trace: Trace) -> Reply:
        """The reply for one request; any bug becomes a JSON 500."""
        route = ROUTES.get(path)
        if route is None:
            return not_found(scope)
        method = scope["method"]
        if method != route.method and not (method == "HEAD" and route.method == "GET"):
            return error_response(405, "method_not_allowed",
                                  f"Method {method} not allowed on {path}",
                                  [(b"allow", route.allow)])
        try:
            return await route.handler(self.sim, scope, receive, trace)
        except ClientGone:
            return error_response(500, "internal_error", "Internal server error")
        except Exception:
            log.exception("request to %s failed", path)
            return error_response(500, "internal_error", "Internal server error")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Startup needs nothing; shutdown writes the ground truth to ``--stats-file``."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    if self.stats_file:
                        self.sim.stats.write(self.stats_file)
                except Exception as error:
                    await send({"type": "lifespan.shutdown.failed",
                                "message": f"cannot write stats file: {error}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


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


def build_app(config: SimulatorConfig, clock: Callable[[], float] = time.monotonic,
              stats_file: str | None = None) -> SimulatorApp:
    """The ASGI app for ``config``; ``clock`` drives the limiters (monotonic seconds)."""
    return SimulatorApp(Simulator(config, clock), stats_file)
