"""The rate-limit mapper's one way to send a request: a Locust ``FastHttpUser`` session,
paced so ``--max-rps`` is never exceeded and bounded by ``--max-requests``/``--max-duration``.

Why a user *instance* rather than a Locust runner: the mapper is a feedback loop (each
phase decides its next request from the last answers, to the millisecond), which a
spawn-rate-driven runner cannot express. The user class still gives Locust's pooled
geventhttpclient transport and fires Locust's ``request`` event for every request.

Every request is timed with ``perf_counter`` and written to the run's :class:`RecordSink`
(``source="ratelimit"``) before its answer is used, so an interrupted run keeps it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust import FastHttpUser
from locust.env import Environment

from secton_harness.endpoints import BY_NAME
from secton_harness.keys import ApiKey
from secton_harness.ratelimit_headers import parse_ratelimit
from secton_harness.records import RecordSink

CHAT_BODY = {"model": "copilot-mini", "messages": [{"role": "user", "content": "hi"}]}


#: This many answers in a row with no response or a 5xx mean the target is down: the
#: mapper stops instead of hammering it (the result says ``stopped_by: target_down``).
DOWN_AFTER_FAILURES = 20


class BoundReached(Exception):
    """A hard bound (``max_requests``, ``max_duration``) or a down target stopped the
    measurement."""

    def __init__(self, bound: str) -> None:
        super().__init__(bound)
        self.bound = bound


@dataclass
class Hit:
    """One request's outcome, times on the mapper's monotonic clock (seconds)."""

    t: float                 # monotonic send time
    ts: float                # epoch send time
    key: str
    endpoint: str
    phase: str
    step: str = ""
    status: int = -1         # -1 while in flight, 0 when no response
    latency_s: float = 0.0
    retry_after_s: float | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None
    window_s: float | None = None

    @property
    def done(self) -> bool:
        return self.status >= 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status == 429


class _MapperUser(FastHttpUser):
    """The mapper's Locust user; never scheduled, only its ``client`` is used."""

    abstract = True
    host = "http://127.0.0.1"
    concurrency = 64
    network_timeout = 30.0
    connection_timeout = 10.0
    insecure = False


def _join(base: str, path: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path


class Transport:
    """Paced, bounded, recorded requests to one target."""

    def __init__(self, target: str, sink: RecordSink, *, max_rps: float, max_requests: int,
                 max_duration_s: float, target_label: str = "") -> None:
        self.target = target
        self.sink = sink
        self.interval = 1.0 / max_rps
        self.max_requests = max_requests
        self.started = time.perf_counter()
        self.deadline = self.started + max_duration_s
        self.epoch0 = time.time() - (time.perf_counter() - self.started)
        self.sent = 0
        self._next_free = 0.0
        self.target_label = target_label
        user_cls = type("RateLimitUser", (_MapperUser,), {"host": target.rstrip("/")})
        self.env = Environment(user_classes=[user_cls], host=target)
        self.user = user_cls(self.env)
        self.pending: list[gevent.Greenlet] = []
        self.longest_reset_s = 0.0   # longest window/reset any header announced
        self.steps: dict[str, int] = {}
        self.failures_in_a_row = 0

    # ---------------------------------------------------------------- clock
    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float) -> None:
        if t > self.deadline:
            raise BoundReached("max_duration")
        delay = t - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)

    def epoch(self, t: float) -> float:
        return self.epoch0 + (t - self.started)

    # ---------------------------------------------------------------- sending
    def _pace(self) -> float:
        if self.sent >= self.max_requests:
            raise BoundReached("max_requests")
        if self.failures_in_a_row >= DOWN_AFTER_FAILURES:
            raise BoundReached("target_down")
        now = time.perf_counter()
        if now >= self.deadline:
            raise BoundReached("max_duration")
        if now < self._next_free:
            gevent.sleep(self._next_free - now)
            now = time.perf_counter()
        self._next_free = now + self.interval
        self.sent += 1
        return now

    def _count(self, step: str) -> None:
        self.steps[step] = self.steps.get(step, 0) + 1

    def send(self, key: ApiKey, phase: str, endpoint: str = "models", step: str = "") -> Hit:
        """Send one request and wait for its answer (``step``: the sub-phase, kept in
        the record's ``check`` column so org requests, all phase ``org``, stay apart)."""
        t = self._pace()
        hit = Hit(t=t, ts=self.epoch(t), key=key.alias, endpoint=endpoint, phase=phase,
                  step=step or phase)
        self._count(hit.step)
        self._do(hit, key)
        return hit

    def fire(self, key: ApiKey, phase: str, endpoint: str = "models",
             on_done: Callable[[Hit], None] | None = None, step: str = "") -> Hit:
        """Send one request without waiting; ``hit.done`` turns true when it is answered."""
        t = self._pace()
        hit = Hit(t=t, ts=self.epoch(t), key=key.alias, endpoint=endpoint, phase=phase,
                  step=step or phase)
        self._count(hit.step)
        self.pending.append(gevent.spawn(self._do, hit, key, on_done))
        return hit

    def drain(self, timeout_s: float = 35.0) -> None:
        """Wait for every request fired so far."""
        gevent.joinall(self.pending, timeout=timeout_s)
        self.pending = [g for g in self.pending if not g.dead]

    def _do(self, hit: Hit, key: ApiKey, on_done: Callable[[Hit], None] | None = None) -> None:
        path = BY_NAME[hit.endpoint].path
        headers = {"Authorization": f"Bearer {key.secret}", "Accept": "application/json"}
        kwargs: dict[str, Any] = {"headers": headers, "name": path}
        method = "GET"
        if hit.endpoint == "chat":
            method = "POST"
            kwargs["json"] = CHAT_BODY
        error = ""
        size = 0
        resp_headers: dict[str, str] = {}
        start = time.perf_counter()
        try:
            response = self.user.client.request(method, _join(self.target, path), **kwargs)
            status = int(response.status_code or 0)
            size = len(response.content or b"")
            resp_headers = {str(k): str(v) for k, v in (response.headers or {}).items()}
            if status == 0:
                error = "connect"
        except Exception as exc:  # transport failures become status 0 records
            status, error = 0, type(exc).__name__
        hit.latency_s = time.perf_counter() - start
        info = parse_ratelimit(resp_headers, now=time.time()) if resp_headers else None
        if info is not None:
            hit.retry_after_s = info.retry_after_s
            hit.limit, hit.remaining = info.limit, info.remaining
            hit.reset_s, hit.window_s = info.reset_s, info.window_s
            self.longest_reset_s = max(self.longest_reset_s, hit.reset_s or 0.0,
                                       hit.window_s or 0.0)
        hit.status = status
        down = status == 0 or status >= 500
        self.failures_in_a_row = self.failures_in_a_row + 1 if down else 0
        self.sink.add(
            ts=hit.ts, phase=hit.phase, endpoint=path, method=method, key_alias=key.alias,
            org=key.org, status=status, latency_s=hit.latency_s, error=error, bytes=size,
            retry_after_s=hit.retry_after_s, ratelimit_limit=hit.limit,
            ratelimit_remaining=hit.remaining, ratelimit_reset_s=hit.reset_s,
            target=self.target_label, success=hit.ok, check=hit.step,
        )
        if on_done is not None:
            on_done(hit)
