"""Baseline comparison: the same figures for this run and a baseline, and the regressions.

Bounds are data: ``--bounds "p95=20%,error_rate=0.01"``. A value with ``%`` is relative to
the baseline figure, a bare number is an absolute change in the figure's unit (seconds for
latencies, a fraction for rates). A figure regresses when it moves in its bad direction by
more than its bound; any regression makes the report exit 1 (a release gate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secton_harness.errors import BadInput


@dataclass(frozen=True)
class Bound:
    """How far a figure may move the wrong way before it is a regression."""

    metric: str
    limit: float
    relative: bool

    def text(self) -> str:
        return f"{self.limit:.0%}" if self.relative else f"{self.limit:g}"


#: metric → (where it is in a capacity/uptime summary, True when higher is worse, unit)
METRICS: dict[str, tuple[str, bool, str]] = {
    "p50": ("capacity.latency.p50", True, "s"),
    "p95": ("capacity.latency.p95", True, "s"),
    "p99": ("capacity.latency.p99", True, "s"),
    "error_rate": ("capacity.error_rate", True, "ratio"),
    "ok_rps": ("capacity.ok_rps", False, "rps"),
    "availability": ("uptime.availability", False, "ratio"),
}
DEFAULT_BOUNDS = "p50=25%,p95=20%,p99=30%,error_rate=0.01,ok_rps=10%,availability=0.001"


def parse_bounds(text: str | None) -> dict[str, Bound]:
    """``"p95=20%,error_rate=0.01"`` over the defaults; BadInput names a bad entry."""
    bounds: dict[str, Bound] = {}
    for source in (DEFAULT_BOUNDS, text or ""):
        for item in filter(None, (part.strip() for part in source.split(","))):
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in METRICS:
                raise BadInput(f"--bounds: {item!r} is not metric=bound; metrics: "
                               f"{', '.join(METRICS)} (e.g. p95=20%,error_rate=0.01)")
            value = value.strip()
            relative = value.endswith("%")
            try:
                number = float(value.rstrip("%").lstrip("+"))
            except ValueError:
                raise BadInput(f"--bounds: {name}: {value!r} is not a number or a "
                               "percentage (e.g. 20% or 0.01)") from None
            if number < 0:
                raise BadInput(f"--bounds: {name}: {value!r} must not be negative")
            bounds[name] = Bound(name, number / 100 if relative else number, relative)
    return bounds


def _lookup(summary: dict[str, Any], path: str) -> float | None:
    node: Any = summary
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def compare(current: dict[str, Any], baseline: dict[str, Any],
            bounds: dict[str, Bound]) -> dict[str, Any]:
    """Rows for every figure present in both summaries, with the regressions flagged."""
    rows = []
    for metric, (path, higher_is_worse, unit) in METRICS.items():
        now, before = _lookup(current, path), _lookup(baseline, path)
        if now is None or before is None:
            continue
        bound = bounds[metric]
        change = now - before
        relative = change / before if before else None
        worse = change if higher_is_worse else -change
        if bound.relative:
            moved = (worse / abs(before)) if before else (float("inf") if worse > 0 else 0.0)
        else:
            moved = worse
        rows.append({"metric": metric, "unit": unit, "baseline": before, "current": now,
                     "change": change, "change_rel": relative, "bound": bound.text(),
                     "regressed": bool(moved > bound.limit)})
    regressions = [r["metric"] for r in rows if r["regressed"]]
    return {"available": True, "rows": rows, "regressions": regressions,
            "passed": not regressions,
            "missing": None if rows else "no figure present in both runs to compare"}


#: Figures compared phase by phase for ramps: stage key, bound name, higher is worse, unit.
PHASE_FIGURES = (("p95", "p95", True, "s"), ("error_rate", "error_rate", True, "ratio"),
                 ("ok_rps", "ok_rps", False, "rps"))


def compare_phases(run: dict[str, Any], base: dict[str, Any],
                   bounds: dict[str, Bound]) -> list[dict[str, Any]]:
    """A ramp against a ramp: each stage against the baseline's stage of the same name."""
    stages = {s["phase"]: s for s in (run.get("capacity") or {}).get("stages") or []}
    before = {s["phase"]: s for s in (base.get("capacity") or {}).get("stages") or []}
    if len(stages) < 2 or set(stages) != set(before):
        return []
    rows = []
    for phase, stage in stages.items():
        for key, bound_name, higher_is_worse, unit in PHASE_FIGURES:
            now, then = stage.get(key), before[phase].get(key)
            if not isinstance(now, int | float) or not isinstance(then, int | float):
                continue
            bound = bounds[bound_name]
            worse = (now - then) if higher_is_worse else (then - now)
            moved = (worse / abs(then) if then else (float("inf") if worse > 0 else 0.0)) \
                if bound.relative else worse
            rows.append({"phase": phase, "metric": key, "unit": unit, "baseline": then,
                         "current": now, "change_rel": (now - then) / then if then else None,
                         "bound": bound.text(), "regressed": bool(moved > bound.limit)})
    return rows


