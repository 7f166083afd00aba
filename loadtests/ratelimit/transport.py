"""The rate-limit mapper's one way to send a request: a Locust ``FastHttpUser`` session,
paced so ``--max-rps`` is never exceeded and bounded by ``--max-requests``/``--max-duration``.

Why a user *instance* rather than a Locust runner: the mapper is a feedback loop (each
phase decides its next request from the last answers, to the millisecond), which a
spawn-rate-driven runner cannot express. The user class still gives Locust's pooled
geventhttpclient transport and fires Locust's ``request`` event for every request.

Every request is timed with ``perf_counter`` and written to the run's :class:`RecordSink`
(``source="ratelimit"``) before its answer is used, so an interrupted run keeps it.

Requests go through :func:`loadtests.bounded_http.exchange` like the load users': no
redirect followed, head and body capped, and the whole answer due by the earlier of the
network timeout and the run's ``--max-duration`` deadline (the watchdog on a request in
flight: a trickling target cannot hold the run past its bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment

from loadtests.bounded_http import IDENTITY, BoundedUser, exchange
from secton_harness.answers import read_answer, succeeded
from secton_harness.endpoints import BY_NAME, CHAT, MODELS, api_url
from secton_harness.error_classes import TRANSPORT_CLASSES
from secton_harness.keys import ApiKey
from secton_harness.limits import max_body_bytes
from secton_harness.records import RecordSink
from secton_harness.redact import Redactor

CHAT_BODY = {"model": "copilot-mini", "messages": [{"role": "user", "content": "hi"}]}


#: This many answers in a row with no response or a 5xx mean the target is down: the
#: mapper stops instead of hammering it (the result says ``stopped_by: target_down``).
DOWN_AFTER_FAILURES = 20


class BoundReached(Exception):
    """A hard bound (``max_requests``, ``max_duration``) or a down target stopped the
    measurement."""

    def __init__(self, bound: str, why: str | None = None) -> None:
        super().__init__(bound)
        self.bound = bound
        #: what the bound cut short, in words (e.g. a wait that would pass the deadline)
        self.why = why
        #: a burst the bound cut short: what it had seen (``phases.ScopeRunner.burst``)
        self.burst: Any = None
        #: a rest probe's 429 whose announced wait the bound cut short
        self.rest_refusal: dict[str, Any] | None = None


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
    error: str = ""          # error class (secton_harness.error_classes), "" when none
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
        """A 2xx that arrived whole (a reset mid-body is not a success): the records'
        ``success`` (:func:`~secton_harness.answers.succeeded`)."""
        return succeeded(self.status, self.error)

    @property
    def refused(self) -> bool:
        return self.status == 429


class _MapperUser(BoundedUser):
    """The mapper's Locust user; never scheduled, only its ``client`` is used."""

    abstract = True
    host = "http://127.0.0.1"
    concurrency = 64
    network_timeout = 30.0
    connection_timeout = 10.0
    insecure = False


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
        self.max_body = max_body_bytes()
        self._secrets: dict[str, str] = {}
        self.redactor = Redactor()  # every key sent so far (a target may echo any of them)

    # ---------------------------------------------------------------- clock
    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float, what: str = "the next step") -> None:
        """Wait until ``t``; a wait that would pass ``--max-duration`` is not begun (the
        bound is raised at once, naming ``what`` was to be waited for)."""
        if t > self.deadline:
            raise BoundReached("max_duration", f"waiting {what} ({t - self.now():.2f}s) "
                                               "would exceed it")
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

    def send(self, key: ApiKey, phase: str, endpoint: str = MODELS.name, step: str = "") -> Hit:
        """Send one request and wait for its answer (``step``: the sub-phase, kept in
        the record's ``step`` column so org requests, all phase ``org``, stay apart)."""
        t = self._pace()
        hit = Hit(t=t, ts=self.epoch(t), key=key.alias, endpoint=endpoint, phase=phase,
                  step=step or phase)
        self._count(hit.step)
        self._do(hit, key)
        return hit

    def fire(self, key: ApiKey, phase: str, endpoint: str = MODELS.name,
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
        endpoint = BY_NAME[hit.endpoint]
        path, method = endpoint.path, endpoint.method
        if key.secret not in self._secrets:
            self._secrets[key.secret] = key.alias
            self.redactor = Redactor(self._secrets)
        headers = {"Authorization": f"Bearer {key.secret}", "Accept": "application/json",
                   **IDENTITY}
        kwargs: dict[str, Any] = {"headers": headers, "name": path}
        if endpoint is CHAT:
            kwargs["json"] = CHAT_BODY
        start = time.perf_counter()
        # the answer is due by the run's deadline too (plus a moment to record it)
        timeout_s = min(_MapperUser.network_timeout, self.deadline + 0.5 - start)
        _, got = exchange(self.user.client, method, api_url(self.target, path),
                          timeout_s=timeout_s, max_body=self.max_body, keep_body=False,
                          **kwargs)
        hit.latency_s = time.perf_counter() - start
        status = got.status
        # the core's one reading of an answer, as the load users' and the probes' records
        answer = read_answer(status, got.problem, got.response.headers if status else None,
                             self.redactor)
        info = answer.ratelimit
        hit.retry_after_s = answer.retry_after_s
        hit.limit, hit.remaining = answer.ratelimit_limit, answer.ratelimit_remaining
        hit.reset_s, hit.window_s = answer.ratelimit_reset_s, info.window_s
        self.longest_reset_s = max(self.longest_reset_s, hit.reset_s or 0.0,
                                   hit.window_s or 0.0)
        hit.error = answer.error
        hit.status = status
        down = status == 0 or status >= 500 or answer.error in TRANSPORT_CLASSES
        self.failures_in_a_row = self.failures_in_a_row + 1 if down else 0
        self.sink.add(
            ts=hit.ts, phase=hit.phase, endpoint=path, method=method, key_alias=key.alias,
            org=key.org, status=status, latency_s=hit.latency_s, error=answer.error,
            bytes=got.size, retry_after_s=hit.retry_after_s, ratelimit_limit=hit.limit,
            ratelimit_remaining=hit.remaining, ratelimit_reset_s=hit.reset_s,
            target=self.target_label, success=answer.success, step=hit.step,
            reason=answer.reason,
        )
        if on_done is not None:
            on_done(hit)
