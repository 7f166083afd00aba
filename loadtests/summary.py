"""Per-endpoint figures of a finished load run, computed from its records.

The same :func:`secton_harness.measures.measure` that judges thresholds computes these,
so the table a user reads, run.json, the verdict and the report always agree.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loadtests.scenario import Scenario
from secton_harness.endpoints import BY_NAME
from secton_harness.measures import Columns, measure

FIGURES = ("requests", "rps", "ok", "errors", "error_rate", "ratelimited", "ratelimited_rate",
           "cancelled",
           "p50_latency_s", "p95_latency_s", "p99_latency_s",
           "p50_corrected_latency_s", "p95_corrected_latency_s", "p99_corrected_latency_s",
           "tokens_per_min")


def summarize(table: pa.Table, scenario: Scenario) -> dict[str, Any]:
    """``{"all": {...}, "/v1/models": {...}, ...}`` with the asked rate beside ``rps``:
    ``asked_rps`` (the scenario's expected requests over its duration: the mean over a
    ramp; the same figure as ``rates.<endpoint>.asked_rps``), ``asked_requests`` and
    ``configured_rps`` (the endpoint's ``rate`` before the shape's multiplier)."""
    out: dict[str, Any] = {"all": _figures(table)}
    for name, load in scenario.endpoint_loads().items():
        path = BY_NAME[name].path
        part = table.filter(pc.equal(table["endpoint"], path)) if table.num_rows else table
        figures = _figures(part)
        figures["asked_rps"] = scenario.expected_requests(name) / scenario.duration
        figures["asked_requests"] = scenario.expected_requests(name)
        figures["configured_rps"] = load.rate
        out[path] = figures
    return out


def _figures(table: pa.Table) -> dict[str, Any]:
    columns = Columns.from_arrow(table)
    return {name: measure(name, columns) for name in FIGURES}
