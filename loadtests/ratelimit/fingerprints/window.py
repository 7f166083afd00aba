"""Windows (fixed, sliding log) and what tells them from a penalty: the budget comes back
at once after the cooldown; the split cycle (rest, one request, a quiet gap of 30 % of the
cooldown, a burst) shows what the recovery is anchored to — the window's first request
(the window length is equal in both cycles) or the first 429 (``penalty``). After the split
cycle a fixed window gives a full budget, a sliding window only the aged-out request."""

from __future__ import annotations

import math

from loadtests.ratelimit.fingerprints import penalty
from loadtests.ratelimit.observations import Reading, ReturnShape, ScopeObservations


def all_returned(ret: ReturnShape | dict) -> bool:
    """Every answered return probe allowed (key-limit refusals of an org scope are not
    answers), and at least two of them: a bucket refuses the one right after a success."""
    return ret.get("sent", 0) >= 2 and ret.get("allowed", 0) >= ret.get("sent", 0)


def read_at_once(obs: ScopeObservations) -> Reading | None:
    """The window or penalty the two cycles show; None when the split cycle is missing."""
    cycle_b = obs.get("cycle_b")
    if cycle_b is None or cycle_b.get("cooldown") is None:
        return None
    burst_a, cd_a = obs["burst_a"], obs["cooldown_a"]
    cd_b, burst_b = cycle_b["cooldown"], cycle_b["burst"]
    ret_b = cycle_b.get("return") or {"allowed": 0, "sent": 0}
    c_a, c_b = cd_a["cooldown_s"], cd_b["cooldown_s"]
    w_a = cd_a["t_recovered"] - burst_a["t0"]
    w_b = cd_b["t_recovered"] - cycle_b["u0"]
    n_b = burst_b["allowed"] + 1
    burst = int(burst_a["allowed"])
    facts = {
        "window_a_s": round(w_a, 3), "window_b_s": round(w_b, 3),
        "cooldown_a_s": round(c_a, 3), "cooldown_b_s": round(c_b, 3),
        "split_gap_s": round(cycle_b["gap_s"], 3), "split_burst_allowed": n_b,
        "after_split_recovery_allowed": f"{ret_b['allowed']}/{ret_b['sent']}",
    }
    ext_probe = cycle_b.get("ext_probe_s")
    if ext_probe is not None and cd_b.get("first_probe_ok"):
        reading = penalty.read_extending(cd_a, ext_probe, burst)
    else:
        e_window = abs(w_b - w_a) / w_a
        e_penalty = abs(c_b - c_a) / c_a if c_a > 0 else math.inf
        facts["anchor_mismatch"] = {"window": round(e_window, 3),
                                    "penalty": round(e_penalty, 3)}
        if e_penalty < e_window:
            reading = penalty.read_plain(c_a, c_b, burst)
        elif all_returned(ret_b):
            reading = Reading(
                family="window", algorithm="fixed_window", burst=burst,
                sustained_per_min=60.0 * burst / w_a, cooldown_s=c_a, full_recovery_s=c_a,
                evidence={"why": ("the full budget returns at once, at the same time after "
                                  "the window's first request in both cycles")})
        else:
            reading = Reading(
                family="window", algorithm="sliding_window", burst=burst,
                sustained_per_min=60.0 * burst / w_a, cooldown_s=c_a,
                full_recovery_s=c_a + burst_a["last_allowed_s"],
                evidence={"why": ("after the split cycle only the aged-out request came "
                                  "back: capacity returns as old requests leave the window")})
        low, high = sorted((e_window, e_penalty))
        if low > 0.15 or low * 2 > high:
            reading.confidence = "medium"
    reading.evidence = {**facts, **reading.evidence}
    if abs(n_b - burst) > 1:
        reading.confidence = "medium"
        reading.evidence["burst_mismatch"] = f"second burst allowed {n_b}, first {burst}"
    if reading.family == "penalty":
        penalty.estimate_sustained(reading, burst_a, w_a)
    return reading
