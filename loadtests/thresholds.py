"""Thresholds as data: ``"p95_latency_s < 2"`` parsed once, evaluated on request records.

k6-style pass/fail criteria for a run. Each expression is ``METRIC OP VALUE`` and is parsed
into a :class:`Threshold` when the scenario is loaded (a typo fails there, not at the end
of a long run). :meth:`ThresholdSet.evaluate` computes each metric from the records
(the run folder's ``records.parquet`` as a pyarrow table) and a failure prints the resolved
value, Gatus-style: ``p95_latency_s (2.41) < 2.0``.

Metrics (over all records of the scope):

=============================  ==========================================================
``requests``                   number of requests
``rps`` / ``rpm``              (requests - 1) / (last send - first send), per s / per min
``error_rate`` / ``errors``    no response, a status >= 400 other than 429, or an error
                               class (e.g. ``contract``); 429 is *not* an error
``ratelimited_rate`` / ``ratelimited``  responses with status 429
``success_rate``               1 - error_rate - ratelimited_rate
``pNN_latency_s``              latency percentile (e.g. p50, p95, p99, p99.9), linear
                               interpolation, from the full-precision ``latency_s``
``pNN_corrected_latency_s``    the same from the *intended* send time (``intended_ts``;
                               coordinated-omission corrected); plain latency when absent
``mean_latency_s`` / ``max_latency_s``
``tokens_per_s`` / ``tokens_per_min``   ``total_tokens`` over the same span as ``rps``
=============================  ==========================================================

Latency values may carry a unit (``"p95_latency_s < 250ms"``). Scopes are ``all`` or a
name mapped to an ``endpoint`` column value (``chat`` → ``/v1/chat/completions``).

Example::

    ts = ThresholdSet.parse({"all": ["error_rate < 0.01"], "chat": ["p95_latency_s < 2"]},
                            {"chat": "/v1/chat/completions"})
    for result in ts.evaluate(read_records(run_dir)):
        print(result.passed, result.describe())
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from secton_harness.config import parse_duration
from secton_harness.errors import BadInput

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_EXPR_RE = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_PERCENTILE_RE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)_(corrected_)?latency_s$")
SIMPLE_METRICS = ("requests", "rps", "rpm", "errors", "error_rate", "ratelimited",
                  "ratelimited_rate", "success_rate", "mean_latency_s", "max_latency_s",
                  "tokens_per_s", "tokens_per_min")


def is_latency_metric(metric: str) -> bool:
    return metric.endswith("latency_s")


def check_metric_name(metric: str) -> None:
    """ValueError unless ``metric`` is one this module can compute."""
    if metric in SIMPLE_METRICS:
        return
    match = _PERCENTILE_RE.match(metric)
    if match and 0 < float(match.group(1)) < 100:
        return
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(SIMPLE_METRICS)}, "
                     "pNN_latency_s or pNN_corrected_latency_s")


@dataclass(frozen=True)
class Threshold:
    """One parsed criterion, e.g. ``p95_latency_s < 2.0`` on scope ``chat``."""

    metric: str
    op: str
    value: float
    scope: str = "all"
    text: str = ""

    def holds(self, actual: float | None) -> bool:
        return actual is not None and not math.isnan(actual) and OPERATORS[self.op](
            actual, self.value)

    @property
    def label(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_threshold(text: str, scope: str = "all") -> Threshold:
    """Parse ``"METRIC OP VALUE"``; a ValueError names the expression and the fix."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r}: a threshold is a string like 'p95_latency_s < 2'")
    match = _EXPR_RE.match(text)
    if not match:
        raise ValueError(f"{text!r}: not 'METRIC OP VALUE', e.g. 'p95_latency_s < 2'")
    metric, op, raw = match.groups()
    try:
        check_metric_name(metric)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    try:
        value = parse_duration(raw) if is_latency_metric(metric) else float(raw)
    except ValueError:
        raise ValueError(f"{text!r}: {raw!r} is not a number") from None
    if math.isnan(value):
        raise ValueError(f"{text!r}: the value is not a number")
    return Threshold(metric=metric, op=op, value=value, scope=scope, text=text.strip())


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    actual: float | None
    passed: bool

    def describe(self) -> str:
        """``p95_latency_s (2.41) < 2.0`` — the resolved value in brackets."""
        shown = "n/a" if self.actual is None else format_value(self.actual)
        t = self.threshold
        return f"{t.metric} ({shown}) {t.op} {format_value(t.value)}"

    def margin(self) -> str:
        """By how much it passed or failed, relative to the limit (e.g. ``+20.5%``)."""
        if self.actual is None:
            return "no data"
        limit = self.threshold.value
        if limit == 0:
            return f"{self.actual - limit:+.4g}"
        return f"{(self.actual - limit) / abs(limit) * 100:+.1f}%"


