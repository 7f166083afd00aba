"""The measure definitions (secton_harness/measures.py) and that every consumer uses them."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dashboards import load_board, variables
from dashboards.export import build_all
from loadtests.thresholds import measure as threshold_measure
from reports.build import build_report
from reports.command import report
from reports.stats import columns as frame_columns
from secton_harness import measures
from secton_harness.measures import (
    DEFAULT_SLO,
    Columns,
    classify,
    corrected_latency,
    measure,
    rps,
)

NAN = float("nan")


def _columns(status: list[float], error: list[str] | None = None,
             success: list[float] | None = None) -> Columns:
    n = len(status)
    return Columns(ts=np.arange(n, dtype=float), latency_s=np.full(n, 0.1),
                   status=np.asarray(status, dtype=float),
                   has_error=np.asarray([bool(e) for e in (error or [""] * n)]),
                   success=np.asarray(success if success is not None else [NAN] * n),
                   intended_ts=np.full(n, NAN), tokens=np.full(n, NAN))


def test_a_429_is_never_an_error_and_never_ok() -> None:
    c = _columns([200, 429, 429, 500, 0, 404, 200, 302, NAN],
                 error=["", "", "http", "", "connect", "", "contract", "", ""],
                 success=[NAN, 0.0, 0.0, NAN, NAN, NAN, NAN, NAN, NAN])
    o = classify(c.status, c.has_error, c.success)
    assert o.ratelimited.tolist() == [False, True, True, False, False, False, False, False,
                                      False]
    # 500, no response, 404, a 200 that broke the contract, no status at all
    assert o.error.tolist() == [False, False, False, True, True, True, True, False, True]
    assert o.ok.tolist() == [True, False, False, False, False, False, False, True, False]
    assert (o.ok.astype(int) + o.error + o.ratelimited == 1).all()
    assert measure("error_rate", c) == pytest.approx(5 / 9)
    assert measure("ratelimited_rate", c) == pytest.approx(2 / 9)
    assert measure("success_rate", c) == pytest.approx(2 / 9)


def test_a_cancelled_request_is_counted_apart_with_no_latency() -> None:
    """A request the run's stop cut (error class ``cancelled``) is neither an error nor ok,
    stays in the denominator like a 429, and its partial wait enters no latency figure;
    the arrow and pandas adapters and the live metrics' outcome label agree."""
    table = pa.table({
        "ts": [0.0, 1.0, 2.0, 3.0], "latency_s": [0.5, 0.5, 0.001, 0.5],
        "status": pa.array([200, 500, 0, 429], pa.int32()),
        "error": pa.array(["", "http", "cancelled", ""]),
        "success": pa.array([True, False, False, False]),
        "intended_ts": pa.array([None] * 4, pa.float64())})
    frame = table.to_pandas()
    frame["error"] = frame["error"].astype("category")
    for c in (Columns.from_arrow(table), frame_columns(frame)):
        assert measures.outcome_labels(c).tolist() == ["ok", "error", "cancelled",
                                                       "ratelimited"]
        counts = measures.count(c)
        assert (counts.ok, counts.errors, counts.ratelimited, counts.cancelled) == (1, 1, 1, 1)
        assert measure("cancelled", c) == 1.0
        assert measure("error_rate", c) == pytest.approx(1 / 4)
        assert measure("p50_latency_s", c) == pytest.approx(0.5)  # not the 1 ms cut
        assert measure("mean_latency_s", c) == pytest.approx(0.5)
        assert measure("p50_corrected_latency_s", c) == pytest.approx(0.5)
        assert measure("rps", c) == pytest.approx(1.0)  # it was sent: it counts as a send
    assert "cancelled" in measures.OUTCOMES


def test_success_false_is_an_error_unless_429() -> None:
    c = _columns([200, 429], success=[0.0, 0.0])
    assert (measure("errors", c), measure("ratelimited", c)) == (1.0, 1.0)


def test_rps_is_n_minus_1_over_the_send_span() -> None:
    even = np.arange(8) * 0.5  # 2/s for 4 s: 8 sends spanning 3.5 s
    assert rps(even) == pytest.approx(2.0)
    assert rps(np.array([5.0])) is None and rps(np.array([1.0, 1.0])) is None
    c = _columns([200] * 8)
    c = Columns(**{**c.__dict__, "ts": even, "tokens": np.full(8, 10.0)})
    assert measure("rps", c) == pytest.approx(2.0)
    assert measure("ok_rps", c) == pytest.approx(2.0)
    assert measure("tokens_per_s", c) == pytest.approx(20.0)


def test_corrected_latency_falls_back_to_plain_per_record() -> None:
    c = Columns(ts=np.array([10.0, 20.0]), latency_s=np.array([0.1, 0.2]),
                status=np.array([200.0, 200.0]), has_error=np.array([False, False]),
                success=np.array([NAN, NAN]), intended_ts=np.array([9.5, NAN]),
                tokens=np.array([NAN, NAN]))
    assert corrected_latency(c).tolist() == pytest.approx([0.6, 0.2])


