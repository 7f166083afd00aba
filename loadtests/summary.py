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
           "p50_latency_s", "p95_latency_s", "p99_latency_s",
           "p50_corrected_latency_s", "p95_corrected_latency_s", "p99_corrected_latency_s",
           "tokens_per_min")


def summarize(table: pa.Table, scenario: Scenario) -> dict[str, Any]:
    """``{"all": {...}, "/v1/models": {...}, ...}`` with the target rate beside ``rps``."""
    out: dict[str, Any] = {"all": _figures(table)}
    for name, load in scenario.endpoint_loads().items():
        path = BY_NAME[name].path
        part = table.filter(pc.equal(table["endpoint"], path)) if table.num_rows else table
        figures = _figures(part)
        figures["target_rps"] = scenario.expected_requests(name) / scenario.duration
        figures["target_requests"] = scenario.expected_requests(name)
        figures["base_rate"] = load.rate
        out[path] = figures
    return out


def _figures(table: pa.Table) -> dict[str, Any]:
    columns = Columns.from_arrow(table)
    return {name: measure(name, columns) for name in FIGURES}
