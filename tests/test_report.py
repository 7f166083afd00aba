"""Report figures equal what the test computes independently from the records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_data import (
    RATELIMIT_RESULT,
    load_rows,
    make_run,
    probe_rows,
    ratelimit_rows,
)

from reports.build import build_report
from reports.render import ms, pct


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("full") / "run"
    make_run(path, load=load_rows(), probe=probe_rows(), ratelimit=ratelimit_rows(),
             ratelimit_result=RATELIMIT_RESULT,
             thresholds=[{"name": "p95_latency_s", "expression": "p95 < 0.5",
                          "value": 0.07, "passed": True}])
    result = build_report([path], out=path / "report", slo=0.999)
    summary = json.loads(result.summary_path.read_text())
    return path, summary


def test_capacity_figures_match_independent_computation(full_run) -> None:
    _, summary = full_run
    frame = pd.DataFrame(load_rows())
    cap = summary["capacity"]
    assert cap["requests"] == len(frame)
    latency = frame["latency_s"].to_numpy()
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert cap["latency"][name] == pytest.approx(np.percentile(latency, q), rel=1e-9)
    assert cap["latency"]["max"] == pytest.approx(latency.max())
    # docs/measurement.md: a 429 is counted apart, never as an error
    errors = (((frame["status"] < 200) | (frame["status"] >= 400))
              & (frame["status"] != 429)).mean()
    assert cap["error_rate"] == pytest.approx(errors)
    assert cap["errors"] + cap["ok"] + cap["ratelimited"] == cap["requests"]
    ts = np.sort(frame["ts"].to_numpy())
    assert cap["rps"] == pytest.approx((len(ts) - 1) / (ts[-1] - ts[0]))
    assert cap["ratelimited_rate"] == pytest.approx((frame["status"] == 429).mean())
    chat = frame[frame["endpoint"] == "/v1/chat/completions"]
    row = next(r for r in cap["by_endpoint"] if r["endpoint"] == "/v1/chat/completions")
    assert row["p95"] == pytest.approx(np.percentile(chat["latency_s"], 95))
    assert cap["tokens"]["completion_total"] == int(frame["completion_tokens"].sum())
    assert cap["status_counts"]["5xx"] == int((frame["status"] == 500).sum())


def test_knee_is_the_last_stage_before_degradation(full_run) -> None:
    _, summary = full_run
    stages = summary["capacity"]["stages"]
    assert [s["phase"] for s in stages] == ["stage-1", "stage-2", "stage-3", "stage-4"]
    assert [round(s["offered_rps"]) for s in stages] == [10, 20, 40, 80]
    knee = summary["capacity"]["knee"]
    assert knee["found"] and knee["knee_phase"] == "stage-3"
    assert knee["knee_offered_rps"] == pytest.approx(40, rel=1e-3)


def test_uptime_availability_and_incidents(full_run) -> None:
    _, summary = full_run
    frame = pd.DataFrame(probe_rows())
    up = summary["uptime"]
    assert up["availability"] == pytest.approx(frame["success"].mean())
    assert up["budget_consumed"] == pytest.approx((1 - frame["success"].mean()) / 0.001)
    chat_a = frame[(frame["check"] == "chat") & (frame["target"] == "a")]
    row = next(r for r in up["per_target"] if r["check"] == "chat" and r["target"] == "a")
    assert row["availability"] == pytest.approx(chat_a["success"].mean())
    # equal spacing: time-based equals count-based
    assert row["availability_time"] == pytest.approx(chat_a["success"].mean())
    assert up["incident_count"] == 2
    longest = up["incidents"][0]
    assert (longest["check"], longest["target"], longest["failures"]) == ("chat", "a", 5)
    assert longest["start_ts"] == pytest.approx(1_700_000_000 + 40 * 0.5)
    assert longest["duration_s"] == pytest.approx(5 * 0.5)
    assert longest["reason"] == "status"
    models = next(r for r in up["per_check"] if r["check"] == "models")
    assert models["p95"] == pytest.approx(
        np.percentile(frame[frame["check"] == "models"]["latency_s"], 95))


def test_ratelimit_card_and_timeline(full_run) -> None:
    _, summary = full_run
    rl = summary["ratelimits"]
    card = rl["cards"][0]
    figures = {f["name"]: f for f in card["figures"]}
    assert figures["burst"]["value"] == 20 and figures["burst"]["passed"] is True
    assert figures["algorithm"]["passed"] is False and card["passed"] is False
    frame = pd.DataFrame(ratelimit_rows())
    assert rl["ratelimited"] == int((frame["status"] == 429).sum())
    assert rl["interval_count"] == 4  # two runs per key
    first = rl["intervals_429"][0]
    assert first["start_s"] == pytest.approx(2.0) and first["count"] == 10
    assert set(rl["timeline"]["lanes"]) == {"a1", "a2"}


def test_html_is_self_contained_with_every_section(full_run) -> None:
    path, summary = full_run
    html = (path / "report" / "report.html").read_text()
    for section in ("Capacity", "Rate limits", "Uptime"):
        assert f"<h3>{section}</h3>" in html
    assert "Baseline" not in html  # no --baseline: no empty section, no link to one
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert html.count("<svg") >= 6
    assert "@media print" in html
    assert "sk-secret" not in html
    assert ms(summary["capacity"]["latency"]["p95"]) in html
    assert "Knee: 40.0/s" in html


def test_markdown_shows_the_same_figures(full_run) -> None:
    path, summary = full_run
    md = (path / "report" / "report.md").read_text()
    html = (path / "report" / "report.html").read_text()
    cap, up = summary["capacity"], summary["uptime"]
    shown = [ms(cap["latency"][k]) for k in ("p50", "p90", "p95", "p99", "max")]
    shown += [pct(cap["error_rate"]), pct(up["availability"], 3), pct(up["slo"], 3)]
    for text in shown:
        assert text in md and text in html, text
    for heading in ("#### Capacity", "#### Rate limits", "#### Uptime"):
        assert heading in md
    assert "Baseline comparison" not in md
    # every table row has as many cells as its header
    for table in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
        widths = {line.count("|") for line in table.strip().splitlines()}
        assert len(widths) == 1, table


def test_summary_json_holds_the_chart_series(full_run) -> None:
    _, summary = full_run
    series = summary["capacity"]["series"]
    assert set(series["latency"]) == {"p50", "p90", "p95", "p99", "max"}
    assert len(series["latency"]["p95"]) <= 121
    covered = series["bucket_covered_s"]
    counted = sum(y * covered[i] for pts in series["throughput_by_status"].values()
                  for i, (_, y) in enumerate(pts))
    assert counted == pytest.approx(summary["capacity"]["requests"])


def test_absent_sections_are_hidden(tmp_path: Path) -> None:
    """A probe run's report shows its uptime, not empty Capacity/Rate-limit sections."""
    path = make_run(tmp_path / "probe-only", probe=probe_rows())
    summary = build_report([path], out=None, slo=0.99).summary
    assert summary["capacity"]["available"] is False
    html = (path / "report.html").read_text()
    assert "<h3>Uptime</h3>" in html
    assert "<h3>Capacity</h3>" not in html and "<h3>Rate limits</h3>" not in html
    assert "Not available: no load records" not in html
    assert "Not available" not in html and "Baseline" not in html