def format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value)}" if abs(value) >= 1 or value == 0 else f"{value:g}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


@dataclass(frozen=True)
class ThresholdSet:
    """Every threshold of a scenario, by scope; parse once, evaluate on records."""

    thresholds: tuple[Threshold, ...]
    scope_endpoints: Mapping[str, str]

    @classmethod
    def parse(cls, spec: Mapping[str, list[str]],
              scope_endpoints: Mapping[str, str] | None = None) -> ThresholdSet:
        scopes = dict(scope_endpoints or {})
        parsed: list[Threshold] = []
        for scope, expressions in spec.items():
            if scope != "all" and scope not in scopes:
                raise BadInput(f"thresholds.{scope}: unknown scope; use 'all' or "
                               f"{', '.join(scopes)}")
            for expression in expressions:
                try:
                    parsed.append(parse_threshold(expression, scope))
                except ValueError as error:
                    raise BadInput(f"thresholds.{scope}: {error}") from None
        return cls(tuple(parsed), scopes)

    def __len__(self) -> int:
        return len(self.thresholds)

    def evaluate(self, records: pa.Table) -> list[ThresholdResult]:
        results = []
        for threshold in self.thresholds:
            table = records
            if threshold.scope != "all":
                table = records.filter(pc.equal(records["endpoint"],
                                                self.scope_endpoints[threshold.scope]))
            actual = measure(threshold.metric, table)
            results.append(ThresholdResult(threshold, actual, threshold.holds(actual)))
        return results


# ---------------------------------------------------------------------- measuring


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def ratelimited_mask(table: pa.Table) -> pa.ChunkedArray:
    return pc.fill_null(pc.equal(table["status"], 429), False)


def error_mask(table: pa.Table) -> pa.ChunkedArray:
    """No response, status >= 400, or an error class; never a 429."""
    status = table["status"]
    error = pc.fill_null(table["error"], "")
    failed = pc.or_(pc.or_(pc.equal(status, 0), pc.greater_equal(status, 400)),
                    pc.not_equal(error, ""))
    return pc.and_(pc.fill_null(failed, True), pc.invert(ratelimited_mask(table)))


def send_span_s(table: pa.Table) -> float | None:
    if table.num_rows < 2:
        return None
    span = pc.min_max(table["ts"]).as_py()
    width = span["max"] - span["min"]
    return width if width > 0 else None


def corrected_latency(table: pa.Table) -> pa.ChunkedArray:
    """Latency from the intended send time: ts + latency_s - intended_ts (or latency_s)."""
    done = pc.add(table["ts"], table["latency_s"])
    corrected = pc.subtract(done, table["intended_ts"])
    return pc.coalesce(corrected, table["latency_s"])


def measure(metric: str, table: pa.Table) -> float | None:
    """The value of ``metric`` over ``table`` (None when there is no data for it)."""
    n = table.num_rows
    if metric == "requests":
        return float(n)
    if n == 0:
        return None
    if metric in ("rps", "rpm", "tokens_per_s", "tokens_per_min"):
        span = send_span_s(table)
        if span is None:
            return None
        per = 60.0 if metric.endswith("min") else 1.0
        if metric.startswith("tokens"):
            tokens = pc.sum(table["total_tokens"]).as_py() or 0
            return tokens / span * per
        return (n - 1) / span * per
    if metric in ("errors", "error_rate"):
        count = _count(error_mask(table))
        return float(count) if metric == "errors" else count / n
    if metric in ("ratelimited", "ratelimited_rate"):
        count = _count(ratelimited_mask(table))
        return float(count) if metric == "ratelimited" else count / n
    if metric == "success_rate":
        return 1 - (_count(error_mask(table)) + _count(ratelimited_mask(table))) / n
    if metric == "mean_latency_s":
        return pc.mean(table["latency_s"]).as_py()
    if metric == "max_latency_s":
        return pc.max(table["latency_s"]).as_py()
    match = _PERCENTILE_RE.match(metric)
    if match:
        values = corrected_latency(table) if match.group(2) else table["latency_s"]
        quantile = pc.quantile(values, q=float(match.group(1)) / 100, interpolation="linear")
        return quantile[0].as_py()
    raise ValueError(f"unknown metric {metric!r}")
