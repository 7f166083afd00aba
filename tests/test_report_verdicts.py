"""Reports a release manager signs: verdict first, one section per run, honest baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report_data import RATELIMIT_RESULT, load_rows, make_run, probe_rows, ratelimit_rows

from reports.build import build_report
from reports.render import early_late


def _edit_run_json(path: Path, **fields: Any) -> Path:
    file = path / "run.json"
    info = json.loads(file.read_text())
    info.update(fields)
    file.write_text(json.dumps(info))
    return path


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("three")
    ramp = make_run(tmp / "ramp", load=load_rows())
    steady = _edit_run_json(make_run(tmp / "steady", load=load_rows(seed=2,
                                                                       stage_rates=(20,))),
                            scenario={"name": "steady-20", "shape": "steady",
                                      "duration": 4.0, "arrival": "even",
                                      "endpoints": {"chat": {"rate": 14.0, "users": 3},
                                                    "models": {"rate": 6.0, "users": 2}},
                                      "thresholds": {"all": ["error_rate < 0.01"]}})
    probe = make_run(tmp / "probe", probe=probe_rows())
    out = tmp / "report"
    summary = build_report([ramp, steady, probe], out=out).summary
    return out, summary


def test_each_run_keeps_its_own_sections_and_time_axis(three_runs) -> None:
    _, summary = three_runs
    ramp, steady, probe = summary["runs"]
    assert "capacity" not in summary  # never merged across runs
    assert ramp["capacity"]["requests"] == len(load_rows())
    assert steady["capacity"]["requests"] == len(load_rows(seed=2, stage_rates=(20,)))
    # the steady run's axis is its own 4 s, not the union with the 16 s ramp
    assert steady["capacity"]["duration_s"] < 4.1 and ramp["capacity"]["duration_s"] > 15
    assert len(ramp["capacity"]["stages"]) == 4 and len(steady["capacity"]["stages"]) == 1
    assert probe["uptime"]["available"] and not probe["capacity"]["available"]
    assert [r["dir"] for r in summary["comparison"]] == [ramp["dir"], steady["dir"]]


def test_verdict_first_in_html_markdown_and_summary(three_runs) -> None:
    out, summary = three_runs
    verdicts = [r["verdict"]["status"] for r in summary["runs"]]
    # the ramp's last stage has 500s and 429s but no thresholds: passed; the probe run
    # had failing checks: failed
    assert verdicts == ["passed", "passed", "failed"]
    assert summary["verdict"]["status"] == "failed"
    assert any("chat@a" in why for why in summary["runs"][2]["verdict"]["reasons"])
    html = (out / "report.html").read_text()
    banner = html.index('class="banner failed"')
    assert banner < html.index("<h3>Capacity</h3>") < html.index("<h3>Uptime</h3>")
    assert "<b>FAILED</b> — 1 of 3 runs did not pass." in html[banner:banner + 2000]
    md = (out / "report.md").read_text()
    assert md.startswith("## secton-harness report: FAILED")
    assert md.index("check chat@a") < md.index("#### Capacity")
    saved = json.loads((out / "summary.json").read_text())
    assert saved["verdict"]["status"] == "failed"
    assert [r["verdict"]["status"] for r in saved["runs"]] == verdicts


def test_charts_titled_and_no_empty_knee_for_a_steady_run(three_runs) -> None:
    out, _ = three_runs
    html = (out / "report.html").read_text()
    assert html.count('<p class="chart-title">Latency by offered rate</p>') == 1  # ramp only
    assert html.count("<h4>Step ramp and knee</h4>") == 1
    assert html.count('<p class="chart-title">Throughput by endpoint</p>') == 2
    assert '<p class="chart-title">Errors and 429s over time</p>' in html
    assert "max-width: 720px" not in html  # charts take the full width
    assert "steady-20" in html and "error_rate &lt; 0.01" in html  # the scenario section


def test_a_run_stopped_early_says_so(tmp_path: Path) -> None:
    run = _edit_run_json(make_run(tmp_path / "down", load=load_rows(stage_rates=(10,))),
                         outcome="failed", aborted_on=["target down: 95 % of 40 requests "
                                                       "without answer or 5xx"])
    summary = build_report([run], out=None).summary
    verdict = summary["runs"][0]["verdict"]
    assert verdict["status"] == "stopped early" and not verdict["passed"]
    assert "target down" in verdict["reasons"][0]
    assert summary["verdict"]["status"] == "failed"
    assert "STOPPED EARLY" in (run / "report.html").read_text()


def test_failing_threshold_is_named(tmp_path: Path) -> None:
    thresholds = [{"scope": "all", "threshold": "error_rate < 0.001", "actual": 0.02,
                   "passed": False, "resolved": "error_rate (0.02) < 0.001"}]
    run = make_run(tmp_path / "t", load=load_rows(stage_rates=(10,)), thresholds=thresholds)
    verdict = build_report([run], out=None).summary["runs"][0]["verdict"]
    assert verdict["status"] == "failed"
    assert verdict["reasons"] == ["threshold error_rate (0.02) < 0.001"]


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_baseline_of_another_shape_is_refused(tmp_path: Path) -> None:
    steady = make_run(tmp_path / "steady", load=load_rows(stage_rates=(20,)))
    ramp = make_run(tmp_path / "ramp", load=load_rows(stage_rates=(20, 40)))
    done = _cli(steady, "--baseline", ramp, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not comparable" in lines[0] and "shape" in lines[0], lines
    assert "Traceback" not in done.stderr


def test_baseline_with_another_target_is_compared_with_a_warning(tmp_path: Path) -> None:
    base = _edit_run_json(make_run(tmp_path / "base", load=load_rows(stage_rates=(20, 40))),
                          target="http://127.0.0.1:8")
    same = make_run(tmp_path / "same", load=load_rows(seed=1, stage_rates=(20, 40)))
    summary = build_report([same], out=None, baseline=base).summary
    assert summary["baseline"]["rows"] and summary["baseline"]["warnings"]
    assert "target" in summary["baseline"]["warnings"][0]
    assert "baseline warning" in (same / "report.html").read_text()


def test_only_runs_of_the_baselines_kind_are_compared(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", load=load_rows(stage_rates=(20, 40)))
    load = make_run(tmp_path / "load", load=load_rows(seed=3, stage_rates=(20, 40)))
    probe = make_run(tmp_path / "probe", probe=probe_rows())
    baseline = build_report([load, probe], out=tmp_path / "o", baseline=base).summary[
        "baseline"]
    assert [c["run"] for c in baseline["comparisons"]] == [str(load)]
    assert [n["run"] for n in baseline["not_compared"]] == [str(probe)]


def test_ratelimit_evidence_time_taken_and_retry_after_words(tmp_path: Path) -> None:
    result = {**RATELIMIT_RESULT, "duration_s": 15.057}
    del result["elapsed_s"]
    result["scopes"] = {"key": {
        **RATELIMIT_RESULT["scopes"]["key"],
        "retry_after": {"present": True, "mean_error_s": 0.503, "max_error_s": 1.032,
                        "mean_signed_error_s": 0.503, "samples": 42},
        "evidence": {"burst_run": [1, 2, 3], "first_429_at_s": 2.5,
                     "cooldown_bracket_s": [1.74, 1.95], "recovery_shape": "at_once"}}}
    run = make_run(tmp_path / "rl", ratelimit_result=result)
    build_report([run], out=None)
    html = (run / "report.html").read_text()
    md = (run / "report.md").read_text()
    assert "time taken: 15.1 s" in html
    # evidence: a table in words and units, not key=value text
    assert '<td class="l">first 429 at</td><td class="l">2.50 s</td>' in html
    assert '<td class="l">cooldown bracket</td><td class="l">1.74 s to 1.95 s</td>' in html
    assert '<td class="l">recovery shape</td><td class="l">at once</td>' in html
    assert "burst_run=" not in html
    # the card: figures named in words with units, Retry-After as a sentence
    words = ("sent; the announced wait ended 503 ms after the limit had lifted on average "
             "(largest error 1.03 s; 42 samples)")
    for text in (html, md):
        assert words in text
        assert "mean_error_s=" not in text and "present=" not in text
        assert "sustained rate" in text and "600/min" in text
    assert '<td class="l">cooldown</td><td>1.00 s</td>' in html
    assert early_late(-0.449) == "449 ms earlier than"
    assert early_late(0.2) == "200 ms later than"


def test_ramps_are_compared_phase_by_phase(tmp_path: Path) -> None:
    rows = load_rows(stage_rates=(20, 40))
    base = make_run(tmp_path / "base", load=rows)
    slower = [{**r, "latency_s": r["latency_s"] * (1.6 if r["phase"] == "stage-2" else 1.0)}
              for r in rows]
    current = make_run(tmp_path / "now", load=slower)
    baseline = build_report([current], out=None, baseline=base).summary["baseline"]
    by_phase = {(r["phase"], r["metric"]): r for r in baseline["phases"]}
    assert not by_phase[("stage-1", "p95")]["regressed"]
    assert by_phase[("stage-2", "p95")]["regressed"]
    assert "stage-2 p95" in baseline["regressions"]
    assert "stage-1 p95" not in baseline["regressions"]
    html = (current / "report.html").read_text()
    assert "Phase by phase" in html
    assert "<b>FAILED</b> — a regression against the baseline." in html


#: A scenario as ``load`` writes it into run.json (``config.scenario``, the model's dump).
STEADY_16 = {"name": "steady-16", "shape": "steady", "duration": 4.0, "arrival": "even",
             "step": {"steps": 5, "start": None},
             "endpoints": {"models": {"rate": 16.0, "users": 4, "max_users": None},
                           "chat": None},
             "thresholds": {"all": ["error_rate < 0.01"]}}


def test_scenario_is_read_where_load_writes_it(tmp_path: Path) -> None:
    """run.json holds the scenario under ``config.scenario``: the report once read a
    top-level key only, so every run's scenario was null and a ramp's shape was "–"."""
    ramp = {**STEADY_16, "name": "ramp", "shape": "step", "step": {"steps": 2, "start": None}}
    steady = make_run(tmp_path / "steady", load=load_rows(stage_rates=(16,)),
                      scenario=STEADY_16)
    step = make_run(tmp_path / "step", load=load_rows(stage_rates=(8, 16)), scenario=ramp)
    summary = build_report([steady, step], out=tmp_path / "out").summary
    first, second = (run["scenario"] for run in summary["runs"])
    assert first["name"] == "steady-16" and first["shape"] == "steady"
    assert first["endpoints"] == [{"name": "models", "rate": 16.0, "users": 4}]
    assert first["thresholds"] == ["all: error_rate < 0.01"]
    assert second["shape"] == "step" and second["steps"] == 2
    assert [row["shape"] for row in summary["comparison"]] == ["steady", "step"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Scenario steady-16: steady, 4.0 s, even arrivals; models 16.0/s (4 users)" in md


def test_baseline_of_another_scenario_is_refused(tmp_path: Path) -> None:
    """docs/reports.md: another scenario name is not comparable, exit 2 (it printed "no
    regression", exit 0, because the scenario was never read)."""
    rows = load_rows(stage_rates=(16,))
    current = make_run(tmp_path / "now", load=rows, scenario=STEADY_16)
    other = make_run(tmp_path / "other", load=rows, scenario={
        **STEADY_16, "name": "other-3", "endpoints": {"models": {"rate": 3.0, "users": 2}}})
    same = make_run(tmp_path / "same", load=rows, scenario=STEADY_16)
    done = _cli(current, "--baseline", other, "--out", tmp_path / "o1")
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "scenario other-3 vs steady-16" in lines[0], lines
    done = _cli(current, "--baseline", same, "--out", tmp_path / "o2")
    assert done.returncode == 0, done.stderr
    assert "no regression" in done.stderr


def test_scenario_at_the_top_level_of_older_run_folders_still_reads(tmp_path: Path) -> None:
    run = _edit_run_json(make_run(tmp_path / "old", load=load_rows(stage_rates=(16,))),
                         scenario=STEADY_16)
    assert json.loads((run / "run.json").read_text())["config"].get("scenario") is None
    scenario = build_report([run], out=None).summary["runs"][0]["scenario"]
    assert scenario["name"] == "steady-16" and scenario["shape"] == "steady"


@pytest.mark.parametrize("scenario", [
    {"name": ["x"], "shape": 3, "duration": "4s", "endpoints": {"models": {"rate": "16/s"}},
     "thresholds": {"all": "error_rate < 0.01"}, "steps": True},
    {"endpoints": ["models"], "thresholds": ["x"], "step": "five"}])
def test_a_scenario_of_the_wrong_types_is_left_out_not_a_traceback(
        tmp_path: Path, scenario: dict[str, Any]) -> None:
    run = make_run(tmp_path / "odd", load=load_rows(stage_rates=(16,)), scenario=scenario)
    section = build_report([run], out=None).summary["runs"][0]["scenario"]
    assert section["name"] is None and section["shape"] is None
    assert section["duration_s"] is None and section["thresholds"] == []


def test_banner_names_each_runs_main_figures(three_runs) -> None:
    """Under each run's verdict, its main figures: what a release manager reads first."""
    out, summary = three_runs
    ramp, steady, probe = summary["runs"]
    html = (out / "report.html").read_text()
    banner = html[html.index('class="banner'):html.index("</div>", html.index('class="banner'))]
    cap = ramp["capacity"]
    assert f"{cap['requests']:,} requests at {cap['rps']:,.1f}/s" in banner
    assert f"p95 {cap['latency']['p95'] * 1000:.1f} ms" in banner
    assert f"{steady['capacity']['requests']:,} requests at" in banner
    assert (f"{probe['uptime']['results']:,} check results, availability "
            f"{probe['uptime']['availability'] * 100:.3f} %") in banner
    md = (out / "report.md").read_text()
    assert md.index("check results, availability") < md.index("#### Capacity")
    # the list of runs ends before the next paragraph (else Markdown folds that line
    # into the last run's item)
    assert f"\n\n{summary['records']:,} records (" in md


def test_baseline_of_the_same_scenario_at_other_rates_is_refused(tmp_path: Path) -> None:
    """Same scenario name, another asked rate: the figures would compare the load, not the
    target. Another duration alone is compared, with a warning."""
    rows = load_rows(stage_rates=(16,))
    current = make_run(tmp_path / "now", load=rows, scenario=STEADY_16)
    doubled = make_run(tmp_path / "doubled", load=rows, scenario={
        **STEADY_16, "endpoints": {"models": {"rate": 32.0, "users": 4}}})
    done = _cli(current, "--baseline", doubled, "--out", tmp_path / "o1")
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "asked rates models 32/s vs models 16/s" in lines[0], lines
    longer = make_run(tmp_path / "longer", load=rows, scenario={**STEADY_16, "duration": 8.0})
    baseline = build_report([current], out=tmp_path / "o2", baseline=longer).summary[
        "baseline"]
    assert baseline["rows"] and any("duration 8 s vs 4 s" in w for w in baseline["warnings"])



def test_three_load_runs_get_a_trend_two_do_not(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / f"r{i}", load=load_rows(seed=i, stage_rates=(20,),
                                                        slow=1.0 + i))
            for i in range(3)]
    summary = build_report(runs, out=tmp_path / "three").summary
    html = (tmp_path / "three" / "report.html").read_text()
    assert '<p class="chart-title">p95 latency over the load runs</p>' in html
    assert '<p class="chart-title">Ok throughput over the load runs</p>' in html
    p95 = [row["p95"] for row in summary["comparison"]]
    assert p95 == sorted(p95)  # slower each run: the trend the chart draws
    build_report(runs[:2], out=tmp_path / "two")
    assert "over the load runs" not in (tmp_path / "two" / "report.html").read_text()


