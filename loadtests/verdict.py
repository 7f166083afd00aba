"""The default checks of a load run: did it do what was asked?

Thresholds judge what the target did; these judge the run itself, so that a run that did
not send what the scenario asked can never pass (a slow target silently capping the rate
was the failure that motivated them):

- ``requests``: a run with no record at all fails.
- ``harness_errors``: a run where most records are the harness's own errors fails.
- ``successes``: a run where no request got an ok answer fails (every answer a 404 from
  a wrong base URL, a 401 from a key the target does not know, a 5xx, or a 429): a
  capacity figure over nothing but failures measures nothing. It names the answers seen.
- ``rate:<endpoint>``: each endpoint must send at least ``min_rate_ratio`` (default 95 %)
  of the requests its schedule asked for (0 in the scenario removes the check), over the
  run and in every phase of a shaped run: a spike that was mostly dropped fails even when
  the long phases around it lift the run's overall ratio above the bar. A phase's bar is
  rounded down to whole requests (a 3-request phase passes with 2: it cannot show 95 %).
  A slot its pacer did not send because its part of ``--max-requests`` ran out
  (``capped``) always fails the check, naming the cap: the cap never shortens a run
  silently.

Held vs asked comes from two sources that never disagree about what was *sent*: the
records (one per request that left) and each process's schedule file
(``schedule-<worker>.json``: the slots its pacer handed out or dropped, by phase, and its
user pool's figures). The ratio is ``sent / scheduled``, so Poisson arrivals, whose
schedule is random, are not held against the run; the check's line gives it as a share
of the asked rate (``load.rate x`` the shape's multiplier), never as a second measured
rate (run.json's ``held_rps`` is that ratio times the asked rate).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loadtests.run_files import SCHEDULE_GLOB
from loadtests.scenario import Scenario
from secton_harness.endpoints import BY_NAME
from secton_harness.error_classes import HARNESS
from secton_harness.measures import measure

#: A run whose records are more than this share harness errors fails.
HARNESS_SHARE = 0.5


@dataclass(frozen=True)
class Check:
    """One default check: ``name`` (e.g. ``rate:chat``), pass/fail, and one line why."""

    name: str
    passed: bool
    detail: str


def read_schedules(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every process's schedule file summed: per endpoint, ``asked``/``dropped``/``capped``
    (slots past the process's part of ``--max-requests``) by phase
    and the pools' ``max_users``, ``peak_users``, ``saturated_s`` (longest of any
    process), ``grown``. Empty when no process wrote one (e.g. a master of remote
    workers)."""
    total: dict[str, dict[str, Any]] = {}
    for file in sorted(run_dir.glob(SCHEDULE_GLOB)):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for endpoint, part in data.items():
            into = total.setdefault(endpoint, {"asked": {}, "dropped": {}, "capped": {},
                                               "share": 0.0,
                                               "pool": {"max_users": 0, "peak_users": 0,
                                                        "grown": 0, "saturated_s": 0.0}})
            into["share"] += float(part.get("share", 0.0))
            for kind in ("asked", "dropped", "capped"):
                for phase, n in (part.get(kind) or {}).items():
                    into[kind][phase] = into[kind].get(phase, 0) + int(n)
            pool = part.get("pool") or {}
            merged = into["pool"]
            for key in ("max_users", "peak_users", "grown"):
                merged[key] += int(pool.get(key, 0))
            merged["saturated_s"] = max(merged["saturated_s"], float(pool.get("saturated_s", 0)))
    return total


