"""Locust users for the Secton API: one class per endpoint, each user bound to one key.

Users do not pace themselves: each claims the next :data:`~loadtests.pacing.Ticket` of
its endpoint's pacer, waits until it is due and sends, so the *scenario* sets the rate and
``users`` only caps concurrency. Every request becomes one record (full-precision latency
from our own ``perf_counter``, tokens from ``usage``, the raw rate-limit headers, the error
class) and one Locust request event (for Locust's stats and web UI). A 429 is a Locust failure named
``429 rate limited`` but is *not* an error in the records: it is counted apart.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import gevent
from locust import constant, task
from locust.exception import CatchResponseError

from loadtests.bounded_http import IDENTITY, BoundedUser, Exchange, send
from loadtests.process_plan import LoadPlan
from loadtests.recorder import RECORD_FIELDS
from secton_harness.answers import read_answer, succeeded
from secton_harness.endpoints import BY_NAME, CHAT, MODELS
from secton_harness.error_classes import (
    CANCELLED,
    CONTENT_TYPE,
    CONTRACT,
    HARNESS,
    INVALID_JSON,
    REDIRECT,
)
from secton_harness.limits import max_body_bytes
from secton_harness.redact import Redactor

IDLE_S = 0.2
_STATUS, _ERROR, _REASON, _LATENCY = (RECORD_FIELDS.index(name) for name in (
    "status", "error", "reason", "latency_s"))
_NO_TOKENS: tuple[int | None, ...] = (None, None, None)


def _header(headers: Any, name: str) -> str | None:
    """One header's value (the last one if repeated), None when absent.

    ``in`` first: geventhttpclient's ``Headers.get`` raises and catches a KeyError for
    every absent header, which costs more than the lookup itself on the load path.
    """
    if name not in headers:
        return None
    value = headers[name]
    return value[-1] if isinstance(value, list) else value


def _redactor(plan: LoadPlan) -> Redactor:
    """The process's one redactor for text from the target (every key of the plan)."""
    found: Redactor | None = getattr(plan, "_secton_redactor", None)
    if found is None:
        found = Redactor({key.secret: key.alias for key in plan.keys})
        plan._secton_redactor = found  # type: ignore[attr-defined]
    return found


