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
from dataclasses import dataclass
from typing import Any

import pandas as pd

from secton_harness.ratelimit_model import CONFIDENCE


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
    if STEP_COLUMN in records:
        mask &= records[STEP_COLUMN] == "burst"
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
        "burst": int(burst.get("allowed", 0)), "sustained_per_min": None,
        "sustained_bound": {"at_least": None, "at_most": None, "why": why},
        "cooldown_s": None, "full_recovery_s": None, "algorithm": "unknown",
        "penalty_extends": None, "refusals_count": None, "shared_across_endpoints": None,
        "retry_after": {"present": False, "mean_error_s": None, "max_error_s": None},
        "confidence": "low", "unverified": ["sustained_per_min"],
        "evidence": {"why": why, "burst_sent": burst.get("sent"),
                     "burst_allowed": burst.get("allowed")},
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
        successes = rate_obs.get("successes") or 0
        if not rate or successes < 2:
            # one success (or none) is no interval: a rate from it would be a search step
            return _unmeasured(obs, f"the refill rate was not measured ({successes} "
                                    "success(es) after a refusal; two are needed)")
        family = "bucket"
        evidence.update({
            "refill_rate_per_s": _r(rate, 4), "refill_successes": successes,
            "refill_probe_step_s": _r(rate_obs.get("step_s")),
        })
        if successes < 4:
            confidence = "medium"
        sustained = 60.0 * rate
        cooldown = cd_a["cooldown_s"]
        counter = counter_evidence(obs, rate)
        if counter is not None:
            family = "counter"
            algorithm = "sliding_window_counter"
            burst = int(max(burst_a["allowed"], counter["second_burst_allowed"] or 0))
            # the previous period weighs until one period after the boundary
            full_recovery = cooldown + burst / rate
            evidence.update(counter)
            evidence["why"] = (
                f"single successes return at 1/rate ({1 / rate:.3f}s), but the first one "
                f"came {counter['longest_cooldown_s']:.3f}s after the 429: a bucket "
                "refills within 1/rate; a counter waits for its period to end, then lets "
                "the previous period's weight decay")
        else:
            capacity = bucket_capacity(burst_a["allowed"], rate, burst_a["last_allowed_s"])
            leaky, growth = leaky_evidence(records, obs.get("burst_phase", "burst"), rate,
                                           capacity)
            algorithm = "leaky_bucket" if leaky else "token_bucket"
            evidence.update({
                "burst_latency_growth_s": _r(growth),
                "why": ("after a refusal, single successes return at 1/rate intervals, the "
                        "first within 1/rate of the 429"
                        + ("; burst latency grew like a queue" if leaky else
                           "; burst answered at once (not queued)")),
            })
            burst = capacity
            # tokens left at the first 429 were 1 - rate * cooldown; full = capacity again
            full_recovery = (capacity - 1) / rate + cd_a["cooldown_s"]
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
            family = "penalty"
            if window:
                sustained = 60.0 * burst / window
                evidence["window_from"] = source
            else:
                # a penalty hides its window: first burst to recovery is only a guess for
                # the verification to test, never reported unverified
                sustained = 60.0 * burst / max(w_a, 1e-9)
                evidence["window_from"] = f"first burst to recovery, a guess ({source})"
        else:
            family = "window"
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
    evidence["family"] = family
    evidence["sustained_estimate_per_min"] = _r(sustained, 2)
    verdict = apply_verification(obs.get("verify"), sustained, algorithm, evidence, family)
    confidence = min(confidence, verdict.confidence, key=CONFIDENCE.index)
    if obs.get("stopped_by"):
        confidence = "low"
    return {
        "burst": int(burst),
        "sustained_per_min": _r(verdict.sustained, 2),
        "sustained_bound": verdict.bound,
        "cooldown_s": _r(cooldown),
        "full_recovery_s": _r(full_recovery),
        "algorithm": verdict.algorithm,
        "penalty_extends": extends,
        "refusals_count": refusals_count(obs, extends),
        "shared_across_endpoints": shared,
        "retry_after": retry,
        "confidence": confidence,
        "unverified": [] if verdict.sustained is not None else ["sustained_per_min"],
        "evidence": evidence,
    }


def estimate(obs: dict[str, Any]) -> dict[str, Any]:
    """What the verification tests: the inferred (unverified) sustained rate, the burst
    and the limiter family (bucket, counter, window, penalty)."""
    scope = infer_scope({k: v for k, v in obs.items() if k != "verify"})
    evidence = scope["evidence"]
    return {"estimate_per_min": evidence.get("sustained_estimate_per_min"),
            "burst": scope.get("burst"), "family": evidence.get("family")}


