"""The arrival schedule itself: exact per phase, no start-up burst, honest at boundaries.

These check :func:`loadtests.pacing.arrival_offsets` (the pure schedule the pacer sleeps
through) on the scenario's own rate function, over many seeds: counts per step of a ramp,
the first step's mean and dispersion (a start-up burst would show as excess), and the
first arrivals after a rate change (a gap drawn at the old rate would leave a hole).
"""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from benchmarks.truth import burstiness, poisson_cv
from loadtests.pacing import arrival_offsets
from loadtests.scenario import Scenario


def scenario(**fields: object) -> Scenario:
    base: dict[str, object] = {"duration": "16s", "endpoints": {"chat": {"rate": "8/s"}}}
    return Scenario.model_validate({**base, **fields})


def offsets(sc: Scenario, seed: str, arrival: str | None = None) -> list[float]:
    rate = sc.endpoint_loads()["chat"].rate
    return list(arrival_offsets(lambda t: rate * sc.multiplier(t), sc.duration,
                                arrival or sc.arrival, random.Random(seed),
                                sc.rate_breakpoints()))


def test_breakpoints_are_the_shape_edges() -> None:
    assert scenario(shape="step", step={"steps": 4}).rate_breakpoints() == [4.0, 8.0, 12.0]
    assert scenario(shape="spike", spike={"at": "4s", "length": "2s"}).rate_breakpoints() \
        == [4.0, 6.0]
    assert scenario().rate_breakpoints() == []


def test_even_step_ramp_is_exact_in_every_step() -> None:
    sc = scenario(shape="step", step={"steps": 4})
    phases = Counter(sc.phase_at(t) for t in offsets(sc, "x", "even"))
    # 8/s x (1/4, 2/4, 3/4, 4/4) for 4 s each
    assert phases == {"step-1": 8, "step-2": 16, "step-3": 24, "step-4": 32}


def test_even_spike_is_exact_in_every_phase() -> None:
    sc = scenario(shape="spike", spike={"at": "4s", "length": "2s", "factor": 5})
    phases = Counter(sc.phase_at(t) for t in offsets(sc, "x", "even"))
    assert phases == {"before": 32, "spike": 80, "after": 80}


def test_poisson_first_step_has_no_startup_burst() -> None:
    sc = scenario(shape="step", step={"steps": 4}, arrival="poisson")
    counts = [sum(1 for t in offsets(sc, f"seed-{i}") if t < 4.0) for i in range(400)]
    mean = statistics.fmean(counts)
    # Poisson(8): mean 8 (sd of the mean over 400 runs 0.14), variance 8
    assert mean == pytest.approx(8.0, abs=0.5)
    assert statistics.variance(counts) / mean == pytest.approx(1.0, abs=0.25)


def test_demo_first_step_excess_is_its_seeded_draw() -> None:
    """The demo's 15 chat requests in its first step (8 expected) are the one Poisson
    draw its fixed seed makes (P(N >= 15 | mean 8) ~ 1 %), not a pacer error."""
    sc = scenario(shape="step", step={"steps": 4}, arrival="poisson")
    assert sum(1 for t in offsets(sc, "1-0-1") if t < 4.0) == 15


def test_poisson_gap_crossing_a_step_finishes_at_the_new_rate() -> None:
    # 1/s for 1 s, then 200/s: the first 50 ms after the edge must hold ~10 arrivals, not
    # wait out a gap drawn at 1/s
    def rate_at(t: float) -> float:
        return 1.0 if t < 1.0 else 200.0

    counts = []
    for i in range(200):
        times = list(arrival_offsets(rate_at, 2.0, "poisson", random.Random(i), [1.0]))
        counts.append(sum(1 for t in times if 1.0 <= t < 1.05))
    assert statistics.fmean(counts) == pytest.approx(10.0, abs=1.0)


def test_burstiness_of_the_schedules() -> None:
    rate = 100.0
    even = list(arrival_offsets(lambda _t: rate, 20.0, "even", random.Random(1)))
    poisson = list(arrival_offsets(lambda _t: rate, 20.0, "poisson", random.Random(1)))
    assert burstiness(even) < 0.05
    assert burstiness(poisson) == pytest.approx(poisson_cv(rate), rel=0.1)