class SectonUser(BoundedUser):
    """Base class: ticket loop, key binding, record building. Not run on its own."""

    abstract = True
    endpoint_name: ClassVar[str] = ""
    sends_json: ClassVar[bool] = False
    wait_time = constant(0)

    def on_start(self) -> None:
        self.plan: LoadPlan = self.environment.secton_plan
        self.key = self.plan.next_key()
        self.rng = self.plan.user_rng()
        self.headers = {"Authorization": f"Bearer {self.key.secret}", **IDENTITY}
        if self.sends_json:  # a GET has no body to describe (and every header costs)
            self.headers["Content-Type"] = "application/json"
        endpoint = BY_NAME[self.endpoint_name]
        self.method, self.path = endpoint.method, endpoint.path
        # the request line's target: the path under the host's own path, if it has one
        self.uri = urlsplit(self.host or "").path.rstrip("/") + self.path
        self.redactor = _redactor(self.plan)
        self.redact = self.redactor.text
        self.max_body = max_body_bytes()
        self.pool = self.plan.pool(self.endpoint_name)
        self.wire = self.open_wire(self.headers)
        self.pool.joined()

    def on_stop(self) -> None:
        self.pool.left()

    @task
    def send(self) -> None:
        pacer = self.plan.pacers.get(self.endpoint_name)
        if pacer is None:  # before the pacers start, or no rate for this endpoint here
            if self.plan.pacing_started.is_set():
                gevent.sleep(IDLE_S)
            else:  # wake as soon as the pacers start, not up to IDLE_S late
                self.plan.pacing_started.wait(IDLE_S)
            return
        ticket = pacer.take()
        if ticket is None:  # the schedule is over: idle until Locust stops the user
            gevent.sleep(IDLE_S)
            return
        recorder = self.plan.recorder
        if recorder is not None:
            recorder.inflight += 1
        started = self.pool.acquire()
        try:
            self.request_once(*ticket)
        finally:
            self.pool.release(started)
            if recorder is not None:
                recorder.inflight -= 1

    def build_request(self) -> tuple[str, bytes, dict[str, Any] | None, dict[str, str]]:
        """(request target, body, the JSON payload or None, the query parameters)."""
        raise NotImplementedError

    def request_once(self, intended_ts: float, phase: str) -> None:
        """Send one request and record it, whatever happens.

        Every request that may have reached the target leaves one record: a request still
        open when the run stops (the user is killed) is recorded as ``cancelled``, and an
        exception in the harness's own code as ``harness`` (its type as the reason).
        """
        ts = time.time()
        start = time.perf_counter()
        row: tuple[Any, ...] | None = None
        try:
            uri, body, payload, params = self.build_request()
            validate = (self.plan.contract is not None
                        and self.rng.random() < self.plan.scenario.validate_sample)
            ts = time.time()  # the send, not the building of the request
            start = time.perf_counter()
            # no redirect followed, body and head capped, the whole answer within the timeout
            got = send(self.wire, self.method, uri, body, timeout_s=self.plan.scenario.timeout,
                       max_body=self.max_body, keep_body=validate or self.endpoint_name == "chat")
            latency = time.perf_counter() - start
            try:
                row = self.record(got, ts, latency, intended_ts, phase, payload, params,
                                  validate)
            except Exception as exc:  # a bug or a hostile answer: still one record
                row = self.failed(ts, latency, intended_ts, phase, HARNESS, type(exc).__name__)
            status, error = row[_STATUS], row[_ERROR]
            if got.response is None:  # no answer (deadline, refused, reset, head cap ...)
                self.fire(row, RuntimeError(f"{error}: {row[_REASON]}"))
            elif status == 429:
                self.fire(row, CatchResponseError("429 rate limited"), got.size)
            elif error:
                self.fire(row, CatchResponseError(f"{error}: {row[_REASON] or status}"),
                          got.size)
            else:
                self.fire(row, None, got.size)
        except gevent.GreenletExit:
            row = self.failed(ts, time.perf_counter() - start, intended_ts, phase, CANCELLED,
                              "still open when the run stopped")
            self.fire(row, RuntimeError(CANCELLED))
            raise
        except Exception as exc:
            row = self.failed(ts, time.perf_counter() - start, intended_ts, phase, HARNESS,
                              type(exc).__name__)
            # the exception's text may quote what the target sent: Locust's error table and
            # locust.log get the record's (redacted) words instead
            self.fire(row, RuntimeError(f"{HARNESS}: {row[_REASON]}"))
        finally:
            if row is not None and self.plan.recorder is not None:
                self.plan.recorder.add(row)

    def failed(self, ts: float, latency: float, intended_ts: float, phase: str, error: str,
               reason: str) -> tuple[Any, ...]:
        """The record of a request that got no usable answer."""
        return (ts, intended_ts, phase, self.path, self.method, self.key.alias, self.key.org,
                0, latency, 0, error, reason, False, None, None, None, None, *_NO_TOKENS)

    def fire(self, row: tuple[Any, ...], exc: BaseException | None, size: int = 0) -> None:
        """The Locust request event of a request (one event per record, for Locust's stats
        and web UI; a failure's text is the record's, redacted)."""
        self.environment.events.request.fire(
            request_type=self.method, name=self.path, response_time=row[_LATENCY] * 1000,
            response_length=size, exception=exc, context={}, response=None, url=self.path,
            start_time=row[0])

    def record(self, got: Exchange, ts: float, latency: float, intended_ts: float, phase: str,
               payload: dict[str, Any] | None, params: dict[str, str],
               validate: bool) -> tuple[Any, ...]:
        """The request's record: a tuple in the order of :data:`RECORD_FIELDS`.

        A tuple, not a dict: made once per request and kept until the next flush, it costs
        a third of a dict to build and to hold, and Arrow converts it column-wise.
        """
        status, error, reason, success, limit, remaining, reset, retry_after, _ = read_answer(
            got.status, got.problem, got.headers, self.redactor)
        tokens: tuple[int | None, ...] = _NO_TOKENS
        if status != 429 and got.problem is None and status:  # a 429 is counted apart
            error, reason, tokens = self.judge(status, error, got.headers, got.content,
                                               payload, params, validate)
            success = succeeded(status, error)
        return (ts, intended_ts, phase, self.path, self.method, self.key.alias, self.key.org,
                status, latency, got.size, error, reason, success, limit, remaining, reset,
                retry_after, *tokens)

    def judge(self, status: int, error: str, headers: Any, content: bytes,
              payload: dict[str, Any] | None, params: dict[str, str],
              validate: bool) -> tuple[str, str, tuple[int | None, ...]]:
        """(error class, reason, (prompt, completion, total tokens)) of a whole non-429
        answer whose status :func:`~secton_harness.answers.read_answer` classed as ``error``
        (``http`` for >= 400, ``redirect`` for a 3xx, never followed, ``""`` for a 2xx).

        The body is only parsed when it is needed: to validate it (sampled) or to read a
        chat completion's token usage.
        """
        if error == REDIRECT or not (validate or (status < 300 and self.endpoint_name == "chat")):
            return error, "", _NO_TOKENS
        content_type = _header(headers, "content-type") or ""
        if "json" not in content_type:
            return CONTENT_TYPE, self.redact(content_type), _NO_TOKENS
        try:
            body = json.loads(content)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            return INVALID_JSON, self.redact(exc), _NO_TOKENS
        tokens = _NO_TOKENS
        usage = body.get("usage") if status < 300 and isinstance(body, dict) else None
        if isinstance(usage, dict):
            tokens = tuple(value if isinstance(value := usage.get(kind), int) else None
                           for kind in ("prompt_tokens", "completion_tokens", "total_tokens"))
        reason = ""
        if validate:
            violations = self.validate(status, body, payload, params)
            if violations:
                error = error or CONTRACT
                reason = self.redact(violations[0])
        return error, reason, tokens

    def validate(self, status: int, body: Any, payload: dict[str, Any] | None,
                 params: dict[str, str]) -> list[Any]:
        contract = self.plan.contract
        if status >= 300:
            return contract.check_error(body)
        if self.endpoint_name == "models":
            return contract.check_models(body, params or None)
        return contract.check_chat(payload, body, expected_org=self.key.org)


