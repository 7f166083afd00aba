"""Build a report: read run folders, analyse each section, write HTML, Markdown and JSON.

``build_report`` is the one entry point (the CLI is a thin wrapper). It returns the paths
written and the baseline verdict, so the caller decides the exit code.

Example::

    result = build_report(["runs/load-1"], out=None, slo=0.995)
    print(result.html)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.baseline import compare_with_baseline, parse_bounds
from reports.capacity import analyse_capacity
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


def _run_row(info: dict[str, Any]) -> dict[str, Any]:
    started, ended = info.get("started_at"), info.get("ended_at")
    scenario = info.get("scenario") if isinstance(info.get("scenario"), dict) else None
    return {"dir": info.get("dir"), "command": info.get("command") or "?",
            "target": info.get("target") or "?", "outcome": info.get("outcome") or "?",
            "started_at": started, "ended_at": ended,
            "duration_s": (ended - started) if isinstance(started, int | float)
            and isinstance(ended, int | float) else None,
            "aborted_on": info.get("aborted_on") or [],
            "scenario": _scenario_section(scenario) if scenario else None}


def _scenario_section(scenario: dict[str, Any]) -> dict[str, Any]:
    """What a load run was asked to do: name, shape, duration, rates, users, thresholds."""
    endpoints = scenario.get("endpoints") if isinstance(scenario.get("endpoints"), dict) else {}
    return {
        "name": scenario.get("name"), "shape": scenario.get("shape"),
        "duration_s": scenario.get("duration"), "arrival": scenario.get("arrival"),
        "endpoints": [{"name": name, "rate": (e or {}).get("rate"),
                       "users": (e or {}).get("users")}
                      for name, e in endpoints.items() if isinstance(e, dict | type(None))],
        "thresholds": [f"{scope}: {text}" for scope, texts in
                       (scenario.get("thresholds") or {}).items() for text in texts],
        "steps": scenario.get("steps"),
    }


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
             "requests": r["capacity"]["requests"], "rps": r["capacity"]["throughput_rps"],
             "error_rate": r["capacity"]["error_rate"],
             "rate_limited_rate": r["capacity"]["rate_limited_rate"],
             "p95": r["capacity"]["latency"]["p95"], "verdict": r["verdict"]["status"]}
            for r in loads]


def build_report(run_dirs: list[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None,
                 slo: float = DEFAULT_SLO, baseline: str | os.PathLike[str] | None = None,
                 bounds: str | None = None, knee_latency_ratio: float = 1.5,
                 knee_error_rise: float = 0.05) -> ReportResult:
    """Analyse ``run_dirs`` (and ``baseline``), write the three files into ``out``."""
    if not run_dirs:
        raise BadInput("report: give at least one run folder")
    if not 0 < slo < 1:
        raise BadInput(f"--slo: {slo} must be between 0 and 1 (e.g. {DEFAULT_SLO})")
    parsed_bounds = parse_bounds(bounds)
    options = {"slo": slo, "knee_latency_ratio": knee_latency_ratio,
               "knee_error_rise": knee_error_rise}
    summary = analyse(list(run_dirs), **options)
    if baseline is not None:
        base = analyse_run(load_runs([baseline]), **options)
        summary["baseline"] = clean(compare_with_baseline(summary["runs"], base,
                                                          parsed_bounds))
    else:
        summary["baseline"] = {"available": False,
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
