"""Uptime section: availability per check and target, error budget, incidents.

Two availabilities are reported per (check, target):

* **count-based**: ok results / all results;
* **time-based**: each result is taken to hold until the next result of the same check and
  target (the last one for the median interval), and the availability is the ok share of
  that time, so a probe that ran more often during an outage does not weigh it twice.

The error budget consumed is ``(1 - availability) / (1 - SLO)`` (1.0 = the whole budget).
It and the SLO verdict are *not judged* (``None``, with ``slo_not_judged`` saying why) when
no check and target has more than :data:`MIN_RESULTS_FOR_SLO` - 1 results: a one-shot run
(``probe --once``) gives one result per check, and one failure in eight is then "12.5 %
unavailable, 2,500 % of the budget" while one pass is "meets the SLO", neither of which
says anything about an objective measured over days. Availability is still shown.
An incident is a run of consecutive failed results of one check and target; it starts at
the first failure and ends at the next ok result (or is ``ongoing`` when the run ended in
failure, with its end at the last failure plus one interval).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.stats import bucket_width, category_mask, check_passed, latency_summary

MAX_INCIDENTS = 50
#: Results one check and target needs before availability is judged against the SLO.
MIN_RESULTS_FOR_SLO = 2
SLO_NOT_JUDGED = "too little data: one result per check (a one-shot run, e.g. probe --once)"
MAX_STRIPS = 24


def analyse_uptime(probe: pd.DataFrame, *, slo: float) -> dict[str, Any]:
    """The figures of the Uptime section."""
    if probe.empty:
        return {"available": False, "slo": slo,
                "missing": "no probe records (source=probe) in these runs"}
    frame = pd.DataFrame({
        "check": probe["check"].astype(str).replace("", "(unnamed)").where(
            probe["check"].astype(str) != "", probe["endpoint"].astype(str)),
        "target": probe["target"].astype(str),
        "ts": probe["ts"].to_numpy(dtype=float),
        "ok": check_passed(probe).to_numpy(),
        "reason": probe["reason"].astype(str).where(probe["reason"].astype(str) != "",
                                                    probe["error"].astype(str)),
        "latency_s": probe["latency_s"].to_numpy(dtype=float),
        # a passing run with a warning (conventional field missing): runner's "warning: "
        "warned": category_mask(probe["detail"], lambda text: "warning: " in text),
    })
    for col in ("check", "target", "reason"):
        frame[col] = frame[col].astype("category")
    frame = frame.sort_values(["check", "target", "ts"], kind="stable", ignore_index=True)
    keys = ["check", "target"]
    groups = frame.groupby(keys, observed=True, sort=False)
    next_ts = groups["ts"].shift(-1)
    interval = next_ts - frame["ts"]
    median_interval = interval.groupby([frame["check"], frame["target"]],
                                       observed=True).transform("median")
    frame["held_s"] = interval.fillna(median_interval).fillna(0.0)
    frame["ok_held_s"] = frame["held_s"].where(frame["ok"], 0.0)
    agg = groups.agg(results=("ok", "size"), ok=("ok", "sum"), warned=("warned", "sum"),
                     held=("held_s", "sum"),
                     ok_held=("ok_held_s", "sum"), first=("ts", "min"), last=("ts", "max"))
    quant = groups["latency_s"].quantile([0.5, 0.95, 0.99]).unstack()
    incidents, incident_count = _incidents(frame, next_ts)
    judged = int(agg["results"].max()) >= MIN_RESULTS_FOR_SLO
    per_target = []
    for (check, target), row in agg.join(quant).iterrows():  # per check/target, not record
        count_av = row["ok"] / row["results"]
        time_av = row["ok_held"] / row["held"] if row["held"] > 0 else count_av
        per_target.append({
            "check": str(check), "target": str(target) or "-",
            "results": int(row["results"]), "failures": int(row["results"] - row["ok"]),
            "warnings": int(row["warned"]),
            "availability": float(count_av), "availability_time": float(time_av),
            "budget_consumed": _budget(count_av, slo) if judged else None,
            "meets_slo": bool(count_av >= slo) if judged else None,
            "p50": float(row[0.5]), "p95": float(row[0.95]), "p99": float(row[0.99]),
        })
    total = len(frame)
    n_ok = int(frame["ok"].sum())
    overall = n_ok / total
    held = float(frame["held_s"].sum())
    overall_time = float(frame["ok_held_s"].sum()) / held if held > 0 else overall
    per_check = []
    for check, part in frame.groupby("check", observed=True):
        per_check.append({"check": str(check), "results": len(part),
                          "availability": float(part["ok"].mean()),
                          **latency_summary(part["latency_s"])})
    return {
        "available": True, "slo": slo, "results": total, "failures": total - n_ok,
        "warnings": int(frame["warned"].sum()),
        "availability": overall, "availability_time": overall_time,
        "budget_consumed": _budget(overall, slo) if judged else None,
        "meets_slo": overall >= slo if judged else None,
        "slo_not_judged": None if judged else SLO_NOT_JUDGED,
        "start_ts": float(frame["ts"].min()),
        "duration_s": float(frame["ts"].max() - frame["ts"].min()),
        "per_target": per_target, "per_check": per_check,
        "incident_count": incident_count, "incidents": incidents,
        "strips": _strips(frame),
    }


def _budget(availability: float, slo: float) -> float | None:
    return (1 - availability) / (1 - slo) if slo < 1 else None


def _incidents(frame: pd.DataFrame, next_ts: pd.Series) -> tuple[list[dict[str, Any]], int]:
    """Runs of consecutive failures per check/target, longest first (at most MAX_INCIDENTS)."""
    failed = ~frame["ok"]
    if not failed.any():
        return [], 0
    key_change = (frame["check"] != frame["check"].shift()) | (
        frame["target"] != frame["target"].shift())
    run_id = (key_change | (frame["ok"] != frame["ok"].shift())).cumsum()
    fails = frame.loc[failed].assign(run=run_id[failed], next_ts=next_ts[failed])
    groups = fails.groupby("run", sort=False)
    agg = groups.agg(check=("check", "first"), target=("target", "first"),
                     start=("ts", "min"), last_fail=("ts", "max"), failures=("ok", "size"),
                     end=("next_ts", "last"), held=("held_s", "last"))
    reasons = fails.groupby(["run", "reason"], observed=True).size()
    top_reason = reasons.sort_values(ascending=False).reset_index().drop_duplicates(
        "run").set_index("run")["reason"]
    agg["ongoing"] = agg["end"].isna()
    agg["end"] = agg["end"].fillna(agg["last_fail"] + agg["held"])
    agg["duration_s"] = agg["end"] - agg["start"]
    agg["reason"] = top_reason.reindex(agg.index).astype(str)
    agg = agg.sort_values("duration_s", ascending=False)
    count = len(agg)
    rows = [{"check": str(r.check), "target": str(r.target) or "-", "start_ts": float(r.start),
             "end_ts": float(r.end), "duration_s": float(r.duration_s),
             "failures": int(r.failures), "reason": r.reason or "-", "ongoing": bool(r.ongoing)}
            for r in agg.head(MAX_INCIDENTS).itertuples()]
    return rows, count


def _strips(frame: pd.DataFrame) -> dict[str, Any]:
    """Ok share per time bucket per check/target, for the availability strip chart."""
    t0 = float(frame["ts"].min())
    span = float(frame["ts"].max()) - t0
    width = bucket_width(max(span, 1e-9))
    bucket = np.floor((frame["ts"] - t0) / width).astype(int).rename("bucket")
    share = frame["ok"].groupby([frame["check"], frame["target"], bucket],
                                observed=True).mean()
    lanes: dict[str, list[list[float]]] = {}
    for check, target in share.index.droplevel("bucket").unique()[:MAX_STRIPS]:
        part = share.loc[(check, target)]
        name = f"{check} @ {target}" if target else str(check)
        lanes[name] = [[float(b * width), float(v)] for b, v in part.items()]
    return {"bucket_s": width, "span_s": span, "lanes": lanes}