def test_only_failures_and_unmerged_parts(tmp_path: Path) -> None:
    rows = [{**r, "status": 0, "error": "connect", "latency_s": 0.001 * (i + 1)}
            for i, r in enumerate(load_rows(stage_rates=(5,))[:20])]
    path = make_run(tmp_path / "failing", load=rows, merge=False)
    assert (path / "records.parts").is_dir() and not (path / "records.parquet").exists()
    summary = build_report([path], out=None).summary
    assert summary["capacity"]["error_rate"] == 1.0
    assert summary["capacity"]["status_counts"] == {"no response": 20}
    assert summary["capacity"]["latency"]["p95"] == pytest.approx(
        np.percentile([0.001 * (i + 1) for i in range(20)], 95))
    assert summary["capacity"]["knee"]["found"] is False


def test_several_run_folders_keep_their_own_sections(tmp_path: Path) -> None:
    load = make_run(tmp_path / "load", load=load_rows())
    probe = make_run(tmp_path / "probe", probe=probe_rows())
    summary = build_report([load, probe], out=tmp_path / "out").summary
    runs = summary["runs"]
    assert len(runs) == 2 and "capacity" not in summary  # nothing merged at the top
    assert runs[0]["capacity"]["available"] and not runs[0]["uptime"]["available"]
    assert runs[1]["uptime"]["available"] and not runs[1]["capacity"]["available"]
    assert (tmp_path / "out" / "summary.json").exists()


