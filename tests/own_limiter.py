"""A minimal Secton-shaped API behind limiters nobody on the project wrote the maths of:
the ``limits`` library (moving window, sliding-window counter, as Flask-Limiter and
slowapi use it) and a penalty box (fixed window; once over, everything refused for a
cooldown). Only ``Retry-After`` is sent: no rate-limit headers, as many real APIs.

Run by the tests as a child process::

    python tests/own_limiter.py CONFIG.json     # prints "http://127.0.0.1:PORT" when ready

CONFIG: ``{"kind": "moving"|"sliding_counter"|"penalty", "keys": {secret: org},
"key": {"limit": N, "window_s": W, "cooldown_s": C}, "org": {...} | null}``. The org limit
is checked after the key's (a key refusal does not count against the org).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = json.dumps({"object": "list", "data": [
    {"id": "copilot-mini", "object": "model", "owned_by": "secton"}]}).encode()


class PenaltyBox:
    """Fixed window anchored at its first request; the request over the limit starts a
    cooldown during which every request is refused (refusals are not counted and do not
    extend it). A cooldown shorter than the window ends inside the same, still full,
    window: the next request starts another cooldown."""

    def __init__(self, limit: int, window_s: float, cooldown_s: float) -> None:
        self.limit, self.window_s, self.cooldown_s = limit, window_s, cooldown_s
        self.state: dict[str, list[float]] = {}   # name -> [window_start, count, blocked_until]
        self.lock = threading.Lock()

    def hit(self, name: str) -> float | None:
        """None when allowed, else seconds until allowed again."""
        now = time.monotonic()
        with self.lock:
            start, count, blocked = self.state.get(name, [now, 0, 0.0])
            if now < blocked:
                return blocked - now
            if now - start >= self.window_s:
                start, count = now, 0
            count += 1
            if count > self.limit:
                self.state[name] = [start, count, now + self.cooldown_s]
                return self.cooldown_s
            self.state[name] = [start, count, blocked]
            return None


class LimitsLib:
    """The ``limits`` library's strategies over its in-memory storage."""

    def __init__(self, kind: str, limit: int, window_s: float) -> None:
        from limits import RateLimitItemPerSecond, storage, strategies

        store = storage.MemoryStorage()
        strategy = (strategies.MovingWindowRateLimiter if kind == "moving"
                    else strategies.SlidingWindowCounterRateLimiter)
        self.limiter = strategy(store)
        self.item = RateLimitItemPerSecond(limit, int(window_s))

    def hit(self, name: str) -> float | None:
        if self.limiter.hit(self.item, name):
            return None
        reset = self.limiter.get_window_stats(self.item, name).reset_time
        return max(0.0, reset - time.time())


def build(kind: str, spec: dict[str, Any] | None) -> Any:
    if spec is None:
        return None
    if kind == "penalty":
        return PenaltyBox(spec["limit"], spec["window_s"], spec["cooldown_s"])
    return LimitsLib(kind, spec["limit"], spec["window_s"])


def serve(config: dict[str, Any]) -> None:
    keys: dict[str, str] = config["keys"]
    key_limiter = build(config["kind"], config["key"])
    org_limiter = build(config["kind"], config.get("org"))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            secret = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if secret not in keys:
                self._answer(401, b'{"error": {"type": "unauthorized"}}', {})
                return
            wait = key_limiter.hit(secret)
            if wait is None and org_limiter is not None:
                wait = org_limiter.hit(keys[secret])
            if wait is not None:
                self._answer(429, b'{"error": {"type": "rate_limited"}}',
                             {"Retry-After": str(max(1, math.ceil(wait)))})
                return
            self._answer(200, MODELS, {})

        do_GET = _handle
        do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        serve(json.load(handle))
