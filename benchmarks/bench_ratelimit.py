"""Rate-limit mapping accuracy: every limiter kind (``benchmarks/ratelimit_cases.py``: the
reference server's and real nginx / HAProxy / ``limits`` limiters) over several
configurations, every figure scored against its truth within the tolerances of
docs/ratelimit.md, and the cost. Writes the ``## Rate-limit mapping accuracy`` section of
benchmarks/RESULTS.md.

A figure is ✓ (within tolerance), ✗ (wrong), or not claimed: ``unknown`` (algorithm),
``bound`` (sustained ``null`` with the bounds the steady runs proved; ✗ when a bound
excludes the truth), ``null`` (a property not told), ``unreachable``; ``n/a`` where the
truth has no single value (the reason is in the notes). The headline: figures wrong with
``confidence: high`` (must be 0).

Usage: .venv/bin/python benchmarks/bench_ratelimit.py [--quick] [--only TEXT ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))   # the real limiters' starters

import real_limiters  # noqa: E402

from benchmarks.common import add_common_args, machine, replace_section, write_figures  # noqa: E402
from benchmarks.common import figure as headline  # noqa: E402
from benchmarks.ratelimit_cases import CASES, QUICK, Case, Truth  # noqa: E402
from simulator.launcher import ReferenceServer  # noqa: E402

HEADING = "## Rate-limit mapping accuracy"
KEYS = [{"alias": "a1", "key": "sk-bench-alpha-1", "org": "org_alpha"},
        {"alias": "a2", "key": "sk-bench-alpha-2", "org": "org_alpha"},
        {"alias": "a3", "key": "sk-bench-alpha-3", "org": "org_alpha"},
        {"alias": "b1", "key": "sk-bench-beta-1", "org": "org_beta"}]
NO_LATENCY = {"base_ms": 0, "per_token_ms": 0, "jitter_ms": 0}
MAX_RPS = "200"
COST_GOAL = 4.0


def start_target(case: Case, work: Path, stops: list[Any]) -> str:
    """The limiter under test on a free loopback port (stopped through ``stops``)."""
    if case.target == "server":
        config = work / "server.toml"
        config.write_bytes(tomli_w.dumps({"limits": case.setup, "latency": NO_LATENCY,
                                          "keys": KEYS}).encode())
        server = ReferenceServer(config).start()
        stops.append(server.stop)
        return server.url
    if case.target in ("limits", "penalty_box"):
        return real_limiters.own_limiter(work / "own", {
            **case.setup, "keys": {k["key"]: k["org"] for k in KEYS}}, stops)
    backend_config = work / "backend.toml"
    backend_config.write_bytes(tomli_w.dumps({"limits": {"algorithm": "none"},
                                              "latency": NO_LATENCY, "keys": KEYS}).encode())
    backend = ReferenceServer(backend_config).start()
    stops.append(backend.stop)
    if case.target == "nginx":
        return real_limiters.nginx(work / "nginx", backend.url, case.setup["rate"],
                                   case.setup["burst"], stops)
    return real_limiters.haproxy(work / "haproxy", backend.url, case.setup["limit"],
                                 case.setup["period_s"],
                                 counts_refused=case.setup["counts_refused"], stops=stops)


def run_case(case: Case, work: Path) -> dict[str, Any]:
    keys = KEYS if case.org is not None else KEYS[:1]
    keys_file = work / "keys.toml"
    keys_file.write_bytes(tomli_w.dumps({"keys": keys}).encode())
    stops: list[Any] = []
    try:
        url = start_target(case, work, stops)
        subprocess.run([sys.executable, "-m", "secton_harness", "ratelimit", "--target", url,
                        "--keys", str(keys_file), "--out", str(work / "out"),
                        "--max-rps", MAX_RPS, "--max-duration", "120s"],
                       check=False, capture_output=True, timeout=200)
    finally:
        for stop in reversed(stops):
            stop()
    return json.loads((work / "out" / "ratelimit.json").read_text())


def tolerance_s(truth: float) -> float:
    return max(0.1 * truth, 0.25)


def score(scope: dict[str, Any], truth: Truth, org: bool) -> dict[str, tuple[str, str]]:
    """Figure -> (cell text, verdict): verdict ``ok``, ``wrong``, ``unclaimed`` or ``na``."""
    out: dict[str, tuple[str, str]] = {}
    if truth.burst is None:   # the keys cannot reach the org: any figure is invented
        if scope.get("reachable") is False and scope.get("burst") is None:
            out["burst"] = ("unreachable ✓", "unclaimed")
        else:
            out["burst"] = (f"{scope.get('burst')} (unreachable) ✗", "wrong")
        return out
    burst = scope.get("burst")
    if burst is None:
        out["burst"] = ("null", "unclaimed")
    else:
        good = abs(burst - truth.burst) <= (2 if org else 1)
        out["burst"] = (f"{burst} ({burst - truth.burst:+d}) {'✓' if good else '✗'}",
                        "ok" if good else "wrong")
    sustained = scope.get("sustained_per_min")
    per_min = truth.per_min or 0.0
    if sustained is None:
        bound = scope.get("sustained_bound") or {}
        low, high = bound.get("at_least"), bound.get("at_most")
        holds = (high is None or high >= 0.9 * per_min) and (low is None or
                                                             low <= 1.1 * per_min)
        shown = f"[{low or '-'}, {high or '-'}]"
        out["sustained"] = (f"bound {shown} {'✓' if holds else '✗'}",
                            "unclaimed" if holds else "wrong")
    else:
        error = (sustained - per_min) / per_min
        good = abs(error) <= 0.1
        out["sustained"] = (f"{sustained:.0f} ({100 * error:+.1f} %) {'✓' if good else '✗'}",
                            "ok" if good else "wrong")
    out["cooldown"] = score_cooldown(scope, truth)
    algorithm = scope.get("algorithm")
    if algorithm == "unknown":
        out["algorithm"] = ("unknown", "unclaimed")
    else:
        good = algorithm in truth.algorithms
        out["algorithm"] = (f"{algorithm} {'✓' if good else '✗'}", "ok" if good else "wrong")
    for name, want in truth.properties.items():
        got = scope.get(name)
        if got is None:
            out[name] = ("null", "unclaimed")
        elif want is None:
            out[name] = (str(got).lower(), "na")
        else:
            out[name] = (f"{str(got).lower()} {'✓' if got == want else '✗'}",
                         "ok" if got == want else "wrong")
    return out


def score_cooldown(scope: dict[str, Any], truth: Truth) -> tuple[str, str]:
    measured = scope.get("cooldown_s")
    kind = truth.cooldown[0]
    if measured is None:
        return "null", "unclaimed"
    if kind == "none":
        return f"{measured:.2f} s n/a", "na"
    if kind == "within":
        low, high = truth.cooldown[1], truth.cooldown[2]
        off = max(0.0, low - measured, measured - high)
        good = off <= tolerance_s(high)
        return f"{measured:.2f} s in ({low:g}, {high:.2f}] {'✓' if good else '✗'}", (
            "ok" if good else "wrong")
    if kind == "window":   # recovery when the window opened by the burst's first request ends
        first_429 = ((scope.get("observations") or {}).get("burst_a") or {}).get("first_429_s")
        want = truth.cooldown[1] - (first_429 or 0.0)
    else:
        want = truth.cooldown[1]
    good = abs(measured - want) <= tolerance_s(want)
    return (f"{measured:.2f} s ({measured - want:+.2f}) {'✓' if good else '✗'}",
            "ok" if good else "wrong")


COLUMNS = ("burst", "sustained", "cooldown", "algorithm", "penalty_extends", "refusals_count")


def rows_for(case: Case, result: dict[str, Any], tally: dict[str, int]) -> list[str]:
    rows = []
    for scope_name, truth in (("key", case.key), ("org", case.org)):
        if truth is None:
            continue
        scope = result["scopes"].get(scope_name)
        if scope is None:
            rows.append(f"| {case.name} | {scope_name} | missing ✗ |" + " |" * 7)
            tally["wrong"] += 1
            continue
        cells = score(scope, truth, scope_name == "org")
        high = scope.get("confidence") == "high"
        for _text, verdict in cells.values():
            tally[verdict] += 1
            if verdict == "wrong" and high:
                tally["wrong_high"] += 1
        texts = [cells.get(name, ("", ""))[0] for name in COLUMNS]
        rows.append(f"| {case.name} | {scope_name} | " + " | ".join(texts)
                    + f" | {scope.get('confidence')} |")
    cost = result.get("cost") or {}
    over = cost.get("over_minimum")
    tally.setdefault("costs", []).append(over)   # type: ignore[arg-type]
    rows.append(f"| {case.name} | cost | sent {cost.get('requests_sent')}, minimum "
                f"{cost.get('minimum_bursts')}, probes {cost.get('recovery_probes')}, "
                f"verification {cost.get('verification_requests')} (sent ÷ minimum "
                f"{(cost.get('requests_sent') or 0) / max(1, cost.get('minimum_bursts') or 0):.1f})"
                f"; over minimum "
                f"**{over}** {'✓' if over is not None and over <= COST_GOAL else '✗'} | "
                f"{result.get('duration_s')} s |" + " |" * 5)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the configurations whose name contains one of these")
    args = parser.parse_args()
    cases = [c for c in CASES if c.name in QUICK] if args.quick else CASES
    if args.only:
        cases = [c for c in cases if any(text in c.name for text in args.only)]
    tally: dict[str, Any] = {"ok": 0, "wrong": 0, "unclaimed": 0, "na": 0, "wrong_high": 0}
    rows: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for index, case in enumerate(cases):
            work = Path(tmp) / str(index)
            work.mkdir()
            try:
                result = run_case(case, work)
            except (OSError, ValueError, AssertionError, subprocess.SubprocessError) as error:
                rows.append(f"| {case.name} | run failed: {str(error)[:120]} ✗ |" + " |" * 7)
                tally["wrong"] += 1
                tally["wrong_high"] += 1   # a failed run is counted against us
                continue
            new = rows_for(case, result, tally)
            rows += new
            print("\n".join(new), flush=True)
    costs = [c for c in tally.pop("costs", []) if c is not None]
    scopes = sum(1 + (c.org is not None) for c in cases)
    summary = (f"**{len(cases)} configurations, {scopes} scopes, "
               f"{tally['ok'] + tally['wrong'] + tally['unclaimed']} figures scored: "
               f"{tally['ok']} right, {tally['unclaimed']} not claimed (unknown / bound / "
               f"null / unreachable), {tally['wrong']} wrong, of which "
               f"{tally['wrong_high']} with confidence high.** Cost (requests sent ÷ "
               f"(minimum + recovery probes), the mapper's `cost.over_minimum`): worst "
               f"{max(costs, default=float('nan')):.2f}, "
               f"{sum(c <= COST_GOAL for c in costs)} of {len(costs)} configurations within "
               f"the goal of {COST_GOAL:g}.")
    body = "\n".join([
        "Every limiter kind the harness knows, each figure of `secton-harness ratelimit` against "
        "the truth its configuration implies (`benchmarks/ratelimit_cases.py`). Tolerances: "
        "burst ±1 (key) / ±2 (org), sustained ±10 %, cooldown ±max(10 %, 0.25 s), "
        "algorithm and properties right. Not claimed — `unknown`, `bound [at_least, "
        "at_most]` (✓: the bounds hold), `null`, `unreachable` — is honest, not wrong; "
        "`n/a`: the cooldown has no single true value (a counter's wait depends on the "
        "period's phase; where retries extend the block, on the probing). Window cooldown "
        "truth: window − time of the first 429; bucket: within (0, 1/rate]. Org scopes "
        "over 3 keys of one org (+ 1 key of another); \"below/above the keys'\" compares "
        "the org limit with the keys' limits summed. Cost: `cost.over_minimum` = requests "
        "sent ÷ (each scope's burst + its 429 + the recovery probes), verification "
        "included; goal ≤ 4 (accuracy wins where they conflict). One run per "
        f"configuration, sequential, loopback, `--max-rps {MAX_RPS}`, no injected latency; "
        f"{time.monotonic() - started:.0f} s in all on {machine()} (shared with other "
        "work). Produced by `benchmarks/bench_ratelimit.py`"
        f"{' --quick' if args.quick else ''}{' --only ...' if args.only else ''}.",
        "",
        summary,
        "",
        "| config | scope | burst | sustained /min | cooldown | algorithm | penalty_extends "
        "| refusals_count | confidence |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows])
    replace_section(args.results, HEADING, body)
    write_figures(args.figures, [
        headline("rate-limit mapping: figures wrong with confidence high",
                 tally["wrong_high"], "<= 0", note=f"{len(cases)} configurations"),
        headline("rate-limit mapping: worst cost (sent / (minimum + probes))",
                 max(costs) if costs else None, f"<= {COST_GOAL:g}", costs)])


if __name__ == "__main__":
    main()
