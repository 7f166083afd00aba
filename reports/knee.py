"""The knee of a step ramp: the highest offered rate the target took without degrading.

A load run tags each record with its stage in the ``phase`` column. Per stage we compute
the **offered** rate (requests due per second: from ``intended_ts`` when the load was
open-model paced, else from ``ts``), the achieved ok rate, latency percentiles and the
error rate, each as :mod:`secton_harness.measures` defines it (429s apart from errors).
Stages are ordered by start time; the first stage is the reference. A stage is
*degraded* when its p95 exceeds ``latency_ratio`` × the reference p95, its share of
errors plus 429s (requests not served) rises more than ``error_rise`` above the
reference, or it completes less than 90 % of what was offered. The knee is the offered
rate of the last stage before the first degraded one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from secton_harness.measures import (
    Columns,
    count,
    error_rate,
    percentiles,
    ratelimited_rate,
    rps,
    scaled_rps,
)

SATURATION = 0.9


def stage_table(load: pd.DataFrame, cols: Columns) -> list[dict[str, Any]]:
    """One row per phase (stage), in the order the stages ran (measures per stage)."""
    phase = load["phase"]
    if phase.isna().all() or (phase.astype(str) == "").all():
        return []
    phase = phase.astype("category")
    codes = phase.cat.codes.to_numpy()
    due = np.where(np.isfinite(cols.intended_ts), cols.intended_ts, cols.ts)
    stages = []
    for code, name in enumerate(phase.cat.categories):
        mask = codes == code
        if str(name) and mask.any():
            stages.append((float(np.nanmin(due[mask])), str(name), mask))
    rows = []
    for _first, name, mask in sorted(stages):  # one row per stage, not per record
        part = cols.take(mask)
        counts = count(part)
        offered = rps(due[mask])  # the measures' rps over the due times
        span = offered and (counts.requests / offered)
        lat = percentiles(part.latency_s, {"p50": 50, "p95": 95, "p99": 99})
        rows.append({
            "phase": name, "requests": counts.requests,
            "duration_s": span if span else None,
            "offered_rps": offered,
            "ok_rps": scaled_rps(offered, counts.ok, counts.requests),
            "error_rate": error_rate(counts),
            "ratelimited_rate": ratelimited_rate(counts),
            **lat,
        })
    return rows


def _not_served(stage: dict[str, Any]) -> float:
    """Errors plus 429s: for the knee a throttled request was not served either (the
    measures keep them apart; the knee adds them on purpose)."""
    return (stage["error_rate"] or 0.0) + (stage["ratelimited_rate"] or 0.0)


def find_knee(stages: list[dict[str, Any]], *, latency_ratio: float,
              error_rise: float) -> dict[str, Any]:
    """Where the ramp degrades; ``{"found": False, "why": ...}`` when it cannot tell."""
    if len(stages) < 2:
        return {"found": False, "why": "fewer than two load stages (phase column); "
                "run a step ramp to locate the knee"}
    ref = stages[0]
    ref_p95 = ref["p95"] if ref["p95"] == ref["p95"] else None
    for index, stage in enumerate(stages):
        reasons = []
        if ref_p95 and stage["p95"] > latency_ratio * ref_p95:
            reasons.append(f"p95 {stage['p95'] * 1000:.1f} ms > {latency_ratio:g} × "
                           f"{ref_p95 * 1000:.1f} ms")
        refused, ref_refused = _not_served(stage), _not_served(ref)
        if refused > ref_refused + error_rise:
            reasons.append(f"errors + 429s {refused:.1%} > {ref_refused:.1%} + "
                           f"{error_rise:.1%}")
        offered, achieved = stage["offered_rps"], stage["ok_rps"]
        if offered and achieved is not None and achieved < SATURATION * offered * (
                1 - ref["error_rate"]):
            reasons.append(f"ok rate {achieved:.1f}/s < {SATURATION:.0%} of offered "
                           f"{offered:.1f}/s")
        if reasons:
            if index == 0:
                return {"found": True, "knee_offered_rps": None, "first_degraded": stage,
                        "reasons": reasons, "why": "already degraded at the first stage"}
            last_good = stages[index - 1]
            return {"found": True, "knee_offered_rps": last_good["offered_rps"],
                    "knee_phase": last_good["phase"], "first_degraded": stage,
                    "reasons": reasons}
    top = max((s["offered_rps"] or 0.0) for s in stages)
    return {"found": False, "why": f"no stage degraded; capacity is above {top:.1f} req/s",
            "max_offered_rps": float(np.round(top, 6))}
