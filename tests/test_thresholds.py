"""Threshold parsing (one clear error per bad expression) and evaluation on records."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loadtests.thresholds import ThresholdSet, measure, parse_threshold
from secton_harness.errors import BadInput
from secton_harness.records import rows_to_table


def test_parse_simple_and_units() -> None:
    t = parse_threshold("p95_latency_s < 2")
    assert (t.metric, t.op, t.value, t.scope) == ("p95_latency_s", "<", 2.0, "all")
    assert parse_threshold("p99_latency_s <= 250ms").value == pytest.approx(0.25)
    assert parse_threshold("rps >= 50").op == ">="
    assert parse_threshold("p99.9_corrected_latency_s < 1").metric == "p99.9_corrected_latency_s"


@pytest.mark.parametrize(("text", "fragment"), [
    ("p95_latency_s 2", "not 'METRIC OP VALUE'"),
    ("p95_latncy_s < 2", "unknown metric 'p95_latncy_s'"),
    ("p100_latency_s < 2", "unknown metric"),
    ("error_rate < lots", "'lots' is not a number"),
    ("rps >= nan", "not a number"),
    ("", "not 'METRIC OP VALUE'"),
])
def test_parse_errors_name_the_expression(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_threshold(text)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_threshold_set_rejects_unknown_scope() -> None:
    with pytest.raises(BadInput, match=r"thresholds.chta: unknown scope"):
        ThresholdSet.parse({"chta": ["rps > 1"]}, {"chat": "/v1/chat/completions"})


def _records() -> pa.Table:
    rows = []
    for i in range(100):
        status = 429 if i < 5 else (500 if i < 7 else 200)
        rows.append({"ts": 1000.0 + i * 0.1, "intended_ts": 1000.0 + i * 0.1 - 0.5,
                     "endpoint": "/v1/chat/completions" if i % 2 else "/v1/models",
                     "status": status, "latency_s": (i + 1) / 100, "total_tokens": 10,
                     "error": "http" if status >= 400 else ""})
    return rows_to_table(rows)


def test_measure_counts_429_apart_from_errors() -> None:
    table = _records()
    assert measure("requests", table) == 100
    assert measure("ratelimited_rate", table) == pytest.approx(0.05)
    assert measure("error_rate", table) == pytest.approx(0.02)
    assert measure("success_rate", table) == pytest.approx(0.93)
    assert measure("rps", table) == pytest.approx(99 / 9.9)
    # rps x tokens per request: the same span and the same n - 1 gaps as rps
    assert measure("tokens_per_min", table) == pytest.approx(99 / 9.9 * 1000 / 100 * 60)
    assert measure("p50_latency_s", table) == pytest.approx(0.505)
    assert measure("max_latency_s", table) == pytest.approx(1.0)
    # corrected latency adds the 0.5 s between intended and actual send
    assert measure("p50_corrected_latency_s", table) == pytest.approx(1.005)


def test_evaluate_resolved_values_and_scopes() -> None:
    spec = {"all": ["p95_latency_s < 0.5", "error_rate < 0.05"], "chat": ["requests == 50"]}
    results = ThresholdSet.parse(spec, {"chat": "/v1/chat/completions"}).evaluate(_records())
    assert [r.passed for r in results] == [False, True, True]
    assert results[0].describe() == "p95_latency_s (0.9505) < 0.5"
    assert results[0].margin() == "+90.1%"
    assert results[2].describe() == "requests (50) == 50"


def test_no_data_fails_with_na() -> None:
    empty = rows_to_table([{"ts": 1.0, "endpoint": "/v1/models", "latency_s": 0.1}]).slice(0, 0)
    (result,) = ThresholdSet.parse({"all": ["p95_latency_s < 1"]}).evaluate(empty)
    assert not result.passed
    assert result.describe() == "p95_latency_s (n/a) < 1"
