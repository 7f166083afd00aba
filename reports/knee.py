"""The knee of a step ramp: the highest offered rate the target took without degrading.

A load run tags each record with its stage in the ``phase`` column. Per stage we compute
the **offered** rate (requests due per second: from ``intended_ts`` when the load was
open-model paced, else from ``ts``), the achieved ok rate, latency percentiles and the
error rate. Stages are ordered by start time; the first stage is the reference. A stage is
*degraded* when its p95 exceeds ``latency_ratio`` × the reference p95, its error rate rises
more than ``error_rise`` above the reference, or it completes less than 90 % of what was
offered. The knee is the offered rate of the last stage before the first degraded one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SATURATION = 0.9


def stage_table(load: pd.DataFrame, ok: pd.Series, classes: pd.Series) -> list[dict[str, Any]]:
    """One row per phase (stage), in the order the stages ran."""
    phase = load["phase"]
    if phase.isna().all() or (phase.astype(str) == "").all():
        return []
    due = load["intended_ts"].fillna(load["ts"])
    frame = pd.DataFrame({"phase": phase, "due": due, "ts": load["ts"], "ok": ok,
                          "r429": classes == "429", "latency_s": load["latency_s"]})
    groups = frame.groupby("phase", observed=True)
    agg = groups.agg(n=("ok", "size"), n_ok=("ok", "sum"), n_429=("r429", "sum"),
                     first=("due", "min"), last=("due", "max"), ts_last=("ts", "max"))
    quant = groups["latency_s"].quantile([0.5, 0.95, 0.99]).unstack()
    agg = agg.join(quant).sort_values("first")
    rows = []
    for name, row in agg.iterrows():  # one row per stage, not per record
        n = int(row["n"])
        span = float(row["last"] - row["first"])
        duration = span * n / (n - 1) if n > 1 and span > 0 else float("nan")
        rows.append({
            "phase": str(name), "requests": n, "duration_s": duration,
            "offered_rps": n / duration if duration == duration else None,
            "ok_rps": int(row["n_ok"]) / duration if duration == duration else None,
            "error_rate": (n - int(row["n_ok"])) / n,
            "rate_limited_rate": int(row["n_429"]) / n,
            "p50": float(row[0.5]), "p95": float(row[0.95]), "p99": float(row[0.99]),
        })
    return rows


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
        if stage["error_rate"] > ref["error_rate"] + error_rise:
            reasons.append(f"error rate {stage['error_rate']:.1%} > "
                           f"{ref['error_rate']:.1%} + {error_rise:.1%}")
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
