"""One run with 429s and 500s: the same error rate, rps and p95 everywhere it is shown.

A real reference server with a small per-key limit (429s) and 5 % injected 500s (errors),
a real ``secton-harness load --metrics-port`` run, a real Prometheus scraping it every
second, then ``secton-harness report`` on the run folder. The load command's table,
run.json, summary.json and report.md must show the same figures
(:mod:`secton_harness.measures`), and the dashboard's own expressions, evaluated in
Prometheus on the run's final counters, must give the same error rate (exactly: counts)
and a p95 within 10 % (histogram buckets).

Why the counters and not ``rate()``: ``rate`` over a series that appears mid-run does not
count its first scrape, so a windowed rate is an estimate by construction; the test
evaluates the dashboard's expression with each ``rate(X[w])`` replaced by the last value
of ``X`` (the cumulative count), which keeps every selector, matcher and the arithmetic of
the panel.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tomllib
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, cli_row, free_port, write_toml
from prometheus_helper import query, start_prometheus, stop_prometheus

from dashboards import load_board
from dashboards.export import build_all
from reports.build import build_report
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
RATE_RE = re.compile(r"rate\((\w+\{[^}]*\})\[[^\]]+\]\)")


def _cumulative(expr: str) -> str:
    """The panel expression on the final counters: ``rate(X{..}[w])`` becomes
    ``last_over_time(X{..}[5m])`` (the last scraped value, also once the run's exporter is
    gone and its series are marked stale)."""
    return RATE_RE.sub(r"last_over_time(\1[5m])", expr)


def _panel_expr(title: str, index: int = 0) -> str:
    board = build_all()[load_board.UID]
    panel = next(p for p in board["panels"] if p["title"] == title)
    expr = panel["targets"][index]["expr"]
    return expr.replace('org=~"$org"', 'org=~".*"').replace('endpoint=~"$endpoint"',
                                                               'endpoint=~".*"')


#: The load board's "Latency percentiles by endpoint" panel: p50, p95, p99 (its targets).
BY_ENDPOINT = "Latency percentiles by endpoint"
QUANTILES = ("p50", "p95", "p99")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, prometheus_binary: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("measures")
    config = tomllib.loads((ROOT / "simulator" / "default.toml").read_text(encoding="utf-8"))
    config["limits"]["key"] = {"limit": 6, "window_s": "2s"}    # 429s
    config["faults"] = {"error_500": 0.05}                       # errors
    config["latency"] = {"base_ms": 20, "per_token_ms": 0.2, "jitter_ms": 15,
                         "jitter": "exponential"}
    config = write_toml(tmp / "sim.toml", config)
    scenario = write_toml(tmp / "load.toml", {
        "name": "measures", "shape": "steady", "duration": "8s", "arrival": "even",
        "endpoints": {"models": {"rate": "12/s", "users": 3},
                      "chat": {"rate": "6/s", "users": 3}}})
    port = free_port()
    out = tmp / "load-run"
    with ReferenceServer(config) as server:
        url, prom = start_prometheus(tmp, [f"127.0.0.1:{port}"], job="secton",
                                     binary=prometheus_binary)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
                 "--target", server.url, "--keys", str(KEYS), "--out", str(out),
                 "--metrics-port", str(port), "--metrics-linger", "4s"],
                capture_output=True, text=True, timeout=120, cwd=ROOT,
                env={**os.environ, "COLUMNS": "200"})
            assert (out / "run.json").exists(), done.stdout + done.stderr
            info = json.loads((out / "run.json").read_text())
            requests = info["summary"]["all"]["requests"]
            # the last scrape before the linger ended holds every request
            seen = query(url, 'sum(last_over_time(secton_requests_total{source="load"}[5m]))')
            assert seen and float(seen[0]["value"][1]) == requests, (seen, requests, done)
            # the board's request rate counts what rps counts: every request, 429s included
            [panel] = query(url, _cumulative(_panel_expr("Request rate")))
            assert float(panel["value"][1]) == requests, (panel, requests)
            error_ratio = query(url, _cumulative(_panel_expr("Error ratio")))
            limited_ratio = query(url, _cumulative(_panel_expr("429 share")))
            p95 = query(url, _cumulative(_panel_expr("p95 latency")))
            by_endpoint = {name: query(url, _cumulative(_panel_expr(BY_ENDPOINT, i)))
                           for i, name in enumerate(QUANTILES)}
        finally:
            stop_prometheus(prom)
    records = pq.read_table(out / "records.parquet", columns=["endpoint", "latency_s"])
    latencies = {str(e): sorted(v for v, x in zip(records["latency_s"].to_pylist(),
                                                  records["endpoint"].to_pylist(),
                                                  strict=True) if x == e and v is not None)
                 for e in set(records["endpoint"].to_pylist())}
    report = build_report([out], out=tmp / "report")
    return {"cli": done.stdout + done.stderr, "code": done.returncode, "info": info,
            "summary": json.loads(report.summary_path.read_text()),
            "markdown": report.markdown.read_text(), "prom_error_ratio": error_ratio,
            "prom_ratelimited_ratio": limited_ratio, "prom_p95": p95,
            "prom_by_endpoint": by_endpoint, "latencies": latencies}


def test_the_run_has_429s_and_errors(run: dict[str, Any]) -> None:
    figures = run["info"]["summary"]["all"]
    assert run["code"] in (0, 1), run["cli"]
    assert figures["requests"] > 100, run["cli"]
    assert figures["ratelimited"] > 0 and figures["errors"] > 0, figures
    assert (figures["ok"] + figures["errors"] + figures["ratelimited"]
            + figures["cancelled"] == figures["requests"])
    # a 429 is not an error: the old "not 2xx" ratio would be larger
    assert figures["error_rate"] == pytest.approx(figures["errors"] / figures["requests"])
    assert figures["error_rate"] < (figures["errors"] + figures["ratelimited"]) / figures[
        "requests"]


def test_cli_run_json_summary_and_report_agree(run: dict[str, Any]) -> None:
    figures = run["info"]["summary"]["all"]
    capacity = run["summary"]["capacity"]
    # summary.json and run.json: the same floats
    assert capacity["error_rate"] == pytest.approx(figures["error_rate"], rel=1e-12)
    assert capacity["ratelimited_rate"] == pytest.approx(figures["ratelimited_rate"],
                                                          rel=1e-12)
    assert capacity["rps"] == pytest.approx(figures["rps"], rel=1e-12)
    assert capacity["latency"]["p95"] == pytest.approx(figures["p95_latency_s"], rel=1e-12)
    assert capacity["errors"] == figures["errors"]
    assert capacity["ratelimited"] == figures["ratelimited"]
    assert capacity["cancelled"] == figures["cancelled"]
    for row in capacity["by_endpoint"]:
        endpoint = run["info"]["summary"][row["endpoint"]]
        assert row["rps"] == pytest.approx(endpoint["rps"], rel=1e-12)
        assert row["error_rate"] == pytest.approx(endpoint["error_rate"], rel=1e-12)
        assert row["p95"] == pytest.approx(endpoint["p95_latency_s"], rel=1e-12)
    # the CLI table shows the same values at its precision
    cells = cli_row(run["cli"], "all")
    assert float(cells[2]) == pytest.approx(figures["rps"], abs=0.006)
    assert cells[5] == f"{figures['p95_latency_s'] * 1000:.1f}"
    assert cells[9] == f"{figures['error_rate'] * 100:.2f}"
    assert float(cells[11]) == figures["cancelled"]
    # report.md shows them at its precision
    markdown = run["markdown"]
    assert f"{figures['rps']:,.1f}/s" in markdown
    assert f"{figures['error_rate'] * 100:.2f} %" in markdown
    assert f"{figures['p95_latency_s'] * 1000:.1f} ms" in markdown


def test_dashboard_expressions_follow_the_measures(run: dict[str, Any]) -> None:
    figures = run["info"]["summary"]["all"]
    [error_ratio] = run["prom_error_ratio"]
    assert float(error_ratio["value"][1]) == pytest.approx(figures["error_rate"], abs=1e-12)
    [limited] = run["prom_ratelimited_ratio"]
    assert float(limited["value"][1]) == pytest.approx(figures["ratelimited_rate"],
                                                       abs=1e-12)
    [p95] = run["prom_p95"]
    exact = figures["p95_latency_s"]
    assert abs(float(p95["value"][1]) - exact) <= 0.10 * exact, (p95, exact)


def test_dashboard_percentiles_by_endpoint_within_10_percent(run: dict[str, Any]) -> None:
    """The board's p50/p95/p99 per endpoint (histogram_quantile over 8 buckets per
    doubling) against the exact percentiles of run.json: within 10 % each.

    Where the tail is sparse (p99 of ~50 requests lies between the two slowest), the
    exact figure interpolates between those two samples while histogram_quantile finds
    the bucket of the sample at rank 0.99 n: there the estimate is held within 10 % of
    that sample (the bucket error), and the gap to the interpolated figure is the tail's
    own spacing, not the buckets'."""
    rows = []
    for name in QUANTILES:
        for series in run["prom_by_endpoint"][name]:
            endpoint = series["metric"]["endpoint"]
            exact = run["info"]["summary"][endpoint][f"{name}_latency_s"]
            values = run["latencies"][endpoint]
            ranked = values[max(math.ceil(int(name[1:]) / 100 * len(values)) - 1, 0)]
            rows.append((endpoint, name, float(series["value"][1]), exact, ranked,
                         len(values)))
    print("\n".join(f"{e} {n} (n={k}): dashboard {d * 1000:.1f} ms, exact {x * 1000:.1f} ms "
                    f"({(d - x) / x:+.1%}), sample at rank {r * 1000:.1f} ms"
                    for e, n, d, x, r, k in rows))
    assert {(e, n) for e, n, *_ in rows} == {(e, n) for n in QUANTILES
                                             for e in ("/v1/models", "/v1/chat/completions")}
    off = [row for row in rows if abs(row[2] - row[3]) > 0.10 * row[3]
           and not (row[5] < 1000 and abs(row[2] - row[4]) <= 0.10 * row[4])]
    assert not off, off
