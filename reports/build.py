"""Build a report: read run folders, analyse each section, write HTML, Markdown and JSON.

``build_report`` is the one entry point (the CLI is a thin wrapper). It returns the paths
written and the verdict, so the caller decides the exit code.

Example::

    result = build_report(["runs/load-1"], out=None, slo=0.995)
    print(result.html)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.baseline import compare_with_baseline, parse_bounds
from reports.capacity import analyse_capacity
from reports.expectations import run_checks
from reports.ratelimits import analyse_ratelimits
from reports.render import render_html, render_markdown
from reports.rundata import RunData, load_runs
from reports.stats import clean
from reports.uptime import analyse_uptime
from reports.verdict import report_verdict, run_verdict
from secton_harness.atomicfile import write_json_atomic, write_text_atomic
from secton_harness.errors import BadInput
from secton_harness.measures import DEFAULT_SLO

HTML_FILE, MD_FILE, SUMMARY_FILE = "report.html", "report.md", "summary.json"


@dataclass
class ReportResult:
    html: Path
    markdown: Path
    summary_path: Path
    summary: dict[str, Any]

    @property
    def regressed(self) -> bool:
        baseline = self.summary.get("baseline") or {}
        return bool(baseline.get("regressions"))

    @property
    def passed(self) -> bool:
        """The report's verdict: every run passed and nothing regressed (exit 0, else 1)."""
        return bool(self.summary["verdict"]["passed"])