class ModelsUser(SectonUser):
    """``GET /v1/models`` with query parameters drawn from the scenario's ``params``."""

    endpoint_name = MODELS.name
    fixed_count = 1

    def on_start(self) -> None:
        super().on_start()
        # each params table's request target, encoded once (as the session's URL would)
        self.choices = [(f"{self.uri}?{urlencode(params)}" if params else self.uri, params)
                        for params in self.plan.scenario.endpoints.models.params]

    def build_request(self) -> tuple[str, bytes, dict[str, Any] | None, dict[str, str]]:
        choices = self.choices
        uri, params = self.rng.choice(choices) if len(choices) > 1 else choices[0]
        return uri, b"", None, params


class ChatUser(SectonUser):
    """``POST /v1/chat/completions`` with a model, prompt and prompt size drawn at random."""

    endpoint_name = CHAT.name
    sends_json = True
    fixed_count = 1

    def build_request(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        chat = self.plan.scenario.endpoints.chat
        prompt = self.rng.choice(chat.prompts)
        words = self.rng.choice(chat.prompt_words)
        if words:
            base = prompt.split() or ["hello"]
            prompt = " ".join(base[i % len(base)] for i in range(words))
        payload: dict[str, Any] = {"model": self.rng.choice(chat.models),
                                   "messages": [{"role": "user", "content": prompt}]}
        if chat.temperature is not None:
            payload["temperature"] = chat.temperature
        return self.uri, json.dumps(payload).encode(), payload, {}


#: The user class of each endpoint, by endpoint name: the Locust file exposes, sizes and
#: paces every class listed here, so an endpoint's load is one class in this module.
USER_CLASSES: dict[str, type[SectonUser]] = {cls.endpoint_name: cls
                                             for cls in (ModelsUser, ChatUser)}
