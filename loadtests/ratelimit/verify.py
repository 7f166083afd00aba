"""Verification of the inferred sustained rate by steady runs: a figure is reported as
measured only when a run at 92 % of it saw no 429 *and* a run at 110 % saw one
(``infer.LOW``/``HIGH``: the pair then proves the figure within ±10 %).

Why both: a 92 % run alone cannot fail in the direction that matters for an underestimate
(it passes whatever the true rate above it is), and a 110 % run alone cannot catch an
overestimate. A run that contradicts the estimate moves it (a 429 at 92 %: down; no 429
at 110 %: up) and the pair is run again, for a few rounds within the ``--budget``. What the
runs proved is kept as bounds either way: the fastest run that saw no 429 is a lower
bound, the slowest that saw one an upper bound; an unverified figure is reported as those
bounds, never as a number that looks measured.

Each run is long enough to mean it: a bucket is run from empty (right after the refill
measurement) for ~3 s at 92 % and until its deficit reaches a few tokens at 110 %; a
window, penalty or sliding-window counter from rested (its rest, or two periods for a
counter, whose previous window still weighs) for about two windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from loadtests.ratelimit.infer import HIGH, LOW, NARROW, NARROW_COUNTER, slipped
from loadtests.ratelimit.observations import SteadyRun
from loadtests.ratelimit.phases import ScopeRunner
from loadtests.ratelimit.transport import BoundReached

Progress = Callable[[str], None]
ROUNDS = 3


def run_plan(family: str, rate: float, burst: int, factor: float) -> int:
    """Requests in one steady run (it stops at the first 429)."""
    if family == "bucket":
        if factor < 1:   # ~3 s from empty: an overestimate of > 9 % runs short
            return max(10, min(30, math.ceil(factor * rate * 3.0)))
        # from empty at 110 %: the deficit grows 0.10 x rate per second; three tokens
        return max(12, min(40, math.ceil(factor * rate * (1.0 + 3.0 / ((factor - 1) * rate)))))
    if family == "counter":
        # a counter weighs the previous period: steady state needs two full periods after
        # the first, and an overestimate of a few % shows only there
        return math.ceil(3.2 * min(factor, 1.0) * burst) + 2
    # from rested, about two windows' worth (a fixed window aligned to the clock needs
    # two to hold one whole window)
    return math.ceil((1.8 if factor < 1 else 2.3) * burst) + 2


def verify_sustained(runner: ScopeRunner, obs: dict[str, Any], estimate: dict[str, Any],
                     budget: int, say: Progress) -> None:
    """Steady runs at 92 % and 110 % of the estimate (see the module doc); the outcome in
    ``obs["verify"]``: ``verified``, the final ``estimate_per_min``, the bounds proved,
    every run, and ``unverified`` with the reason when the budget or a bound stopped it."""
    if obs.get("stopped_by") or obs.get("unreachable"):
        return
    per_min = estimate.get("estimate_per_min")
    burst = estimate.get("burst") or 0
    if not per_min or burst < 1:
        return
    family = estimate["family"]
    transport = runner.transport
    rate = per_min / 60.0
    verify: dict[str, Any] = {"from": "empty" if family == "bucket" else "rested",
                              "runs": [], "verified": False}
    obs["verify"] = verify
    bounds: dict[str, float] = {}

    def run_at(target: float, factor: float, plan_factor: float) -> SteadyRun | None:
        """One steady run at ``target`` req/s (None when the budget or the deadline
        forbids it; the reason is kept); updates the bounds it proves."""
        n = run_plan(family, target / plan_factor, burst, plan_factor)
        rest = _rest(family, obs, estimate, target)
        left = budget - transport.sent
        takes = rest + n / target
        if n > left:
            verify["unverified"] = (
                f"the next run ({n} requests) would exceed --budget ({left} left)"
                if left > 0 else f"--budget ({budget}) was spent before the verification "
                f"({transport.sent} requests sent measuring): no run was started")
            return None
        if transport.now() + takes > transport.deadline:
            verify["unverified"] = f"the next run ({takes:.1f}s) would exceed --max-duration"
            return None
        transport.sleep_until(transport.now() + rest, "the rest before a steady run")
        if family == "bucket" and verify["runs"]:
            runner.burst(step="drain")   # a passing run leaves tokens behind
        say(f"verify: up to {n} requests at {60 * target:.1f}/min")
        run = runner.steady(target, n)
        run["factor"] = round(factor, 3)
        verify["runs"].append(run)
        if slipped(dict(run)):
            # the sends fell behind and caught up (a busy machine): the 429 may answer
            # the bunched sends, not the rate asked; run it once more, then give up
            verify["slipped"] = verify.get("slipped", 0) + 1
            if verify["slipped"] > 1:
                verify["unverified"] = (f"steady runs fell behind their schedule (by up to "
                                        f"{run['late_s']:.3f}s, the machine was busy): a "
                                        "429 then answers bunched sends, not the rate")
                return None
            return run_at(target, factor, plan_factor)
        if run["refused"]:
            bounds["upper"] = min(bounds.get("upper", math.inf), target)
        else:
            bounds["lower"] = max(bounds.get("lower", 0.0), target)
        return run

    inferred = rate
    try:
        for round_index in range(ROUNDS):
            outcome = None
            for factor in (LOW, HIGH):
                run = run_at(factor * rate, factor * rate / inferred, factor)
                if run is None:
                    return
                if factor == LOW and run["refused"]:
                    outcome = "lower"
                    break
                if factor == HIGH:
                    outcome = "verified" if run["refused"] else "raise"
            lower, upper = bounds.get("lower"), bounds.get("upper")
            if outcome == "verified" and round_index == 0 and family != "counter":
                verify["verified"] = True   # the inference held: it is the figure
                break
            narrow = NARROW_COUNTER if family == "counter" else NARROW
            if (lower is not None and upper is not None
                    and upper <= lower * HIGH / LOW * 1.001):
                # re-aimed (or a counter, whose refill grid reads high): narrow the
                # bracket and report its middle
                while upper / lower > narrow:
                    middle = math.sqrt(lower * upper)
                    if run_at(middle, middle / inferred, HIGH) is None:
                        break
                    lower, upper = bounds["lower"], bounds["upper"]
                rate = math.sqrt(lower * upper)
                verify["verified"] = upper / lower <= narrow
                break
            rate = _next_estimate(rate, lower, upper)
    except BoundReached as stop:
        verify["unverified"] = f"stopped by {stop.bound}"
    finally:
        verify["estimate_per_min"] = round(60 * rate, 2)
        lower, upper = bounds.get("lower"), bounds.get("upper")
        verify["at_least_per_min"] = round(60 * lower, 2) if lower else None
        verify["at_most_per_min"] = round(60 * upper, 2) if upper else None
        if not verify["verified"] and "unverified" not in verify:
            verify["unverified"] = (f"{ROUNDS} rounds of steady runs did not bracket the "
                                    f"rate between a {LOW:.0%} run without a 429 and a "
                                    f"{HIGH:.0%} run with one")


def _next_estimate(rate: float, lower: float | None, upper: float | None) -> float:
    """Where to aim the next pair: between the proved bounds (geometric middle), or, with
    only one bound, just past it so the next pair tests something new."""
    if lower is not None and upper is not None:
        return math.sqrt(lower * upper / (LOW * HIGH))
    if upper is not None:
        return upper / 1.2
    if lower is not None:
        return 1.05 * lower / LOW
    return rate


def _rest(family: str, obs: dict[str, Any], estimate: dict[str, Any], rate: float) -> float:
    if family == "bucket":
        return 0.0
    if family == "counter":   # the previous window still weighs for one more period
        return 2.2 * (estimate.get("burst") or 1) / rate + 0.1
    return float(obs.get("rest_after_s", 1.0))
