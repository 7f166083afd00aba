"""Thresholds as data: ``"p95_latency_s < 2"`` parsed once, evaluated on request records.

k6-style pass/fail criteria for a run. Each expression is ``METRIC OP VALUE`` and is parsed
into a :class:`Threshold` when the scenario is loaded (a typo fails there, not at the end
of a long run). :meth:`ThresholdSet.evaluate` computes each metric from the records
(the run folder's ``records.parquet`` as a pyarrow table) and a failure prints the resolved
value, Gatus-style: ``p95_latency_s (2.41) < 2.0``.

Metrics (over all records of the scope) are the measures of
:mod:`secton_harness.measures`, by name: ``requests``, ``ok``, ``errors``, ``ratelimited``,
``error_rate`` (a 429 is never an error), ``ratelimited_rate``, ``success_rate``, ``rps`` /
``rpm``, ``ok_rps``, ``tokens_per_s`` / ``tokens_per_min``, ``mean_latency_s``,
``max_latency_s``, ``pNN_latency_s`` and ``pNN_corrected_latency_s`` (any 0 < NN < 100).
Their definitions live there once (docs/measurement.md), so a threshold, the load table,
run.json, the report and the dashboards give one run the same figure.

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
from secton_harness.measures import SIMPLE_METRICS, Columns, check_metric_name, measure

__all__ = ["SIMPLE_METRICS", "Threshold", "ThresholdResult", "ThresholdSet",
           "check_metric_name", "format_value", "measure", "parse_threshold"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_EXPR_RE = re.compile(r"^\s*([a-z0-9_.]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


def is_latency_metric(metric: str) -> bool:
    return metric.endswith("latency_s")


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
            actual = measure(threshold.metric, Columns.from_arrow(table))
            results.append(ThresholdResult(threshold, actual, threshold.holds(actual)))
        return results
