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
    columns,
    latency_summary,
    series_points,
    status_class,
)
from secton_harness.measures import (
    Columns,
    count,
    error_rate,
    outcomes_of,
    percentiles,
    ratelimited_rate,
    rps,
    scaled_rps,
)
from secton_harness.measures import corrected_latency as corrected

MAX_SERIES = 8
TOP_ERRORS = 20
CDF_POINTS = 101


def analyse_capacity(load: pd.DataFrame, *, thresholds: list[dict[str, Any]],
                     knee_latency_ratio: float, knee_error_rise: float) -> dict[str, Any]:
    """The figures of the Capacity section (``{"available": False, ...}`` without data).

    Counts, rates and percentiles are :mod:`secton_harness.measures`: a 429 is counted
    apart (``ratelimited``), never as an error, and so is a request the run's stop cut
    (``cancelled``), whose partial wait is in no latency figure. Each figure has the
    measures' own name, as in run.json's summary (``rps``, ``ratelimited``,
    ``ratelimited_rate``; they were ``throughput_rps``, ``rate_limited``…)."""
    if load.empty:
        return {"available": False, "missing": "no load records (source=load) in these runs",
                "thresholds": thresholds}
    cols = columns(load)
    ts = cols.ts
    t0, t1 = float(np.nanmin(ts)), float(np.nanmax(ts))
    duration = max(t1 - t0, 1e-9)
    kinds = outcomes_of(cols)
    classes = status_class(load)
    counts = count(cols)
    rate = rps(ts)
    result: dict[str, Any] = {
        "available": True,
        "requests": counts.requests,
        "ok": counts.ok,
        "errors": counts.errors,
        "ratelimited": counts.ratelimited,
        "cancelled": counts.cancelled,
        "no_response": int((classes == "no response").sum()),
        "start_ts": t0,
        "duration_s": duration,
        "rps": rate,
        "ok_rps": scaled_rps(rate, counts.ok, counts.requests),
        "error_rate": error_rate(counts),
        "ratelimited_rate": ratelimited_rate(counts),
        "latency": latency_summary(cols.latency_s),
        "latency_corrected": _corrected_summary(cols),
        "by_endpoint": _by_endpoint(load, cols),
        "status_counts": {c: int(v) for c, v in classes.value_counts().items() if v},
        "error_breakdown": _error_breakdown(load, pd.Series(kinds.error, index=load.index)),
        "tokens": _tokens(load, rate),
        "cdf": _cdf(cols.latency_s),
        "series": _series(load, ts, t0, duration, classes, cols.latency_s),
        "thresholds": thresholds,
    }
    stages = stage_table(load, cols)
    result["stages"] = stages
    result["knee"] = find_knee(stages, latency_ratio=knee_latency_ratio,
                               error_rise=knee_error_rise)
    return result


def _corrected_summary(cols: Columns) -> dict[str, float | None] | None:
    """Corrected percentiles; None when no record had a schedule (then they equal plain)."""
    if not np.isfinite(cols.intended_ts).any():
        return None
    return latency_summary(corrected(cols))


def _by_endpoint(load: pd.DataFrame, cols: Columns) -> list[dict[str, Any]]:
    """One row per endpoint, busiest first: the measures over that endpoint's records."""
    endpoint = load["endpoint"].astype("category")
    codes = endpoint.cat.codes.to_numpy()
    sizes = np.bincount(codes[codes >= 0], minlength=len(endpoint.cat.categories))
    rows = []
    for code in np.argsort(-sizes, kind="stable"):
        if not sizes[code]:
            continue
        name = endpoint.cat.categories[code]
        part = cols.take(codes == code)
        counts = count(part)
        plain = latency_summary(part.latency_s)
        fixed = latency_summary(corrected(part))
        rows.append({
            "endpoint": str(name), "requests": counts.requests, "rps": rps(part.ts),
            "ok": counts.ok, "errors": counts.errors, "ratelimited": counts.ratelimited,
            "cancelled": counts.cancelled, "error_rate": error_rate(counts),
            "ratelimited_rate": ratelimited_rate(counts),
            **{q: plain[q] for q in PERCENTILES},
            **{f"{q}_corrected": fixed[q] for q in PERCENTILES},
            "max": plain["max"],
        })
    return rows


def _error_breakdown(load: pd.DataFrame, failed_mask: pd.Series) -> list[dict[str, Any]]:
    """The commonest errors (429s are not errors: they have their own figures)."""
    failed = load.loc[failed_mask, ["endpoint", "status", "error"]]
    if failed.empty:
        return []
    counts = (failed.assign(status=failed["status"].fillna(0).astype(int))
              .groupby(["endpoint", "status", "error"], observed=True).size()
              .sort_values(ascending=False))
    total = len(load)
    return [{"endpoint": str(e), "status": int(s), "error": str(err) or "-",
             "count": int(c), "share": int(c) / total}
            for (e, s, err), c in counts.head(TOP_ERRORS).items() if c]