def _thresholds(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Threshold results stored in run.json by the load job, as rows for a table."""
    rows: list[dict[str, Any]] = []
    for info in infos:
        found = info.get("thresholds")
        if isinstance(found, dict):
            found = [({"name": k, **v} if isinstance(v, dict) else {"name": k, "passed": v})
                     for k, v in found.items()]
        if isinstance(found, list):
            for item in found:
                if isinstance(item, dict):
                    name = next((str(item[k]) for k in ("name", "threshold", "expr",
                                                         "metric") if item.get(k)), "?")
                    if item.get("scope"):  # the load job's shape: scope + threshold text
                        name = f"{item['scope']}: {name}"
                    rows.append({
                        "name": name,
                        "expression": next((item[k] for k in ("resolved", "expression",
                                                              "expr", "condition")
                                            if item.get(k) is not None), None),
                        "value": next((item[k] for k in ("actual", "value", "observed")
                                       if item.get(k) is not None), None),
                        "passed": next((item[k] for k in ("passed", "ok", "pass")
                                        if item.get(k) is not None), None),
                        "run": info.get("dir")})
    return rows


def run_scenario(info: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario a load run was asked to run, where ``load`` writes it in run.json
    (``config.scenario``); run folders of older versions held it at the top level."""
    config = info.get("config")
    for holder in (config if isinstance(config, dict) else {}, info):
        if isinstance(holder.get("scenario"), dict):
            return holder["scenario"]
    return None


def _run_row(info: dict[str, Any]) -> dict[str, Any]:
    started, ended = info.get("started_at"), info.get("ended_at")
    scenario = run_scenario(info)
    return {"dir": info.get("dir"), "command": info.get("command") or "?",
            "target": info.get("target") or "?", "outcome": info.get("outcome") or "?",
            "started_at": started, "ended_at": ended,
            "duration_s": (ended - started) if isinstance(started, int | float)
            and isinstance(ended, int | float) else None,
            "aborted_on": info.get("aborted_on") or [],
            "scenario": _scenario_section(scenario) if scenario else None}


def _scenario_section(scenario: dict[str, Any]) -> dict[str, Any]:
    """What a load run was asked to do: name, shape, duration, rates, users, thresholds.

    run.json may be hand-edited or from another version: a field of the wrong type is
    left out (``None``), never a traceback in a template."""
    endpoints = scenario.get("endpoints") if isinstance(scenario.get("endpoints"), dict) else {}
    thresholds = scenario.get("thresholds") if isinstance(scenario.get("thresholds"),
                                                          dict) else {}
    shape = _text(scenario.get("shape"))
    step = scenario.get("step") if isinstance(scenario.get("step"), dict) else {}
    steps = scenario.get("steps", step.get("steps") if shape == "step" else None)
    return {
        "name": _text(scenario.get("name")), "shape": shape,
        "duration_s": _number(scenario.get("duration")),
        "arrival": _text(scenario.get("arrival")),
        "endpoints": [{"name": str(name), "rate": _number(e.get("rate")),
                       "users": _number(e.get("users"))}
                      for name, e in endpoints.items() if isinstance(e, dict)],  # None: unused
        "thresholds": [f"{scope}: {text}" for scope, texts in thresholds.items()
                       if isinstance(texts, list) for text in texts if isinstance(text, str)],
        "steps": _number(steps),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def analyse_run(data: RunData, *, slo: float, knee_latency_ratio: float = 1.5,
                knee_error_rise: float = 0.05) -> dict[str, Any]:
    """One run folder's own sections, on its own time axis, with its verdict."""
    records = data.records
    info = data.infos[0]
    run = {
        **_run_row(info),
        "records": len(records),
        "sources": {str(k): int(v) for k, v in records["source"].value_counts().items() if v},
        "notes": data.notes,
        "capacity": analyse_capacity(data.source("load"), thresholds=_thresholds(data.infos),
                                     knee_latency_ratio=knee_latency_ratio,
                                     knee_error_rise=knee_error_rise),
        "ratelimits": analyse_ratelimits(data.source("ratelimit"), data.ratelimit),
        "uptime": analyse_uptime(data.source("probe"), slo=slo),
        "checks": run_checks(info, data.ratelimit),
    }
    run["verdict"] = run_verdict(run, info)
    return clean(run)


def analyse(dirs: list[str | os.PathLike[str]], *, slo: float,
            knee_latency_ratio: float = 1.5, knee_error_rise: float = 0.05) -> dict[str, Any]:
    """Every figure of the report, as one JSON-ready dict: one section per run folder
    (records are never merged across runs), and, for a single run, its sections also at
    the top level (``capacity``, ``ratelimits``, ``uptime``)."""
    runs = [analyse_run(load_runs([d]), slo=slo, knee_latency_ratio=knee_latency_ratio,
                        knee_error_rise=knee_error_rise) for d in dirs]
    sources: dict[str, int] = {}
    for run in runs:
        for name, n in run["sources"].items():
            sources[name] = sources.get(name, 0) + n
    summary: dict[str, Any] = {
        "generated_at": time.time(),
        "runs": runs,
        "records": sum(run["records"] for run in runs),
        "sources": sources,
        "notes": [note for run in runs for note in run["notes"]],
        "comparison": _comparison(runs),
    }
    if len(runs) == 1:
        summary.update({k: runs[0][k] for k in ("capacity", "ratelimits", "uptime")})
    return clean(summary)


def _comparison(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per load run when there are several: the headline figures side by side."""
    loads = [r for r in runs if (r.get("capacity") or {}).get("available")]
    if len(loads) < 2:
        return []
    return [{"dir": r["dir"], "shape": (r.get("scenario") or {}).get("shape"),
             "requests": r["capacity"]["requests"], "rps": r["capacity"]["rps"],
             "ok_rps": r["capacity"]["ok_rps"],
             "error_rate": r["capacity"]["error_rate"],
             "ratelimited_rate": r["capacity"]["ratelimited_rate"],
             "p95": r["capacity"]["latency"]["p95"], "verdict": r["verdict"]["status"]}
            for r in loads]


def _check_knee_options(latency_ratio: float, error_rise: float) -> None:
    """Refuse knee settings that make nonsense ("p95 32 ms > -1 × 32 ms"): a ratio below 1
    marks the first stage degraded against itself; a rise outside 0..1 is no share."""
    if not (math.isfinite(latency_ratio) and latency_ratio >= 1):
        raise BadInput(f"--knee-latency: {latency_ratio:g} must be a multiple of the first "
                       "stage's p95 of at least 1 (e.g. 1.5)")
    if not 0 <= error_rise <= 1:
        raise BadInput(f"--knee-errors: {error_rise:g} must be a fraction between 0 and 1 "
                       "(e.g. 0.05)")


def build_report(run_dirs: list[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None,
                 slo: float = DEFAULT_SLO, baseline: str | os.PathLike[str] | None = None,
                 bounds: str | None = None, knee_latency_ratio: float = 1.5,
                 knee_error_rise: float = 0.05) -> ReportResult:
    """Analyse ``run_dirs`` (and ``baseline``), write the three files into ``out``."""
    if not run_dirs:
        raise BadInput("report: give at least one run folder")
    if not 0 < slo < 1:
        raise BadInput(f"--slo: {slo} must be between 0 and 1 (e.g. {DEFAULT_SLO})")
    _check_knee_options(knee_latency_ratio, knee_error_rise)
    parsed_bounds = parse_bounds(bounds)
    options = {"slo": slo, "knee_latency_ratio": knee_latency_ratio,
               "knee_error_rise": knee_error_rise}
    summary = analyse(list(run_dirs), **options)
    if baseline is not None:
        base = analyse_run(load_runs([baseline]), **options)
        summary["baseline"] = clean(compare_with_baseline(summary["runs"], base,
                                                          parsed_bounds))
    else:
        summary["baseline"] = {"available": False, "given": False,
                               "missing": "no --baseline run given; nothing compared"}
    summary["verdict"] = report_verdict(summary["runs"], summary["baseline"])
    out_dir = Path(out) if out is not None else Path(run_dirs[0])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"{out_dir}: cannot create the output folder: {error.strerror}") from None
    html, md, js = out_dir / HTML_FILE, out_dir / MD_FILE, out_dir / SUMMARY_FILE
    try:
        write_json_atomic(js, summary)
        write_text_atomic(md, render_markdown(summary))
        write_text_atomic(html, render_html(summary))
    except OSError as error:
        raise BadInput(f"{out_dir}: cannot write the report: {error.strerror}") from None
    return ReportResult(html, md, js, summary)