def _shape(run: dict[str, Any]) -> str | None:
    """The load shape: the scenario's when run.json has it, else read from the records
    (several phases: a ramp; one: steady)."""
    scenario = run.get("scenario") or {}
    if scenario.get("shape"):
        return str(scenario["shape"])
    capacity = run.get("capacity") or {}
    if not capacity.get("available"):
        return None
    return "step (from phases)" if len(capacity.get("stages") or []) >= 2 else "steady"


def _endpoints(run: dict[str, Any]) -> set[str]:
    return {row["endpoint"] for row in (run.get("capacity") or {}).get("by_endpoint", [])}


def _rates(run: dict[str, Any]) -> dict[str, float]:
    """The scenario's asked rate per endpoint (empty without a scenario)."""
    endpoints = (run.get("scenario") or {}).get("endpoints") or []
    return {str(e["name"]): float(e["rate"]) for e in endpoints
            if isinstance(e, dict) and isinstance(e.get("rate"), int | float)}


def _rates_text(rates: dict[str, float]) -> str:
    return ", ".join(f"{name} {rate:g}/s" for name, rate in sorted(rates.items()))


def _checks(run: dict[str, Any]) -> set[str]:
    return {row["check"] for row in (run.get("uptime") or {}).get("per_target", [])}


def incompatibilities(run: dict[str, Any], base: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(reasons the two runs cannot be compared, differences worth a warning).

    Refused: another command, shape, scenario name, asked rate per endpoint, endpoint set
    or probe check set (a run at 25/s against a baseline at 50/s compares the load, not the
    target). Warned: another target or scenario duration (the same load, measured longer
    or elsewhere)."""
    refuse: list[str] = []
    warn: list[str] = []
    if run.get("command") != base.get("command"):
        refuse.append(f"command {base.get('command')} vs {run.get('command')}")
    shape, base_shape = _shape(run), _shape(base)
    if shape != base_shape and (shape or base_shape):
        refuse.append(f"shape {base_shape or 'no load'} vs {shape or 'no load'}")
    names = ((base.get("scenario") or {}).get("name"), (run.get("scenario") or {}).get("name"))
    if all(names) and names[0] != names[1]:
        refuse.append(f"scenario {names[0]} vs {names[1]}")
    rates, base_rates = _rates(run), _rates(base)
    if rates and base_rates and rates != base_rates:  # same name, other load: not comparable
        refuse.append(f"asked rates {_rates_text(base_rates)} vs {_rates_text(rates)}")
    durations = [(r.get("scenario") or {}).get("duration_s") for r in (base, run)]
    if all(isinstance(d, int | float) for d in durations) and durations[0] != durations[1]:
        warn.append(f"scenario duration {durations[0]:g} s vs {durations[1]:g} s")
    if _endpoints(run) != _endpoints(base):
        refuse.append(f"endpoints {sorted(_endpoints(base)) or 'none'} vs "
                      f"{sorted(_endpoints(run)) or 'none'}")
    if _checks(run) != _checks(base):
        refuse.append(f"probe checks {sorted(_checks(base)) or 'none'} vs "
                      f"{sorted(_checks(run)) or 'none'}")
    if run.get("target") != base.get("target"):
        warn.append(f"target {base.get('target')} vs {run.get('target')}")
    return refuse, warn


def compare_with_baseline(runs: list[dict[str, Any]], base: dict[str, Any],
                          bounds: dict[str, Bound]) -> dict[str, Any]:
    """Compare the baseline with every run of the report it can be compared with.

    Refuses (BadInput, exit 2) when no run is comparable: a steady run against a step
    ramp, other endpoints, another scenario or command would "pass" or "regress" for
    reasons that have nothing to do with the target. Comparable runs with a different
    target are compared with a warning; runs of another kind are listed as not compared.
    """
    comparisons, not_compared, warnings = [], [], []
    for run in runs:
        refuse, warn = incompatibilities(run, base)
        if refuse:
            not_compared.append({"run": run["dir"], "reasons": refuse})
            continue
        warnings += [f"{run['dir']}: {text}" for text in warn]
        overall = compare(run, base, bounds)
        phases = compare_phases(run, base, bounds)
        phase_regressions = [f"{r['phase']} {r['metric']}" for r in phases if r["regressed"]]
        comparisons.append({"run": run["dir"], **overall, "phases": phases,
                            "regressions": overall["regressions"] + phase_regressions,
                            "passed": overall["passed"] and not phase_regressions})
    if not comparisons:
        why = "; ".join(f"{n['run']}: {', '.join(n['reasons'])}" for n in not_compared)
        raise BadInput(f"--baseline {base['dir']}: not comparable with any run of this "
                       f"report ({why}); give a baseline of the same scenario and shape")
    regressions = sorted({r for c in comparisons for r in c["regressions"]})
    first = comparisons[0]
    return {"available": True, "dir": base["dir"], "comparisons": comparisons,
            "rows": first["rows"], "phases": first["phases"], "regressions": regressions,
            "passed": not regressions,
            "warnings": warnings, "not_compared": not_compared,
            "missing": first["missing"]}