def test_arrow_and_pandas_adapters_and_thresholds_agree() -> None:
    rng = np.random.default_rng(4)
    n = 500
    status = rng.choice([200, 200, 200, 429, 500, 0], n)
    table = pa.table({
        "ts": np.sort(rng.uniform(0, 50, n)), "latency_s": rng.exponential(0.2, n),
        "status": pa.array(status, pa.int32()),
        "error": pa.array(["" if s in (200, 429) else "http" for s in status]),
        "success": pa.array([None] * n, pa.bool_()),
        "intended_ts": pa.array([None] * n, pa.float64()),
        "prompt_tokens": pa.array([None] * n, pa.int64()),
        "completion_tokens": pa.array([None] * n, pa.int64())})
    frame = table.to_pandas()
    frame["error"] = frame["error"].astype("category")
    from_arrow, from_frame = Columns.from_arrow(table), frame_columns(frame)
    for name in ("error_rate", "ratelimited_rate", "rps", "p95_latency_s",
                 "p99_corrected_latency_s"):
        value = measure(name, from_arrow)
        assert value == pytest.approx(measure(name, from_frame), rel=1e-12), name
        assert value == pytest.approx(threshold_measure(name, table), rel=1e-12), name
    assert measure("p95_latency_s", from_arrow) == pytest.approx(
        np.percentile(table["latency_s"].to_numpy(), 95))


def test_tokens_have_one_definition_in_the_cli_and_the_report() -> None:
    """A target whose total_tokens is not prompt + completion (reasoning tokens, say):
    the CLI's thresholds and the report both count total_tokens; prompt + completion
    only where total_tokens was not reported (the report used to sum them always)."""
    table = pa.table({
        "ts": [0.0, 1.0, 2.0, 3.0], "latency_s": [0.1] * 4,
        "status": pa.array([200] * 4, pa.int32()), "error": ["", "", "", ""],
        "success": pa.array([None] * 4, pa.bool_()),
        "intended_ts": pa.array([None] * 4, pa.float64()),
        "prompt_tokens": pa.array([3, 2, None, None], pa.int64()),
        "completion_tokens": pa.array([4, 5, 6, None], pa.int64()),
        "total_tokens": pa.array([30, None, None, None], pa.int64())})
    frame = table.to_pandas()
    frame["error"] = frame["error"].astype("category")
    expected = [30.0, 7.0, 6.0, NAN]
    np.testing.assert_array_equal(Columns.from_arrow(table).tokens, expected)
    np.testing.assert_array_equal(frame_columns(frame).tokens, expected)
    # rps = 3 / 3 s = 1; tokens per request = 43 / 4
    assert measure("tokens_per_s", Columns.from_arrow(table)) == pytest.approx(43 / 4)
    assert threshold_measure("tokens_per_s", table) == pytest.approx(43 / 4)
    assert measure("tokens_per_s", frame_columns(frame)) == pytest.approx(43 / 4)


def test_the_load_board_is_built_from_the_measures() -> None:
    board = build_all()[load_board.UID]
    exprs = {p["title"]: p["targets"][0]["expr"] for p in board["panels"]
             if p.get("targets")}
    assert exprs["Error ratio"] == measures.promql_error_ratio(load_board.SEL,
                                                               load_board.WINDOW)
    assert 'outcome!="error"' in exprs["Error ratio"]
    assert 'status=~"2.."' not in " ".join(exprs.values())  # "not 2xx" counted 429s
    assert exprs["429 share"] == measures.promql_ratelimited_ratio(load_board.SEL,
                                                                   load_board.WINDOW)


def test_one_slo_default_everywhere() -> None:
    from pathlib import Path

    rules = (Path(__file__).resolve().parent.parent / "probes" / "rules"
             / "secton-probes.yml").read_text()
    budget = f"{1 - DEFAULT_SLO:.3f}"
    factors = set(re.findall(r"\* (0\.\d+)\)", rules))
    assert factors == {budget}, factors
    assert float(variables.DEFAULT_SLO) == DEFAULT_SLO
    assert inspect.signature(report).parameters["slo"].default == DEFAULT_SLO
    assert inspect.signature(build_report).parameters["slo"].default == DEFAULT_SLO


def test_no_other_module_defines_the_measures() -> None:
    """The definitions live once: no consumer keeps its own 429 rule or quantile call."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for folder in ("reports", "loadtests", "dashboards", "secton_harness", "probes"):
        for path in (root / folder).rglob("*.py"):
            if path.name in ("measures.py", "truth.py"):  # truth: ground-truth comparison
                continue
            text = path.read_text(encoding="utf-8")
            for own in ("pc.quantile", "np.percentile(", "np.quantile(", 'status=~"2.."',
                        "def ok_mask", "def error_mask"):
                assert own not in text, f"{path}: {own}"


def test_frame_adapter_reads_nullable_success() -> None:
    frame = pd.DataFrame({"ts": [1.0, 2.0, 3.0], "latency_s": [0.1, 0.2, 0.3],
                          "status": [200, 200, 429], "error": ["", "", ""],
                          "success": pd.array([True, False, None], dtype="boolean"),
                          "intended_ts": [NAN] * 3, "prompt_tokens": [NAN] * 3,
                          "completion_tokens": [NAN] * 3})
    c = frame_columns(frame)
    assert (measure("ok", c), measure("errors", c), measure("ratelimited", c)) == (1, 1, 1)