def rate_figures(table: pa.Table, scenario: Scenario,
                 schedules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per endpoint (by name): sent vs asked overall and per phase, dropped, the pool.

    ``asked_rps`` is the scenario's rate in force (the shape's multiplier applied);
    ``held_rps`` = ``asked_rps x sent / scheduled`` (the part of the asked rate the
    generator held; not the measured ``rps`` of secton_harness.measures, which is over the
    send times). The part of the rate no process
    scheduled (a process that never started pacing, or no schedule file at all) counts at
    the scenario's expected number of requests, so a share that silently never ran shows
    as a shortfall, never as a smaller schedule.
    """
    out: dict[str, Any] = {}
    windows = scenario.phase_windows()
    for name, load in scenario.endpoint_loads().items():
        path = BY_NAME[name].path
        part = table.filter(pc.equal(table["endpoint"], path)) if table.num_rows else table
        if part.num_rows:  # a request our own code failed to send is not load on the target
            part = part.filter(pc.invert(pc.fill_null(pc.equal(part["error"], HARNESS), False)))
        sent_by_phase: dict[str, int] = {}
        if part.num_rows:
            for phase, n in zip(*_phase_counts(part), strict=True):
                sent_by_phase[phase] = n
        schedule = schedules.get(name)
        phases: dict[str, Any] = {}
        for phase, (start, end) in windows.items():
            asked_rps = load.rate * scenario.multiplier((start + end) / 2)
            expected = asked_rps * (end - start)
            capped = 0
            if schedule is not None:
                scheduled = schedule["asked"].get(phase, 0) + _missing(schedule, expected)
                dropped = schedule["dropped"].get(phase, 0)
                capped = schedule.get("capped", {}).get(phase, 0)
            else:
                scheduled, dropped = round(expected), None
            sent = sent_by_phase.get(phase, 0)
            phases[phase] = _rates(sent, scheduled, dropped, asked_rps, capped)
        sent = part.num_rows
        capped = 0
        if schedule is not None:
            scheduled = sum(schedule["asked"].values()) + _missing(
                schedule, scenario.expected_requests(name))
            dropped = sum(schedule["dropped"].values())
            capped = sum(schedule.get("capped", {}).values())
        else:
            scheduled, dropped = round(scenario.expected_requests(name)), None
        asked_rps = scenario.expected_requests(name) / scenario.duration
        figures = _rates(sent, scheduled, dropped, asked_rps, capped)
        figures["phases"] = phases
        figures["pool"] = schedule["pool"] if schedule is not None else None
        figures["p50_latency_s"] = measure("p50_latency_s", part)
        out[name] = figures
    return out


def _missing(schedule: dict[str, Any], expected: float) -> int:
    """Requests of the share of the rate that no process scheduled."""
    unscheduled = max(0.0, 1.0 - schedule.get("share", 1.0))
    return round(unscheduled * expected) if unscheduled > 1e-6 else 0


def _phase_counts(part: pa.Table) -> tuple[list[str], list[int]]:
    grouped = part.group_by("phase", use_threads=False).aggregate([([], "count_all")])
    return grouped["phase"].to_pylist(), grouped["count_all"].to_pylist()


def _rates(sent: int, scheduled: int, dropped: int | None, asked_rps: float,
           capped: int = 0) -> dict[str, Any]:
    ratio = sent / scheduled if scheduled else (1.0 if sent == 0 else None)
    return {"sent": sent, "scheduled": scheduled, "dropped": dropped, "capped": capped,
            "asked_rps": asked_rps,
            "held_rps": asked_rps * ratio if ratio is not None else None,
            "ratio": ratio}


def default_checks(table: pa.Table, scenario: Scenario, rates: dict[str, Any],
                   duration_s: float, max_requests: int | None = None) -> list[Check]:
    """The checks above, in order; ``duration_s`` is how long the run actually sent;
    ``max_requests`` (the run's ``--max-requests``) is named when it cut a schedule."""
    checks = [Check("requests", table.num_rows > 0,
                    f"{table.num_rows} requests recorded" if table.num_rows else
                    "no request was recorded: nothing reached the target (see locust.log)")]
    if table.num_rows:
        harness = int(pc.sum(pc.cast(pc.equal(pc.fill_null(table["error"], ""),
                                              HARNESS), pa.int64())).as_py() or 0)
        share = harness / table.num_rows
        detail = (f"{harness} of {table.num_rows} records are harness errors "
                  f"(error class '{HARNESS}'; see locust.log)")
        checks.append(Check("harness_errors", share <= HARNESS_SHARE, detail))
        checks.append(_successes_check(table))
    if scenario.min_rate_ratio > 0:
        for name, figures in rates.items():
            checks.append(_rate_check(name, figures, scenario, duration_s, max_requests))
    return checks


def _rate_check(name: str, f: dict[str, Any], scenario: Scenario,
                duration_s: float, max_requests: int | None = None) -> Check:
    ratio = f["ratio"]
    text = f"{name}: {_sent_share(f)}"
    capped = int(f.get("capped") or 0)
    if capped:  # the cap shortened the run: never a pass, whatever the ratio
        cap = f"--max-requests {max_requests:,}" if max_requests else "--max-requests"
        text += (f" — {capped} slots not sent: this endpoint's part of {cap} ran out; "
                 "raise --max-requests")
        return Check(f"rate:{name}", False, text)
    passed = ratio is not None and ratio >= scenario.min_rate_ratio
    short_phases = _short_phases(f, scenario.min_rate_ratio) if passed else []
    if passed and not short_phases:
        return Check(f"rate:{name}", True, text)
    if passed:  # the run as a whole reached the bar; a phase did not
        return Check(f"rate:{name}", False, text + " — but " + "; ".join(short_phases))
    pool = f.get("pool") or {}
    saturated = float(pool.get("saturated_s", 0.0))
    p50 = f.get("p50_latency_s")
    if saturated > 0 and pool.get("max_users"):
        share = min(1.0, saturated / max(duration_s, 1e-9))
        text += (f" — all {pool['max_users']} users busy {share:.0%} of the run"
                 + (f" (p50 {p50:.2g} s)" if p50 is not None else "") + "; raise max_users")
    elif f["dropped"]:
        text += (" — requests were due while the generator was behind (CPU-bound?); "
                 "use --processes or a lower rate")
    else:
        text += f" — below {scenario.min_rate_ratio:.0%} of the schedule"
    return Check(f"rate:{name}", False, text)


def _short_phases(f: dict[str, Any], min_ratio: float) -> list[str]:
    """One line per phase that sent fewer than ``floor(min_ratio x scheduled)`` requests
    (only when there are several phases: a single phase is the run, judged above)."""
    phases = f.get("phases") or {}
    if len(phases) < 2:
        return []
    lines = []
    for phase, p in phases.items():
        if p["scheduled"] and p["sent"] < math.floor(min_ratio * p["scheduled"]):
            lines.append(f"phase {phase}: {_sent_share(p, always_dropped=False)}")
    return lines


def _sent_share(f: dict[str, Any], always_dropped: bool = True) -> str:
    """``sent 33.3 % of the asked 5 req/s (10 of 30 scheduled, 20 dropped)``: the share
    of the schedule that went out, named as such. (It used to read ``1.67 of 5 req/s``,
    the *held* rate, asked x sent / scheduled, which sat next to the measured ``rps`` of
    a threshold as a second "achieved" rate with another value; run.json keeps
    ``held_rps``.)"""
    ratio = f["ratio"]
    share = f"{ratio * 100:.1f}".removesuffix(".0") + " %" if ratio is not None else "all"
    counts = f"{f['sent']} of {f['scheduled']} scheduled"
    if f["dropped"] is not None and (always_dropped or f["dropped"]):
        counts += f", {f['dropped']} dropped"
    if f.get("capped"):
        counts += f", {f['capped']} capped"
    return f"sent {share} of the asked {f['asked_rps']:.3g} req/s ({counts})"


def _successes_check(table: pa.Table) -> Check:
    """At least one ok answer (:mod:`secton_harness.measures`' words); else the most
    common statuses and error classes, so the line says what went wrong."""
    ok = int(measure("ok", table) or 0)
    if ok:
        return Check("successes", True, f"{ok} of {table.num_rows} requests ok")
    pairs = zip(table["status"].to_pylist(), table["error"].to_pylist(), strict=True)
    seen = Counter(f"{status or 'no answer'}" + (f" {error}" if error else "")
                   for status, error in pairs)
    common = ", ".join(f"{n} x {what}" for what, n in seen.most_common(3))
    hint = ""
    if any(str(what).startswith("404") for what in seen):
        hint = "; is --target the API's base URL?"
    elif any(str(what).startswith("401") for what in seen):
        hint = "; does the target know these keys?"
    return Check("successes", False,
                 f"none of {table.num_rows} requests got an ok answer ({common}){hint}")
