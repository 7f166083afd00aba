"""Rate-limit figures and algorithm from the mapper's observations and records (pure).

No Locust, no network: the input is the observation dict the mapper's phases produced
for one scope (burst counts and times, cooldown brackets, the recovery shape, a second
"split" cycle) and the run's records as a pandas DataFrame; the output is the scope
object of ``ratelimit.json``. Reports can call :func:`infer_scope` again on stored data.

How each algorithm shows itself (``evidence`` names the facts used):

- budget returns *at once* after the cooldown (three fast requests all allowed) → a
  window or a penalty; then the split cycle (one request, a quiet gap of 30 % of the
  cooldown, then the burst) decides what the recovery is anchored to:
  the first request of the window (``fixed_window``/``sliding_window``: the window length
  is the same in both cycles) or the first 429 (``penalty_cooldown``: the cooldown is the
  same). Sliding windows give back only the aged-out request after the split cycle,
  fixed windows a full budget.
- budget returns *one at a time* (refusals right after the first success) → a bucket;
  single successes come back at ``1/rate``; latency growing through the burst (requests
  queued, not refused) marks ``leaky_bucket``, otherwise ``token_bucket``.
- a penalty that retries extend ends only when a probe gap exceeds it; a single quiet
  probe after that gap in the split cycle then succeeds at once.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import pandas as pd

ALGORITHMS = ("fixed_window", "sliding_window", "token_bucket", "leaky_bucket",
              "penalty_cooldown", "unknown")


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def bucket_capacity(allowed: int, rate: float, last_allowed_s: float) -> int:
    """A bucket's capacity from a burst fired faster than it refills: the burst also got
    ``rate * duration`` refilled tokens, which are not capacity."""
    return max(1, math.ceil(allowed - rate * last_allowed_s - 0.05))


def leaky_evidence(records: pd.DataFrame | None, phase: str, rate: float,
                   capacity: int) -> tuple[bool, float | None]:
    """Did latency grow through the burst as a queue would make it (leaky bucket)?"""
    if records is None or records.empty or rate <= 0:
        return False, None
    mask = (records["phase"] == phase) & (records["status"] == 200)
    if "check" in records:
        mask &= records["check"] == "burst"
    burst = records[mask]
    if len(burst) < 3:
        return False, None
    growth = float(burst["latency_s"].max() - burst["latency_s"].min())
    expected = (capacity - 1) / rate
    return growth > max(0.02, 0.5 * expected), growth


def retry_after_accuracy(cooldowns: list[dict[str, Any]], first_retry_after: list[float | None],
                         extends: bool, penalty_s: float | None) -> dict[str, Any]:
    """Retry-After's promise (sent time + value) against the recovery actually seen."""
    errors: list[float] = []
    present = False
    for cooldown, first in zip(cooldowns, first_retry_after, strict=False):
        if cooldown is None:
            continue
        announced = list(cooldown.get("retry_after", []))
        if first is not None:
            announced.insert(0, (0.0, first))
        present = present or bool(announced)
        if not announced:
            continue
        if extends and penalty_s is not None:
            at, value = announced[-1]
            errors.append(value - penalty_s)
            continue
        for at, value in announced:
            errors.append(at + value - cooldown["cooldown_s"])
    return {
        "present": present,
        "mean_error_s": _r(statistics.fmean(abs(e) for e in errors)) if errors else None,
        "max_error_s": _r(max(abs(e) for e in errors)) if errors else None,
        "mean_signed_error_s": _r(statistics.fmean(errors)) if errors else None,
        "samples": len(errors),
    }


def _unmeasured(obs: dict[str, Any], why: str) -> dict[str, Any]:
    burst = obs.get("burst_a") or {}
    return {
        "burst": int(burst.get("allowed", 0)), "sustained_per_min": None, "cooldown_s": None,
        "full_recovery_s": None, "algorithm": "unknown", "shared_across_endpoints": None,
        "retry_after": {"present": False, "mean_error_s": None, "max_error_s": None},
        "confidence": "low", "evidence": {"why": why, "burst_sent": burst.get("sent")},
    }


