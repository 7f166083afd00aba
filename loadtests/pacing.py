"""Open-model pacing: one scheduler per endpoint hands out *intended send times*.

Locust's ``constant_throughput`` paces each user on its own, locked to the phase at which
the user spawned, so the combined arrivals come in bursts and a slow response silently
delays the next request (coordinated omission). Here one :class:`Pacer` per endpoint
and process holds the schedule (evenly spaced at ``1/rate``, or a Poisson process);
whichever user of that endpoint is free claims the next :data:`Ticket`, waits until its
intended time and sends. The schedule never waits for
responses, so the achieved rate equals the target whenever enough users are free, and each
record carries ``intended_ts`` so latency can be measured from when the request was due
(wrk2/Vegeta style), not only from when it left.

Times are computed from one start point (``t0 + offset``), never by adding sleeps, so timer
jitter does not accumulate into rate error. Offsets come from :func:`arrival_offsets`, which
inverts the cumulative rate: each arrival consumes one unit of "work" (exactly 1 for even
spacing, an Exp(1) draw for Poisson), spent at the rate in force. Across a step or spike
boundary the unspent part of a gap carries over at the new rate, so a piecewise-constant
rate gives an exact non-homogeneous Poisson process (and exact even spacing per phase)
instead of letting the last gap of one phase run at the old rate.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator

import gevent

#: A ticket due within this many seconds is released at once: a gevent timer per request
#: costs more than it buys at high rates (the record keeps the exact intended time).
EARLY_S = 0.0002


#: The rate of a segment is read just after its start, and an arrival due within this of
#: a boundary belongs to the next segment, so float rounding never puts a request that is
#: due exactly at a step edge into the phase before it.
_AFTER_S = 1e-7
_EDGE_S = 1e-9


def arrival_offsets(rate_at: Callable[[float], float], duration_s: float, arrival: str,
                    rng: random.Random, breakpoints: Iterable[float] = ()) -> Iterator[float]:
    """Intended send offsets (seconds from the start) for a rate that may change over time.

    ``breakpoints`` are the offsets where ``rate_at`` changes (step and spike edges): the
    rate is read once per segment (it runs once per request otherwise), and a gap that
    crosses a breakpoint is finished at the new rate. Stops at ``duration_s`` or at the
    first segment whose rate is 0. Even arrivals start at offset 0; Poisson arrivals
    start after a first exponential gap.
    """
    bounds = sorted({b for b in breakpoints if 0 < b < duration_s} | {duration_s})
    poisson = arrival == "poisson"
    t, index = 0.0, 0
    rate_index, rate = -1, 0.0
    work = rng.expovariate(1.0) if poisson else 0.0
    while True:
        while True:  # spend `work` units of arrivals, segment by segment
            while bounds[index] <= t:
                index += 1
                if index == len(bounds):
                    return
            if index != rate_index:
                rate_index, rate = index, rate_at(t + _AFTER_S)
            if rate <= 0:
                return
            end = bounds[index]
            reach = t + max(work, 0.0) / rate
            if reach < end - _EDGE_S:
                t = reach
                break
            work -= (end - t) * rate
            t = end
        yield t
        work = rng.expovariate(1.0) if poisson else 1.0


#: One request that is due: (intended send time in epoch seconds, phase of the shape).
#: A plain tuple: it is made once per request on the generator's hot path.
Ticket = tuple[float, str]


class Pacer:
    """Hands out one endpoint's schedule at ``rate_at(elapsed_s)`` requests per second.

    There is no pacer greenlet and no queue: a user that is free *claims* the next slot
    of the schedule (one generator step; gevent only switches at a sleep, so claiming
    needs no lock), sleeps until the slot is due if it lies ahead, and sends. Slots are
    claimed in order by whichever user is free first, exactly as a shared ticket queue
    would hand them out, but when the generator is behind schedule (the slot is already
    due) the user sends at once without a single greenlet switch: the queue hand-off cost
    about a fifth of the generator's throughput (benchmarks/FINDINGS.md).

    ``rate_at`` returns 0 once the run is over; ``max_tickets`` bounds the slots handed
    out (this pacer's share of ``--max-requests``). A slot that comes due after that share
    ran out is *capped*: counted in :attr:`asked` and :attr:`capped`, never sent, so the
    rate check sees a run the cap cut short instead of a smaller schedule.
    ``phase_at`` is taken to change only at ``breakpoints`` (true of every scenario shape),
    so it is asked once per segment, not once per request.
    """

    def __init__(self, rate_at: Callable[[float], float], phase_at: Callable[[float], str],
                 duration_s: float, *, arrival: str = "even", seed: int | str = 1,
                 max_tickets: int | None = None, breakpoints: Iterable[float] = (),
                 late_tolerance_s: float = math.inf) -> None:
        self.rate_at = rate_at
        self.breakpoints = tuple(breakpoints)
        self.phase_at = phase_at
        self.duration_s = duration_s
        self.arrival = arrival
        self.rng = random.Random(seed)
        self.max_tickets = max_tickets
        self._budget = max_tickets if max_tickets is not None else math.inf
        self._phase_edges = sorted(self.breakpoints)
        self._phase_until = -math.inf
        self._phase = ""
        self.late_tolerance_s = late_tolerance_s
        self.issued = 0
        self.waiting = 0
        #: per phase: slots of the schedule (sent or dropped) and slots dropped
        self.asked: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        #: per phase: slots that came due after ``max_tickets`` ran out (never sent)
        self.capped: dict[str, int] = {}
        self.started_wall = 0.0
        self._start_perf = 0.0
        self._offsets: Iterator[float] | None = None
        self._exhausted = False

    def start(self) -> Pacer:
        self._start_perf = time.perf_counter()
        self.started_wall = time.time()
        self._offsets = arrival_offsets(self.rate_at, self.duration_s, self.arrival,
                                        self.rng, self.breakpoints)
        return self

    @property
    def done(self) -> bool:
        """Every slot has been handed out and its user has woken up to send it."""
        return self._exhausted and self.waiting == 0

    def take(self) -> Ticket | None:
        """Claim the next slot and wait until it is due; None once the schedule is over.

        A slot already overdue by more than ``late_tolerance_s`` (every user was busy,
        or the generator fell behind) is *dropped*: counted in :attr:`dropped`, never sent
        late, and the next slot is claimed instead (k6's ``dropped_iterations``).
        """
        while True:
            if self._exhausted or self._offsets is None:  # over, or not started yet
                return None
            elapsed = next(self._offsets, None)
            if elapsed is None:
                self._exhausted = True
                return None
            over_cap = self.issued >= self._budget
            if not over_cap:
                self.issued += 1
            if elapsed >= self._phase_until:
                self._phase = self.phase_at(elapsed)
                edges = self._phase_edges
                self._phase_until = edges[bisect.bisect_right(edges, elapsed)] \
                    if edges and elapsed < edges[-1] else math.inf
            phase = self._phase
            self.asked[phase] = self.asked.get(phase, 0) + 1
            delay = self._start_perf + elapsed - time.perf_counter()
            if delay < -self.late_tolerance_s and not over_cap:
                self.dropped[phase] = self.dropped.get(phase, 0) + 1
                continue
            if delay > EARLY_S:
                self.waiting += 1
                try:
                    gevent.sleep(delay)
                except gevent.GreenletExit:  # stopped before it was due: never asked
                    self.asked[phase] -= 1
                    if not over_cap:
                        self.issued -= 1
                    raise
                finally:
                    self.waiting -= 1
            if over_cap:  # due, but this pacer's share of the cap is spent: on record
                self.capped[phase] = self.capped.get(phase, 0) + 1
                continue
            return self.started_wall + elapsed, phase

    def finish(self) -> None:
        """End the schedule now: every slot that was due and not claimed counts as dropped.

        Called when the run stops (drain over, SIGTERM, abort) so that a backlog that was
        never sent is on record as dropped, not silently cut. Slots not yet due when the
        run stops (an interrupted run) were never asked for: they are not counted.
        """
        if self._offsets is None or self._exhausted:
            self._exhausted = True
            return
        self._exhausted = True
        now = time.perf_counter() - self._start_perf
        for elapsed in self._offsets:
            if elapsed > now:
                break
            phase = self.phase_at(elapsed)
            self.asked[phase] = self.asked.get(phase, 0) + 1
            if self.issued >= self._budget:
                self.capped[phase] = self.capped.get(phase, 0) + 1
                continue
            self.issued += 1
            self.dropped[phase] = self.dropped.get(phase, 0) + 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def capped_total(self) -> int:
        return sum(self.capped.values())
