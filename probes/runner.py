"""Run one check once against one target: send, resolve, evaluate, decide.

A run never retries (the blackbox_exporter principle: a retry hides the very failure a
probe exists to see). Requests of a multi-request check (``auth_malformed``,
``org_isolation``) go out concurrently; the check's duration is the wall time of all of
them, and that duration is what the ``degraded``/``failed`` thresholds judge. The first
failed condition decides the one reason; the answer it failed on supplies the record's
status, endpoint and key alias.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from probes.config import CheckSettings, ProbesConfig
from secton_harness.client import ApiResponse, AsyncSectonClient, chat_payload
from secton_harness.contract import Contract
from secton_harness.endpoints import MODELS
from secton_harness.error_classes import TIMEOUT
from secton_harness.keys import ApiKey, KeyPool

from .checks import CheckSpec, RequestSpec, resolve_values
from .conditions import Condition, first_failure

_GRACE_S = 0.5
#: A check's ``detail`` holds resolved values from the answer: at most this many characters.
DETAIL_LIMIT_CHARS = 1000


@dataclass(frozen=True)
class ProbeTarget:
    """A target as the runner needs it: its label, URL and keys (secrets stay inside)."""

    label: str
    url: str
    keys: KeyPool
    probe_key: ApiKey
    timeout_cap_s: float | None = None

    def timeout_for(self, settings: CheckSettings) -> float:
        if self.timeout_cap_s is None:
            return settings.timeout
        return min(settings.timeout, self.timeout_cap_s)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one run of one check on one target."""

    check: str
    target: str
    ts: float
    duration_s: float
    success: bool
    degraded: bool = False
    skipped: bool = False
    reason: str = ""
    detail: str = ""
    status: int = 0
    method: str = ""
    endpoint: str = ""
    key_alias: str = ""
    org: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Conventional but undocumented fields missing (contract.CONVENTIONS): a pass.
    warnings: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        """``success``, ``warning``, ``degraded``, ``failure`` or ``skipped`` (the metrics'
        label). A warning and a degraded run both passed; degraded wins when both."""
        if self.skipped:
            return "skipped"
        if not self.success:
            return "failure"
        if self.degraded:
            return "degraded"
        return "warning" if self.warnings else "success"

    def record(self) -> dict[str, Any]:
        """The row for the run folder (records.SCHEMA columns; never a key)."""
        return {"ts": self.ts, "phase": "probe", "endpoint": self.endpoint,
                "method": self.method, "key_alias": self.key_alias, "org": self.org,
                "status": self.status, "latency_s": self.duration_s, "error": self.error,
                "target": self.target, "check": self.check, "success": self.success,
                "reason": self.reason, "detail": self.detail, **self.extra}


@dataclass(frozen=True)
class _Planned:
    spec: RequestSpec
    key: ApiKey | None
    authorization: str | None
    params: dict[str, Any] | None
    payload: dict[str, Any] | None


def applicable(spec: CheckSpec, target: ProbeTarget) -> str:
    """Why ``spec`` cannot run on ``target`` (empty when it can)."""
    orgs = target.keys.orgs
    if len(orgs) < spec.min_orgs:
        return (f"not applicable: needs keys of >= {spec.min_orgs} orgs, "
                f"{target.keys.described()}")
    return ""


def _plan(spec: CheckSpec, target: ProbeTarget, probes: ProbesConfig) -> list[_Planned]:
    planned = []
    for request in spec.requests:
        params = ({"category": probes.category, "sort": probes.sort}
                  if request.validate == MODELS.name else None)
        payload = None
        if request.method == "POST":
            extra = {"max_tokens": probes.max_tokens} if probes.max_tokens else {}
            payload = chat_payload(probes.model, [{"role": "user", "content": probes.prompt}],
                                   probes.temperature, **extra)
        key, auth = target.probe_key, None
        if request.auth == "none":
            key = None
        elif request.auth == "invalid":
            key, auth = None, f"Bearer sk-secton-probe-invalid-{secrets.token_hex(12)}"
        elif request.auth == "bearer_empty":
            key, auth = None, "Bearer"
        elif request.auth == "wrong_scheme":
            auth = f"Token {target.probe_key.secret}"
        if request.auth == "each_key":
            planned += [_Planned(request, k, None, params, payload) for k in target.keys]
        else:
            planned.append(_Planned(request, key, auth, params, payload))
    return planned