def all_returned(ret: dict[str, Any]) -> bool:
    """Every answered return probe allowed (key-limit refusals of an org scope are not
    answers), and at least two of them: a bucket refuses the one right after a success."""
    return ret.get("sent", 0) >= 2 and ret.get("allowed", 0) >= ret.get("sent", 0)


def scope_window(burst_a: dict[str, Any], burst: int) -> tuple[float | None, str]:
    """The scope's window from a ``RateLimit-Policy`` header, only when that header is
    plainly this scope's: its limit matches the burst. The 429 announces the refusing
    scope (for the org scope, the org); allowed responses the scope with least left."""
    for limit, window, where in (
            (burst_a.get("refusal_limit"), burst_a.get("refusal_window_s"), "the 429's"),
            (burst_a.get("header_limit"), burst_a.get("header_window_s"), "an allowed one's")):
        if window and limit is not None and abs(limit - burst) <= 1:
            return float(window), f"RateLimit-Policy of {where} response (limit {limit})"
    return None, "no RateLimit-Policy header of this scope's limit"


def infer_scope(obs: dict[str, Any], records: pd.DataFrame | None = None) -> dict[str, Any]:
    """One scope object (DESIGN.md ``ratelimit.json`` contract) from its observations."""
    if obs.get("unreachable"):
        return _unmeasured(obs, obs["unreachable"])
    burst_a = obs.get("burst_a")
    if not burst_a or not burst_a.get("refused"):
        return _unmeasured(obs, "no 429 within the burst: no limit found below "
                                f"{(burst_a or {}).get('sent', 0)} requests")
    cd_a = obs.get("cooldown_a")
    if cd_a is None:
        return _unmeasured(obs, "stopped before the cooldown ended")
    evidence: dict[str, Any] = {
        "burst_sent": burst_a["sent"], "burst_allowed": burst_a["allowed"],
        "burst_duration_s": _r(burst_a["last_allowed_s"]),
        "cooldown_probes": cd_a["probes"],
        "cooldown_bracket_s": [_r(cd_a["last_fail_s"]), _r(cd_a["success_s"])],
    }
    ret_a = obs.get("return_a") or {"allowed": 0, "sent": 0}
    evidence["after_recovery_allowed"] = f"{ret_a['allowed']}/{ret_a['sent']}"
    confidence = "high"
    extends = False
    penalty_s = None
    shape = "at_once" if all_returned(ret_a) else "gradual"
    evidence["recovery_shape"] = shape

    if shape == "gradual":
        rate_obs = obs.get("rate") or {}
        rate = rate_obs.get("rate_per_s")
        if not rate:
            return _unmeasured(obs, "the refill rate could not be measured")
        capacity = bucket_capacity(burst_a["allowed"], rate, burst_a["last_allowed_s"])
        leaky, growth = leaky_evidence(records, obs.get("burst_phase", "burst"), rate, capacity)
        algorithm = "leaky_bucket" if leaky else "token_bucket"
        evidence.update({
            "refill_rate_per_s": _r(rate, 4), "refill_successes": rate_obs.get("successes"),
            "refill_probe_step_s": _r(rate_obs.get("step_s")),
            "burst_latency_growth_s": _r(growth),
            "why": ("after a refusal, single successes return at 1/rate intervals"
                    + ("; burst latency grew like a queue" if leaky else
                       "; burst answered at once (not queued)")),
        })
        if (rate_obs.get("successes") or 0) < 4:
            confidence = "medium"
        burst = capacity
        cooldown = cd_a["cooldown_s"]
        # tokens left at the first 429 were 1 - rate * cooldown; full = capacity again
        full_recovery = (capacity - 1) / rate + cd_a["cooldown_s"]
        sustained = 60.0 * rate
    else:
        cycle_b = obs.get("cycle_b")
        if cycle_b is None or cycle_b.get("cooldown") is None:
            return _unmeasured(obs, "stopped before the second (split) cycle ended")
        cd_b = cycle_b["cooldown"]
        burst_b = cycle_b["burst"]
        ret_b = cycle_b.get("return") or {"allowed": 0, "sent": 0}
        c_a = cd_a["cooldown_s"]
        w_a = cd_a["t_recovered"] - burst_a["t0"]
        c_b = cd_b["cooldown_s"]
        w_b = cd_b["t_recovered"] - cycle_b["u0"]
        n_b = burst_b["allowed"] + 1
        evidence.update({
            "window_a_s": _r(w_a), "window_b_s": _r(w_b), "cooldown_a_s": _r(c_a),
            "cooldown_b_s": _r(c_b), "split_gap_s": _r(cycle_b["gap_s"]),
            "split_burst_allowed": n_b,
            "after_split_recovery_allowed": f"{ret_b['allowed']}/{ret_b['sent']}",
        })
        burst = int(burst_a["allowed"])
        ext_probe = cycle_b.get("ext_probe_s")
        if ext_probe is not None and cd_b.get("first_probe_ok"):
            extends = True
            algorithm = "penalty_cooldown"
            penalty_s = (cd_a["prev_gap_s"] + min(cd_a["last_gap_s"], ext_probe)) / 2
            cooldown = full_recovery = penalty_s
            evidence["why"] = (
                f"probing every <{cd_a['prev_gap_s']:.3f}s kept it refused for "
                f"{c_a:.2f}s, one probe after a quiet {ext_probe:.3f}s succeeded: "
                "retries during the cooldown extend it")
        else:
            e_window = abs(w_b - w_a) / w_a
            e_penalty = abs(c_b - c_a) / c_a if c_a > 0 else math.inf
            evidence["anchor_mismatch"] = {"window": _r(e_window), "penalty": _r(e_penalty)}
            if e_penalty < e_window:
                algorithm = "penalty_cooldown"
                cooldown = full_recovery = (c_a + c_b) / 2
                penalty_s = cooldown
                evidence["why"] = ("the cooldown is the same after both bursts although the "
                                   "second began later in its window: a penalty from the "
                                   "first 429, not a window")
            elif all_returned(ret_b):
                algorithm = "fixed_window"
                cooldown = full_recovery = c_a
                evidence["why"] = ("the full budget returns at once, at the same time after "
                                   "the window's first request in both cycles")
            else:
                algorithm = "sliding_window"
                cooldown = c_a
                full_recovery = c_a + burst_a["last_allowed_s"]
                evidence["why"] = ("after the split cycle only the aged-out request came "
                                   "back: capacity returns as old requests leave the window")
            if min(e_window, e_penalty) > 0.15 or min(e_window, e_penalty) * 2 > max(
                    e_window, e_penalty):
                confidence = "medium"
        if abs(n_b - burst) > 1:
            confidence = "medium"
            evidence["burst_mismatch"] = f"second burst allowed {n_b}, first {burst}"
        if algorithm == "penalty_cooldown":
            window, source = scope_window(burst_a, burst)
            if window:
                sustained = 60.0 * burst / window
                evidence["window_from"] = source
            else:
                # a penalty hides its window: first burst to recovery is only a bound
                sustained = 60.0 * burst / max(w_a, 1e-9)
                evidence["window_from"] = f"first burst to recovery ({source})"
                confidence = "medium"
        else:
            sustained = 60.0 * burst / w_a

    ends = obs.get("endpoints") or {}
    shared = {429: True}.get(ends.get("status"), False if ends.get("status") == 200 else None)
    if ends:
        evidence["other_endpoint"] = (f"{ends.get('other')}: {ends.get('allowed')}/"
                                      f"{ends.get('sent')} allowed right after the 429")
    if obs.get("rest_check"):
        evidence["rest_check"] = obs["rest_check"]
    key_refused = sum((part or {}).get("key_refused", 0) for part in (
        ret_a, (obs.get("cycle_b") or {}).get("return")))
    if key_refused:
        evidence["key_limit_refusals_set_aside"] = key_refused
    for name in ("sibling", "outsider"):
        if obs.get(name):
            evidence[name] = obs[name]
    cooldowns = [cd_a, (obs.get("cycle_b") or {}).get("cooldown")]
    firsts = [burst_a.get("retry_after_s"),
              ((obs.get("cycle_b") or {}).get("burst") or {}).get("retry_after_s")]
    retry = retry_after_accuracy(cooldowns, firsts, extends, penalty_s)
    if burst_a.get("reset_s") is not None:
        evidence["reset_header_error_s"] = _r(burst_a["reset_s"] - full_recovery)
    sustained, confidence = apply_verification(obs.get("verify"), sustained, confidence,
                                               evidence)
    if obs.get("stopped_by"):
        confidence = "low"
    return {
        "burst": int(burst),
        "sustained_per_min": _r(sustained, 2),
        "cooldown_s": _r(cooldown),
        "full_recovery_s": _r(full_recovery),
        "algorithm": algorithm,
        "penalty_extends": extends,
        "shared_across_endpoints": shared,
        "retry_after": retry,
        "confidence": confidence,
        "evidence": evidence,
    }