def _tokens(load: pd.DataFrame, rate: float | None) -> dict[str, Any] | None:
    """Token totals and rates (the measures' rps x tokens per request)."""
    prompt = load["prompt_tokens"]
    completion = load["completion_tokens"]
    if prompt.notna().sum() == 0 and completion.notna().sum() == 0:
        return None
    p, c = float(prompt.sum()), float(completion.sum())
    n = len(load)
    return {"prompt_total": int(p), "completion_total": int(c),
            "prompt_per_s": scaled_rps(rate, p, n), "completion_per_s": scaled_rps(rate, c, n)}


def _cdf(latency: np.ndarray) -> list[list[float]]:
    fractions = np.linspace(0, 1, CDF_POINTS)
    found = percentiles(latency, {str(f): f * 100 for f in fractions})
    if any(v is None for v in found.values()):
        return []
    return [[float(x), float(f)] for x, f in zip(found.values(), fractions, strict=True)]


def _series(load: pd.DataFrame, ts: np.ndarray, t0: float, duration: float,
            classes: pd.Series, latency_s: np.ndarray) -> dict[str, Any]:
    """Per-bucket rates and latency percentiles over the run's own time axis.

    Each rate is the bucket's count over the time the bucket covers: the last bucket
    usually covers only part of its width (a 15.7 s run in 1 s buckets ends with 0.7 s),
    and dividing by the whole width drew a drop at the end of every run that the target
    never had. A last bucket covering less than half a width joins the one before it (a
    rate over a sliver of time is noise); a run shorter than half a bucket is drawn
    over the whole width.
    """
    # about 10 requests per bucket on average at least: rates read smoothly at any rate
    width = bucket_width(duration, min_width=min(10 * duration / max(len(load), 1),
                                                 duration / 4))
    starts = np.floor((ts - t0) / width) * width
    grid_values = np.arange(0, starts.max() + width / 2, width)
    covered = np.full(len(grid_values), width)
    # the axis ends one mean interval after the last send, as rps = (n-1)/span implies
    end = duration * len(load) / (len(load) - 1) if len(load) > 1 else duration
    covered[-1] = min(max(end - grid_values[-1], 0.0), width)
    if covered[-1] < width / 2 and len(grid_values) > 1:
        starts = np.minimum(starts, grid_values[-2])
        covered = np.append(covered[:-2], width + covered[-1])
        grid_values = grid_values[:-1]
    elif covered[-1] < width / 2:  # one short bucket: its count over the whole width
        covered[-1] = width
    bucket = pd.Series(starts, index=load.index, name="t")
    grid = pd.Index(grid_values, name="t")
    seconds = pd.Series(covered, index=grid)

    def per_second(counts: pd.DataFrame) -> dict[str, Any]:
        counts = counts.reindex(grid, fill_value=0).div(seconds, axis=0)
        keep = counts.sum().sort_values(ascending=False).index[:MAX_SERIES]
        return {str(col): series_points(grid, counts[col]) for col in keep
                if counts[col].sum() > 0}

    by_endpoint = load.groupby([bucket, load["endpoint"]], observed=True).size().unstack(
        fill_value=0)
    by_status = pd.crosstab(bucket, classes).reindex(columns=STATUS_CLASSES, fill_value=0)
    lat = pd.Series(latency_s, index=load.index).groupby(bucket)  # cancelled: NaN
    quant = lat.quantile(list(PERCENTILES.values())).unstack().reindex(grid)
    latency = {name: series_points(grid, quant[q]) for name, q in PERCENTILES.items()}
    latency["max"] = series_points(grid, lat.max().reindex(grid))
    series: dict[str, Any] = {
        "bucket_s": width,
        "bucket_covered_s": [float(c) for c in covered],  # per point: rate = count / this
        "throughput_by_endpoint": per_second(by_endpoint),
        "throughput_by_status": per_second(by_status),
        "rolling_rate": _rolling(by_status.reindex(grid, fill_value=0).sum(axis=1), seconds),
        "latency": latency,
    }
    if load["prompt_tokens"].notna().any() or load["completion_tokens"].notna().any():
        tokens = load[["prompt_tokens", "completion_tokens"]].groupby(bucket).sum()
        series["tokens_per_s"] = {
            name: series_points(grid, tokens[f"{name}_tokens"].reindex(grid, fill_value=0)
                                / seconds)
            for name in ("prompt", "completion")}
    return series


#: Buckets in the rolling rate's window (centred); runs of fewer buckets than twice this
#: get none (their buckets are already few and wide).
ROLLING_BUCKETS = 5


def _rolling(counts: pd.Series, seconds: pd.Series) -> dict[str, Any]:
    """All requests' rate over a centred window of ROLLING_BUCKETS buckets: the trend
    through the per-bucket noise (a Poisson bucket of ten requests varies by a third)."""
    if len(counts) < 2 * ROLLING_BUCKETS:
        return {}
    window = {"window": ROLLING_BUCKETS, "center": True, "min_periods": 1}
    rate = counts.rolling(**window).sum() / seconds.rolling(**window).sum()
    width = float(seconds.iloc[0]) * ROLLING_BUCKETS
    return {f"all, rolling {width:g} s": series_points(counts.index, rate)}
