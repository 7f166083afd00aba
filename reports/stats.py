"""Small shared helpers of the analysis: verdicts per record, time buckets, percentiles.

Definitions used by every section (and stated in docs/reports.md):

* a record is **ok** when its ``success`` column says so, or, where ``success`` is null,
  when its status is 2xx/3xx; everything else is an error (429s included, and counted
  apart as well);
* latency percentiles are over every record with a latency (linear interpolation, as
  ``numpy.percentile``);
* time series use fixed buckets chosen so a chart never has more than :data:`MAX_BUCKETS`
  points, whatever the number of records.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

MAX_BUCKETS = 120
_NICE_WIDTHS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
                7200, 21600, 43200, 86400]
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def ok_mask(frame: pd.DataFrame) -> pd.Series:
    """True where a record succeeded (see the module docstring)."""
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


def bucket_width(span_s: float) -> float:
    """The smallest nice width that keeps ``span_s`` within MAX_BUCKETS buckets."""
    for width in _NICE_WIDTHS:
        if span_s / width <= MAX_BUCKETS:
            return float(width)
    return float(math.ceil(span_s / MAX_BUCKETS))


def latency_summary(latency: pd.Series) -> dict[str, float | None]:
    """p50/p90/p95/p99/max/mean of a latency series (seconds); None when empty."""
    values = latency.dropna().to_numpy(dtype=float)
    if values.size == 0:
        return {**{k: None for k in PERCENTILES}, "max": None, "mean": None}
    qs = np.percentile(values, [q * 100 for q in PERCENTILES.values()])
    return {**dict(zip(PERCENTILES, (float(q) for q in qs), strict=True)),
            "max": float(values.max()), "mean": float(values.mean())}


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
