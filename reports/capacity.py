"""Capacity section: throughput, latency, errors, tokens and the knee of a step ramp.

Everything here is a vectorised aggregation over the ``source == "load"`` records (group by
a time bucket, an endpoint, a status class or a phase); no Python loop runs per record.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.knee import find_knee, stage_table
from reports.stats import (
    PERCENTILES,
    STATUS_CLASSES,
    bucket_width,
    latency_summary,
    ok_mask,
    series_points,
    status_class,
)

MAX_SERIES = 8
TOP_ERRORS = 20
CDF_POINTS = 101


def analyse_capacity(load: pd.DataFrame, *, thresholds: list[dict[str, Any]],
                     knee_latency_ratio: float, knee_error_rise: float) -> dict[str, Any]:
    """The figures of the Capacity section (``{"available": False, ...}`` without data)."""
    if load.empty:
        return {"available": False, "missing": "no load records (source=load) in these runs",
                "thresholds": thresholds}
    ts = load["ts"].to_numpy(dtype=float)
    t0, t1 = float(np.nanmin(ts)), float(np.nanmax(ts))
    duration = max(t1 - t0, 1e-9)
    ok = ok_mask(load)
    classes = status_class(load)
    n = len(load)
    n_ok = int(ok.sum())
    n_429 = int((classes == "429").sum())
    result: dict[str, Any] = {
        "available": True,
        "requests": n,
        "ok": n_ok,
        "errors": n - n_ok,
        "rate_limited": n_429,
        "no_response": int((classes == "no response").sum()),
        "start_ts": t0,
        "duration_s": duration,
        "throughput_rps": n / duration,
        "ok_rps": n_ok / duration,
        "error_rate": (n - n_ok) / n,
        "rate_limited_rate": n_429 / n,
        "error_rate_excl_429": (n - n_ok - n_429) / n if n else 0.0,
        "latency": latency_summary(load["latency_s"]),
        "latency_corrected": _corrected_summary(load),
        "by_endpoint": _by_endpoint(load, ok, duration),
        "status_counts": {c: int(v) for c, v in classes.value_counts().items() if v},
        "error_breakdown": _error_breakdown(load, ok, classes),
        "tokens": _tokens(load, duration),
        "cdf": _cdf(load["latency_s"]),
        "series": _series(load, ts, t0, duration, classes),
        "thresholds": thresholds,
    }
    stages = stage_table(load, ok, classes)
    result["stages"] = stages
    result["knee"] = find_knee(stages, latency_ratio=knee_latency_ratio,
                               error_rise=knee_error_rise)
    return result


def corrected_latency(load: pd.DataFrame) -> pd.Series:
    """Latency from the *intended* send time (``ts + latency_s - intended_ts``): the
    coordinated-omission-corrected figure of wrk2/Vegeta. NaN where a record has no
    ``intended_ts`` (probes, closed-model runs)."""
    if "intended_ts" not in load:
        return pd.Series(np.nan, index=load.index)
    return load["ts"] + load["latency_s"] - load["intended_ts"]


def _corrected_summary(load: pd.DataFrame) -> dict[str, float | None] | None:
    corrected = corrected_latency(load)
    return latency_summary(corrected) if corrected.notna().any() else None


def _by_endpoint(load: pd.DataFrame, ok: pd.Series, duration: float) -> list[dict[str, Any]]:
    groups = load.assign(_ok=ok, _corrected=corrected_latency(load)).groupby(
        "endpoint", observed=True)
    counts = groups.size()
    oks = groups["_ok"].sum()
    quant = groups["latency_s"].quantile(list(PERCENTILES.values())).unstack()
    quant_corrected = groups["_corrected"].quantile(list(PERCENTILES.values())).unstack()
    maxes = groups["latency_s"].max()
    rows = []
    for endpoint in counts.sort_values(ascending=False).index:
        total = int(counts[endpoint])
        corrected = {f"{name}_corrected": quant_corrected.loc[endpoint, q]
                     for name, q in PERCENTILES.items()}
        rows.append({
            "endpoint": str(endpoint), "requests": total, "rps": total / duration,
            "error_rate": (total - int(oks[endpoint])) / total,
            **{name: float(quant.loc[endpoint, q]) for name, q in PERCENTILES.items()},
            **{name: None if pd.isna(v) else float(v) for name, v in corrected.items()},
            "max": float(maxes[endpoint]),
        })
    return rows


def _error_breakdown(load: pd.DataFrame, ok: pd.Series,
                     classes: pd.Series) -> list[dict[str, Any]]:
    failed = load.loc[~ok, ["endpoint", "status", "error"]]
    if failed.empty:
        return []
    counts = (failed.assign(status=failed["status"].fillna(0).astype(int))
              .groupby(["endpoint", "status", "error"], observed=True).size()
              .sort_values(ascending=False))
    total = len(load)
    return [{"endpoint": str(e), "status": int(s), "error": str(err) or "-",
             "count": int(c), "share": int(c) / total}
            for (e, s, err), c in counts.head(TOP_ERRORS).items() if c]


def _tokens(load: pd.DataFrame, duration: float) -> dict[str, Any] | None:
    prompt = load["prompt_tokens"]
    completion = load["completion_tokens"]
    if prompt.notna().sum() == 0 and completion.notna().sum() == 0:
        return None
    p, c = float(prompt.sum()), float(completion.sum())
    return {"prompt_total": int(p), "completion_total": int(c),
            "prompt_per_s": p / duration, "completion_per_s": c / duration}


def _cdf(latency: pd.Series) -> list[list[float]]:
    values = latency.dropna().to_numpy(dtype=float)
    if values.size == 0:
        return []
    fractions = np.linspace(0, 1, CDF_POINTS)
    return [[float(x), float(f)] for x, f in zip(np.quantile(values, fractions), fractions,
                                                 strict=True)]


def _series(load: pd.DataFrame, ts: np.ndarray, t0: float, duration: float,
            classes: pd.Series) -> dict[str, Any]:
    width = bucket_width(duration)
    bucket = pd.Series(np.floor((ts - t0) / width) * width, index=load.index, name="t")
    grid = pd.Index(np.arange(0, bucket.max() + width / 2, width), name="t")

    def per_second(counts: pd.DataFrame) -> dict[str, Any]:
        counts = counts.reindex(grid, fill_value=0) / width
        keep = counts.sum().sort_values(ascending=False).index[:MAX_SERIES]
        return {str(col): series_points(grid, counts[col]) for col in keep
                if counts[col].sum() > 0}

    by_endpoint = load.groupby([bucket, load["endpoint"]], observed=True).size().unstack(
        fill_value=0)
    by_status = pd.crosstab(bucket, classes).reindex(columns=STATUS_CLASSES, fill_value=0)
    lat = load["latency_s"].groupby(bucket)
    quant = lat.quantile(list(PERCENTILES.values())).unstack().reindex(grid)
    latency = {name: series_points(grid, quant[q]) for name, q in PERCENTILES.items()}
    latency["max"] = series_points(grid, lat.max().reindex(grid))
    series: dict[str, Any] = {
        "bucket_s": width,
        "throughput_by_endpoint": per_second(by_endpoint),
        "throughput_by_status": per_second(by_status),
        "latency": latency,
    }
    if load["prompt_tokens"].notna().any() or load["completion_tokens"].notna().any():
        tokens = load[["prompt_tokens", "completion_tokens"]].groupby(bucket).sum()
        series["tokens_per_s"] = {
            "prompt": series_points(grid, tokens["prompt_tokens"].reindex(grid, fill_value=0)
                                    / width),
            "completion": series_points(grid, tokens["completion_tokens"].reindex(
                grid, fill_value=0) / width)}
    return series
