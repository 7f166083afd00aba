"""Small shared helpers of the analysis: measures of a frame, time buckets, percentiles.

The figures follow :mod:`secton_harness.measures` (ok, errors, 429s apart, error rate, rps,
percentiles, corrected latency): this module only adapts a pandas frame to its
:class:`~secton_harness.measures.Columns`, so the report gives a run the same numbers as
the load command and run.json. Uptime is different by nature: it counts probe check
verdicts (:func:`check_passed`). Time series use fixed buckets chosen so a chart never has
more than :data:`MAX_BUCKETS` points, whatever the number of records.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from secton_harness.error_classes import CANCELLED
from secton_harness.measures import Columns, Outcomes, outcomes_of, percentiles, request_tokens

MAX_BUCKETS = 120
_NICE_WIDTHS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                7200, 21600, 43200, 86400]
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
_QS = {name: q * 100 for name, q in PERCENTILES.items()}


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def category_mask(column: pd.Series, test: Any) -> np.ndarray:
    """``test(text)`` for each record, evaluated once per category (fast on 1M records)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype("category")
    codes = column.cat.codes.to_numpy()
    per_category = np.array([bool(test(str(c))) for c in column.cat.categories] + [False])
    return per_category[codes]  # code -1 (null) picks the trailing False


def columns(frame: pd.DataFrame) -> Columns:
    """The frame's records as the measures read them."""
    success = frame["success"].astype("boolean").astype("Float64").to_numpy(
        dtype=float, na_value=np.nan)
    has_error = category_mask(frame["error"], lambda text: text != "")
    cancelled = category_mask(frame["error"], lambda text: text == CANCELLED)
    tokens = request_tokens(_floats(frame, "total_tokens"), _floats(frame, "prompt_tokens"),
                            _floats(frame, "completion_tokens"))
    return Columns(ts=_floats(frame, "ts"), latency_s=_floats(frame, "latency_s"),
                   status=_floats(frame, "status"), has_error=has_error, success=success,
                   intended_ts=_floats(frame, "intended_ts"), tokens=tokens,
                   cancelled=cancelled)


def outcomes(frame: pd.DataFrame) -> Outcomes:
    """ok / error / ratelimited / cancelled of each record (secton_harness.measures)."""
    return outcomes_of(columns(frame))


def check_passed(frame: pd.DataFrame) -> pd.Series:
    """Probe verdicts for uptime: the ``success`` column, or 2xx/3xx where it is null."""
    status = frame["status"].fillna(0)
    by_status = (status >= 200) & (status < 400)
    success = frame["success"]
    if success.isna().all():
        return by_status
    return success.astype("boolean").fillna(by_status).astype(bool)


def status_class(frame: pd.DataFrame) -> pd.Series:
    """A small categorical: 2xx, 3xx, 429, 4xx, 5xx, no response."""
    status = frame["status"].fillna(0).to_numpy()
    labels = np.select(
        [status == 0, status == 429, status >= 500, status >= 400, status >= 300],
        ["no response", "429", "5xx", "4xx", "3xx"], default="2xx")
    return pd.Series(pd.Categorical(labels, categories=STATUS_CLASSES), index=frame.index)


STATUS_CLASSES = ["2xx", "3xx", "429", "4xx", "5xx", "no response"]


def bucket_width(span_s: float, min_width: float = 0.0) -> float:
    """The smallest nice width that keeps ``span_s`` within MAX_BUCKETS buckets and is at
    least ``min_width`` (so a low rate is not drawn as a 0/1/2 sawtooth)."""
    for width in _NICE_WIDTHS:
        if span_s / width <= MAX_BUCKETS and width >= min_width:
            return float(width)
    return float(math.ceil(span_s / MAX_BUCKETS))


def latency_summary(latency: pd.Series | np.ndarray) -> dict[str, float | None]:
    """p50/p90/p95/p99/max/mean of latencies (seconds), by measures.percentiles."""
    values = np.asarray(latency, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {**{k: None for k in PERCENTILES}, "max": None, "mean": None}
    return {**percentiles(values, _QS), "max": float(values.max()),
            "mean": float(values.mean())}


def clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars → Python, NaN/inf → None, tuples → lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def series_points(index: pd.Index, values: pd.Series | np.ndarray) -> list[list[float | None]]:
    """``[[x, y], ...]`` for a chart, NaN as None."""
    ys = np.asarray(values, dtype=float)
    return [[float(x), (float(y) if math.isfinite(y) else None)]
            for x, y in zip(np.asarray(index, dtype=float), ys, strict=True)]
