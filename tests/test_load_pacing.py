"""The pacer alone (gevent, no Locust): its schedule hits the rate, even or Poisson."""

from __future__ import annotations

import itertools
import random
import statistics

import gevent
import pytest

from loadtests.pacing import Pacer, arrival_offsets


def _drain(pacer: Pacer) -> list[float]:
    times = []
    while not pacer.done:
        ticket = pacer.take()
        if ticket is not None:
            times.append(ticket[0])
    return times


@pytest.mark.parametrize("arrival", ["even", "poisson"])
def test_schedule_rate_and_shape(arrival: str) -> None:
    rate, duration = 2000.0, 1.5
    pacer = Pacer(lambda _t: rate, lambda _t: "steady", duration, arrival=arrival,
                  seed=7).start()
    times = _drain(pacer)
    # intended times, not arrival of greenlets: exact for even, ~1.8 % sd for Poisson
    tolerance = 0.05 if arrival == "poisson" else 0.001
    assert len(times) == pytest.approx(rate * duration, rel=tolerance)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    if arrival == "even":
        assert cv < 1e-3  # epoch-float resolution only
    else:
        assert cv == pytest.approx(1.0, abs=0.1)  # exponential gaps


def test_max_tickets_and_rate_zero_stop() -> None:
    pacer = Pacer(lambda _t: 1000.0, lambda _t: "x", 0.1, max_tickets=25).start()
    assert len(_drain(pacer)) == 25
    # the slots past the cap are on record as asked and capped, never as a shorter schedule
    assert pacer.asked == {"x": 100} and pacer.capped == {"x": 75} and not pacer.dropped
    stopped = Pacer(lambda t: 1000.0 if t < 0.05 else 0.0, lambda _t: "x", 10.0,
                    breakpoints=[0.05]).start()
    gevent.sleep(0)
    assert len(_drain(stopped)) == pytest.approx(50, abs=1)


def test_phase_follows_the_breakpoints() -> None:
    """The phase is looked up once per segment; every ticket still carries the phase of
    its own intended time (the label of the step it was due in)."""
    edges = [0.1, 0.2, 0.3]

    def phase_at(t: float) -> str:
        return f"step-{sum(t >= e for e in edges) + 1}"

    def rate_at(t: float) -> float:
        return 200.0 * (1 + int(t / 0.1))

    pacer = Pacer(rate_at, phase_at, 0.4, breakpoints=edges).start()
    tickets = []
    while not pacer.done:
        ticket = pacer.take()
        if ticket is not None:
            tickets.append(ticket)
    offsets = list(arrival_offsets(rate_at, 0.4, "even", random.Random(1), edges))
    assert [phase for _, phase in tickets] == [phase_at(t) for t in offsets]
    counts = {p: sum(1 for _, q in tickets if q == p) for p in ("step-1", "step-4")}
    assert counts == {"step-1": 20, "step-4": 80}


def test_late_slots_are_dropped_counted_and_never_sent() -> None:
    """A pacer nobody takes from for 0.3 s at 100/s with late_tolerance 0.1 s: the slots
    more than 0.1 s overdue are dropped (counted by phase), the rest are sent."""
    pacer = Pacer(lambda _t: 100.0, lambda _t: "steady", 1.0, late_tolerance_s=0.1).start()
    gevent.sleep(0.3)  # every user busy: nothing claimed
    first = pacer.take()
    assert first is not None
    assert pacer.dropped["steady"] >= 15  # ~20 slots were > 0.1 s late; timing slack
    sent = 1 + len(_drain(pacer))
    assert sent + pacer.dropped_total == pacer.asked["steady"] == 100


def test_finish_counts_only_due_slots_as_dropped() -> None:
    pacer = Pacer(lambda _t: 50.0, lambda _t: "steady", 10.0).start()
    gevent.sleep(0.2)
    pacer.finish()  # stopped 0.2 s into a 10 s schedule: ~10 slots were due
    assert pacer.take() is None and pacer.done
    assert 5 <= pacer.dropped_total == pacer.asked["steady"] <= 100


def test_a_process_without_users_is_done_once_pacing_starts() -> None:
    """``users = 1`` over two ``--processes`` workers: Locust gives one worker no user. It
    has no pacer and nothing to send, so it is done as soon as pacing starts; it used to
    count as never done and the master waited out the whole drain (a 4 s run took 40 s)."""
    from loadtests.process_plan import LoadPlan
    from loadtests.scenario import Scenario

    scenario = Scenario.model_validate({"duration": "4s",
                                        "endpoints": {"models": {"rate": "2/s", "users": 1}}})
    idle = LoadPlan(scenario=scenario, keys=[], run_dir=None, worker="w1", max_requests=10)
    assert not idle.pacing_done  # before pacing starts nothing is done
    idle.start_pacers({"models": 0})
    assert idle.pacers == {} and idle.pacing_done
    busy = LoadPlan(scenario=scenario, keys=[], run_dir=None, worker="w0", max_requests=10)
    busy.start_pacers({"models": 1})
    assert set(busy.pacers) == {"models"} and not busy.pacing_done
    busy.finish_pacers()
    assert busy.pacing_done
