"""The pacer alone (gevent, no Locust): its schedule hits the rate, even or Poisson."""

from __future__ import annotations

import itertools
import statistics

import gevent
import pytest

from loadtests.pacing import Pacer


def _drain(pacer: Pacer) -> list[float]:
    times = []
    while not pacer.done:
        ticket = pacer.take()
        if ticket is not None:
            times.append(ticket.intended_ts)
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
    pacer = Pacer(lambda _t: 1000.0, lambda _t: "x", 10.0, max_tickets=25).start()
    assert len(_drain(pacer)) == 25
    stopped = Pacer(lambda t: 1000.0 if t < 0.05 else 0.0, lambda _t: "x", 10.0).start()
    gevent.sleep(0)
    assert len(_drain(stopped)) == pytest.approx(50, abs=1)