def counter_evidence(obs: dict[str, Any], rate: float) -> dict[str, Any] | None:
    """A sliding-window counter (HAProxy ``http_req_rate``, the ``limits`` library's
    sliding-window counter) returns single successes like a bucket, but its first success
    waits for the period to end: after a burst, a bucket has a token back within 1/rate, a
    counter only at the period's boundary. Two bursts at different phases of the period
    (the driver rests 2.5 periods between them), so one ending near a boundary cannot hide
    it. None when both cooldowns are a bucket's."""
    second = obs.get("bucket_b") or {}
    cooldowns = [obs["cooldown_a"]["cooldown_s"]]
    if second.get("cooldown"):
        cooldowns.append(second["cooldown"]["cooldown_s"])
    longest = max(cooldowns)
    if longest <= 2.0 / rate + 0.1:
        return None
    return {"longest_cooldown_s": _r(longest), "cooldowns_s": [_r(c) for c in cooldowns],
            "second_burst_allowed": (second.get("burst") or {}).get("allowed")}


def refusals_count(obs: dict[str, Any], extends: bool) -> bool | None:
    """Do refused requests count against the limit (retrying during a block extends it)?
    True for an extending penalty and when the driver's quiet-probe test saw the block end
    sooner without retries than with them; None when not tested."""
    if extends:
        return True
    test = obs.get("refusal_test")
    if not test:
        return None
    return bool(test.get("counts"))


#: the records' column holding the mapper's sub-phase (``check`` is the probes')
STEP_COLUMN = "step"
#: the verification's steady runs as fractions of the estimate (loadtests/ratelimit/verify.py)
LOW, HIGH = 0.9, 1.15


@dataclass(frozen=True)
class Verdict:
    sustained: float | None
    bound: dict[str, Any] | None
    algorithm: str
    confidence: str


def apply_verification(verify: dict[str, Any] | None, estimate_per_min: float,
                       algorithm: str, evidence: dict[str, Any], family: str = "") -> Verdict:
    """The steady runs' verdict: the sustained rate is reported as a number only when a
    90 % run saw no 429 and a ~115 % run saw one (then it is the final estimate); else it
    is ``None`` with the bounds the runs proved, and when those bounds exclude the
    inferred figure, the algorithm that predicted it is not claimed either."""
    if not verify:
        why = "not verified: no steady run was made"
        evidence["sustained_check"] = why
        return Verdict(None, {"at_least": None, "at_most": None,
                              "estimate": _r(estimate_per_min, 2), "why": why},
                       algorithm, "medium")
    lines = [f"a steady {run['rate_per_min']}/min ({run['factor']:.0%}) "
             + (f"saw a 429 after {run['first_429_at']} requests" if run["refused"]
                else f"saw no 429 in {run['sent']} requests")
             for run in verify.get("runs", [])]
    if verify.get("verified"):
        evidence["sustained_check"] = "verified: " + "; ".join(lines)
        final = verify["estimate_per_min"]
        if family != "counter" and abs(final - estimate_per_min) > 0.15 * estimate_per_min:
            # the window, refill or penalty read from the bursts predicted another rate:
            # the model behind it is wrong, so its algorithm is not claimed (a counter's
            # refill grid is known to read high; its algorithm comes from the cooldowns)
            return Verdict(final, None, _unclaimed(algorithm, evidence), "medium")
        return Verdict(final, None, algorithm, "high")
    why = f"not verified: {verify.get('unverified')}"
    evidence["sustained_check"] = "; ".join([why, *lines])
    lower, upper = verify.get("at_least_per_min"), verify.get("at_most_per_min")
    bound = {"at_least": lower, "at_most": upper, "estimate": _r(estimate_per_min, 2),
             "why": why}
    if (upper is not None and upper < LOW * estimate_per_min) or (
            lower is not None and lower > HIGH * estimate_per_min):
        algorithm = _unclaimed(algorithm, evidence)
    return Verdict(None, bound, algorithm, "medium")


def _unclaimed(algorithm: str, evidence: dict[str, Any]) -> str:
    evidence["algorithm_guess"] = algorithm
    evidence["algorithm_why"] = ("the steady runs contradict the sustained rate this "
                                 "algorithm's figures predicted")
    return "unknown"


def request_counts(records: pd.DataFrame) -> dict[str, int]:
    """Requests per phase (the cost table of the report)."""
    if records.empty:
        return {}
    return {str(k): int(v) for k, v in records.groupby("phase").size().items()}


def cost_summary(records: pd.DataFrame, scopes: dict[str, dict[str, Any]],
                 budget: int | None = None) -> dict[str, Any]:
    """``requests_sent`` beside the minimum (a burst + its 429 per scope), the recovery
    probes (every request that is not part of a burst, a rest probe or a verification run:
    cooldown, recovery, refill grid, side checks), the verification runs, and the
    ``--budget``; ``over_minimum`` is requests sent over the minimum plus probes."""
    counts = request_counts(records)
    steps = records[STEP_COLUMN] if STEP_COLUMN in records else pd.Series([], dtype=str)
    probes = int(steps.isin(["cooldown", "recovery", "sustained", "endpoints",
                             "isolation"]).sum())
    verification = int(steps.isin(["verify", "drain"]).sum())
    sent = len(records)
    minimum = sum((s.get("burst") or 0) + 1 for s in scopes.values())
    return {"requests_sent": sent, "minimum_bursts": minimum, "recovery_probes": probes,
            "verification_requests": verification,
            "over_minimum": round(sent / max(1, minimum + probes), 2),
            "budget": budget, "within_budget": budget is None or sent <= budget,
            "by_phase": counts}