async def _send(client: AsyncSectonClient, plan: _Planned) -> ApiResponse:
    secret = plan.key.secret if plan.key is not None and plan.authorization is None else None
    return await client.request(plan.spec.method, plan.spec.path, key=secret,
                                authorization=plan.authorization, params=plan.params,
                                json_body=plan.payload)


def _extra(response: ApiResponse) -> dict[str, Any]:
    info = response.ratelimit
    usage = response.body.get("usage") if isinstance(response.body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    tokens = {f"{k}_tokens": usage.get(f"{k}_tokens") for k in ("prompt", "completion", "total")}
    return {"bytes": response.bytes, "retry_after_s": info.retry_after_s,
            "ratelimit_limit": info.limit, "ratelimit_remaining": info.remaining,
            "ratelimit_reset_s": info.reset_s,
            **{k: v for k, v in tokens.items() if isinstance(v, int) and not isinstance(v, bool)}}


async def run_check(spec: CheckSpec, settings: CheckSettings, target: ProbeTarget,
                    client: AsyncSectonClient, contract: Contract,
                    probes: ProbesConfig) -> CheckResult:
    """Run ``spec`` once on ``target``; never raises for anything the target does."""
    ts, start = time.time(), time.perf_counter()
    why_not = applicable(spec, target)
    if why_not:
        return CheckResult(spec.name, target.label, ts, 0.0, True, skipped=True,
                           detail=why_not)
    plans = _plan(spec, target, probes)
    timeout = target.timeout_for(settings)
    try:
        async with asyncio.timeout(timeout + _GRACE_S):
            responses = await asyncio.gather(*(_send(client, p) for p in plans))
    except TimeoutError:
        duration = time.perf_counter() - start
        first = plans[0]
        return CheckResult(spec.name, target.label, ts, duration, False, reason="timeout",
                           detail=f"expected [DURATION] < {timeout:g} (timeout, s), "
                                  f"got {duration:.3f}",
                           method=first.spec.method, endpoint=first.spec.path,
                           key_alias=first.key.alias if first.key else "",
                           org=first.key.org if first.key else "", error=TIMEOUT)
    duration = time.perf_counter() - start
    failure = None
    warnings: list[str] = []
    deciding = max(zip(plans, responses, strict=True), key=lambda pr: pr[1].latency_s)
    for plan, response in zip(plans, responses, strict=True):
        values, details = resolve_values(
            response, plan.spec.validate, contract, params=plan.params, payload=plan.payload,
            key_org=plan.key.org if plan.key else None, expected_models=probes.models_expected)
        warnings += [w for w in values["WARNINGS"] if w not in warnings]
        found = first_failure(spec.conditions, values)
        if found is not None:
            condition, outcome = found
            note = next((details[p] for p in sorted(condition.placeholders()) if p in details),
                        "")
            # the one place a probe turns an answer into text: redacted, one line, capped
            failure = (condition.reason, target.keys.redactor.text(
                outcome.shown + (f": {note}" if note else ""), limit=DETAIL_LIMIT_CHARS))
            deciding = (plan, response)
            break
    plan, response = deciding
    common = {"status": response.status, "method": plan.spec.method,
              "endpoint": plan.spec.path, "key_alias": plan.key.alias if plan.key else "",
              "org": plan.key.org if plan.key else "", "error": response.error,
              "extra": _extra(response)}
    if failure is not None:
        return CheckResult(spec.name, target.label, ts, duration, False, reason=failure[0],
                           detail=failure[1], **common)
    timings = {"DURATION": duration}
    too_slow = Condition.parse(f"[DURATION] <= {settings.failed:g}", "latency").evaluate(timings)
    if not too_slow.ok:
        return CheckResult(spec.name, target.label, ts, duration, False, reason="latency",
                           detail=f"{too_slow.shown} (failed threshold, s)", **common)
    slow = Condition.parse(f"[DURATION] <= {settings.degraded:g}", "latency").evaluate(timings)
    detail = "" if slow.ok else f"degraded: {slow.shown} (degraded threshold, s)"
    if not detail and spec.name == "ratelimit_headers" and not response.ratelimit.present:
        detail = "no rate-limit headers sent (nothing to check)"
    if warnings:
        detail = "; ".join([*filter(None, [detail]), *(f"warning: {w}" for w in warnings)])
    return CheckResult(spec.name, target.label, ts, duration, True, degraded=not slow.ok,
                       detail=detail, warnings=tuple(warnings), **common)