def test_one_shot_probe_run_shows_availability_but_does_not_judge_the_slo(
        tmp_path: Path) -> None:
    """probe --once gives one result per check: the report, summary.json and the banner
    show its availability but no SLO verdict nor error budget (one failure in eight was
    "error budget used 2500.0 %", all passing "meets the SLO"). Two results each are
    judged again."""
    rows = probe_rows()
    once = [dict(r) for r in rows[:4]]  # models/chat on targets a/b, one result each
    once[3] = {**once[3], "status": 503, "success": False, "reason": "status"}
    report = build_report([make_run(tmp_path / "once", probe=once)], out=tmp_path / "r")
    uptime = report.summary["runs"][0]["uptime"]
    assert uptime["availability"] == 0.75
    assert (uptime["meets_slo"], uptime["budget_consumed"]) == (None, None)
    assert "one result per check" in uptime["slo_not_judged"]
    assert all(t["meets_slo"] is None and t["budget_consumed"] is None
               for t in uptime["per_target"])
    on_disk = json.loads(report.summary_path.read_text())["runs"][0]["uptime"]
    assert on_disk["slo_not_judged"] == uptime["slo_not_judged"]
    markdown = report.markdown.read_text()
    assert "75.000 % (SLO not judged: one result per check)" in markdown  # the banner
    assert "error budget not judged: too little data" in markdown
    assert "budget used 7" not in markdown and "below the SLO" not in markdown
    html = (tmp_path / "r" / "report.html").read_text()
    assert "not judged" in html and "5000.0 %" not in html
    twice = make_run(tmp_path / "twice", probe=rows[:8])
    judged = build_report([twice], out=tmp_path / "r2").summary["runs"][0]["uptime"]
    assert judged["meets_slo"] is True and judged["budget_consumed"] == 0.0
    assert judged["slo_not_judged"] is None


@pytest.mark.parametrize(("cause", "flag"), [("max_duration", "--max-duration"),
                                             ("max_requests", "--max-requests")])
def test_stopped_ratelimit_run_names_its_own_stop_reason(tmp_path: Path, cause: str,
                                                         flag: str) -> None:
    """A mapping stopped by a bound says which one, from ratelimit.json's stopped_by (it
    said a generic "a lost worker's records ... or --max-duration / --max-requests")."""
    result = {**RATELIMIT_RESULT, "stopped_by": cause, "requests_sent": 240,
              "duration_s": 12.04}
    run = make_run(tmp_path / "rl", ratelimit=ratelimit_rows(), ratelimit_result=result,
                   command="ratelimit", outcome="incomplete")
    report = build_report([run], out=tmp_path / "r")
    verdict = report.summary["runs"][0]["verdict"]
    assert verdict["status"] == "stopped early"
    first = verdict["reasons"][0]
    assert first.startswith(f"outcome incomplete: the rate-limit mapping was stopped by "
                            f"{flag} (ratelimit.json stopped_by: {cause}) after 12.0 s "
                            "and 240 requests"), first
    assert "lost worker" not in first
    assert f"stopped by {flag}" in report.markdown.read_text()