def test_threshold_results_of_the_load_job_are_shown(tmp_path: Path) -> None:
    thresholds = [{"scope": "all", "threshold": "p95_latency_s < 0.5", "actual": 0.031,
                   "passed": True, "resolved": "p95_latency_s (0.031) < 0.5"},
                  {"scope": "all", "threshold": "error_rate < 0.001", "actual": 0.02,
                   "passed": False, "resolved": "error_rate (0.02) < 0.001"}]
    path = make_run(tmp_path / "t", load=load_rows(stage_rates=(10,)), thresholds=thresholds)
    summary = build_report([path], out=None).summary
    rows = summary["capacity"]["thresholds"]
    assert [(r["name"], r["passed"]) for r in rows] == [
        ("all: p95_latency_s < 0.5", True), ("all: error_rate < 0.001", False)]
    html = (path / "report.html").read_text()
    assert "error_rate (0.02) &lt; 0.001" in html and "FAIL" in html


@pytest.mark.parametrize("stage_s", [15.7, 15.9])
def test_throughput_has_no_drop_in_the_last_partial_bucket(tmp_path: Path,
                                                           stage_s: float) -> None:
    """A steady 20/s run whose last bucket covers only part of its width (0.2 s or 0.4 s
    of 0.5 s): its rate is the count over the time covered, so the chart ends at 20/s
    (divided by the whole width it read 8-16/s, a drop the target never had)."""
    path = make_run(tmp_path / "steady", load=load_rows(stage_rates=(20,), stage_s=stage_s))
    series = build_report([path], out=None).summary["capacity"]["series"]
    points = series["throughput_by_status"]
    total = [sum(pts[i][1] for pts in points.values()) for i in range(len(points["2xx"]))]
    assert series["bucket_s"] == 0.5
    assert all(rate == pytest.approx(20, rel=0.02) for rate in total), total


def test_a_probe_once_run_draws_no_availability_timeline(tmp_path: Path) -> None:
    """One result per check is a table, not a timeline: drawn, it was a few cells across
    a fraction of a second; a continuous probe run keeps its chart."""
    rows = probe_rows()
    once = [next(r for r in rows if (r["check"], r["target"]) == key)
            for key in {(r["check"], r["target"]) for r in rows}]
    path = make_run(tmp_path / "once", probe=once)
    build_report([path], out=None)
    html = (path / "report.html").read_text()
    assert "Availability over time" not in html
    assert "Each check ran once: no availability timeline to draw." in html
    path = make_run(tmp_path / "continuous", probe=rows)
    build_report([path], out=None)
    assert '<p class="chart-title">Availability over time</p>' in (
        path / "report.html").read_text()


def test_long_legend_names_are_cut_visibly_and_kept_whole_in_a_tooltip() -> None:
    from reports.charts import line_chart

    svg = str(line_chart({"/v1/chat/completions/with/a/long/tail": [[0, 1], [1, 2]],
                          "/v1/chat/completions/with/a/long/head": [[0, 2], [1, 1]]},
                         title="t", y_label="y"))
    assert "/v1/chat/c…/long/tail<title>/v1/chat/completions/with/a/long/tail</title>" in svg
    assert "/v1/chat/c…/long/head" in svg  # the two names still read apart


def test_rolling_rate_follows_the_run_through_bucket_noise(tmp_path: Path) -> None:
    """A steady 20/s run: the rolling rate (all requests, centred over 5 buckets) reads
    20/s at every point, including the ends; too short a run has none."""
    path = make_run(tmp_path / "steady", load=load_rows(stage_rates=(20,), stage_s=15.9))
    series = build_report([path], out=None).summary["capacity"]["series"]
    [(name, points)] = series["rolling_rate"].items()
    assert name == "all, rolling 2.5 s"
    assert all(rate == pytest.approx(20, rel=0.02) for _, rate in points), points
    html = (path / "report.html").read_text()
    assert "all, rolling 2.5 s" in html
    short = make_run(tmp_path / "short", load=load_rows(stage_rates=(20,), stage_s=2.0))
    assert build_report([short], out=None).summary["capacity"]["series"][
        "rolling_rate"] == {}