LOWER = {"high": "medium", "medium": "low", "low": "low"}


def apply_verification(verify: dict[str, Any] | None, sustained: float, confidence: str,
                       evidence: dict[str, Any]) -> tuple[float, str]:
    """The steady runs' verdict on the inferred sustained rate: a 429 at 90 % means the
    estimate is too high (lowered below the failing rate, confidence down a step); no 429
    at 120 % means it may be too low (confidence down a step)."""
    if not verify:
        return sustained, confidence
    if verify.get("skipped") or verify.get("stopped_by"):
        why = verify.get("skipped") or f"stopped by {verify.get('stopped_by')}"
        evidence["sustained_check"] = f"not verified: {why}"
        return sustained, confidence
    at_90 = verify.get("at_90") or {}
    lines = []
    if at_90.get("refused"):
        lines.append(f"a steady {at_90['rate_per_min']}/min (90 %) saw a 429 after "
                     f"{at_90['first_429_at']} requests: the estimate "
                     f"{sustained:.1f}/min was lowered to 81 %")
        sustained, confidence = 0.9 * at_90["rate_per_min"], LOWER[confidence]
    elif at_90:
        lines.append(f"a steady {at_90['rate_per_min']}/min (90 %) for {at_90['sent']} "
                     f"requests from {verify.get('from')} saw no 429")
    at_120 = verify.get("at_120")
    if at_120 and at_120.get("refused"):
        lines.append(f"{at_120['rate_per_min']}/min (120 %) saw a 429 after "
                     f"{at_120['first_429_at']} requests")
    elif at_120:
        lines.append(f"{at_120['rate_per_min']}/min (120 %) saw no 429 in {at_120['sent']} "
                     "requests: the rate may be higher")
        confidence = LOWER[confidence]
    elif verify.get("at_120_skipped"):
        lines.append(f"120 % run skipped: {verify['at_120_skipped']}")
    evidence["sustained_check"] = "; ".join(lines)
    return sustained, confidence


def request_counts(records: pd.DataFrame) -> dict[str, int]:
    """Requests per phase (the cost table of the report)."""
    if records.empty:
        return {}
    return {str(k): int(v) for k, v in records.groupby("phase").size().items()}


def cost_summary(records: pd.DataFrame, scopes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``requests_sent`` beside the minimum (a burst + its 429 per scope, plus recovery
    probes) and the issue's bound ``3 x (key burst + org burst) + recovery probes``, where
    probes are every request that is not part of a burst or a rest probe (cooldown,
    recovery, sustained-rate grid, and the one- or two-request side checks)."""
    counts = request_counts(records)
    steps = records["check"] if "check" in records else pd.Series([], dtype=str)
    probes = int(steps.isin(["cooldown", "recovery", "sustained", "endpoints",
                             "isolation"]).sum())
    bursts = sum((s.get("burst") or 0) for s in scopes.values())
    sent = len(records)
    minimum = sum((s.get("burst") or 0) + 1 for s in scopes.values())
    bound = 3 * bursts + probes
    return {"requests_sent": sent, "minimum_bursts": minimum, "recovery_probes": probes,
            "bound": bound, "within_bound": sent <= bound, "by_phase": counts}
