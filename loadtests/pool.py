"""In-flight capacity of one endpoint in one process: a pool of users that grows on demand.

Each user sends one request at a time, so the users of an endpoint cap its requests in
flight. At LLM latencies (seconds per chat completion) a fixed pool silently caps the
rate: 6 users at 1.5 s each cannot send more than 4 req/s whatever the scenario asks.
So ``users`` is only the *starting* pool (k6's ``preAllocatedVUs``): when a user takes a
due slot and no other user of the endpoint is free to take the next one, the pool starts
another user, up to ``max_users`` (k6's ``maxVUs``). At the cap, slots that cannot start
within the scenario's ``late_tolerance`` are dropped by the pacer and counted; the time
spent with every user busy at the cap is kept for the verdict's explanation.

Growth also stops at what Little's law says the rate needs: ``peak rate x time in flight
x 1.5 + 2`` users, with the time in flight taken as the larger of a moving mean of finished
requests and the mean age of the open ones (no bound before the first request finishes).
Why: when the *generator's core* is the bottleneck (a fast target, a rate beyond one
process), every user is busy waiting for the CPU, not for the target, and starting more
only adds greenlets to a saturated loop — measured here, growing to the cap cut the
generator's own throughput by a quarter (benchmarks/FINDINGS.md). At LLM latencies the
time in flight is seconds and the bound is far above what the rate needs.

The pool only counts; starting a user is the ``grow`` callable the locustfile passes in
(it starts one more Locust user of the endpoint's class in this process).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

#: Weight of each finished request in the moving mean of the time in flight.
_EWMA_WEIGHT = 0.05
#: Headroom over Little's law (in-flight requests = rate x time in flight).
_LITTLE_HEADROOM = 1.5
_LITTLE_SPARE = 2


class UserPool:
    """Users of one endpoint in one process: how many, how many busy, when to grow."""

    def __init__(self, endpoint: str, cap: int, grow: Callable[[int], Any] | None = None,
                 peak_rate: float | None = None) -> None:
        self.endpoint = endpoint
        self.cap = cap
        self.grow = grow
        #: This process's peak asked rate of the endpoint (req/s); None: no Little bound.
        self.peak_rate = peak_rate
        self._mean_in_flight_s: float | None = None
        self._open_starts_sum = 0.0  # sum of the monotonic start times of open requests
        self.size = 0        # users that have started (on_start ran)
        self.pending = 0     # users asked for, not started yet
        self.busy = 0        # users sending a request right now
        self.peak_size = 0
        self.peak_busy = 0
        self.grown = 0       # users started beyond the starting pool
        self.saturated_s = 0.0
        self._saturated_since: float | None = None

    def joined(self) -> None:
        """A user of this endpoint has started."""
        self.size += 1
        self.pending = max(0, self.pending - 1)
        self.peak_size = max(self.peak_size, self.size)
        self._check_saturation()

    def left(self) -> None:
        self.size = max(0, self.size - 1)

    def acquire(self) -> float:
        """A user starts a request: if nobody is left to take the next slot, grow.

        Returns the start time to hand back to :meth:`release`."""
        started = time.monotonic()
        self.busy += 1
        self._open_starts_sum += started
        self.peak_busy = max(self.peak_busy, self.busy)
        if self.busy >= self.size + self.pending:
            room = min(self.cap, self.needed(started)) - (self.size + self.pending)
            if room > 0 and self.grow is not None:
                self.pending += 1
                self.grown += 1
                self.grow(1)
        self._check_saturation()
        return started

    def release(self, started: float | None = None) -> None:
        self.busy = max(0, self.busy - 1)
        if started is not None:
            self._open_starts_sum -= started
            took = time.monotonic() - started
            mean = self._mean_in_flight_s
            self._mean_in_flight_s = took if mean is None else mean + _EWMA_WEIGHT * (took - mean)
        self._check_saturation()

    def needed(self, now: float) -> float:
        """Users the peak rate needs by Little's law (infinite when it cannot be told)."""
        if self.peak_rate is None or self._mean_in_flight_s is None:
            return math.inf  # nothing has finished yet: no time in flight to go by
        open_age = now - self._open_starts_sum / self.busy if self.busy else 0.0
        in_flight_s = max(self._mean_in_flight_s, open_age)
        return math.ceil(self.peak_rate * in_flight_s * _LITTLE_HEADROOM) + _LITTLE_SPARE

    def _check_saturation(self) -> None:
        saturated = self.busy >= self.size + self.pending and self.size + self.pending >= self.cap
        now = time.monotonic()
        if saturated and self._saturated_since is None:
            self._saturated_since = now
        elif not saturated and self._saturated_since is not None:
            self.saturated_s += now - self._saturated_since
            self._saturated_since = None

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the per-process schedule file and the worker reports."""
        saturated = self.saturated_s
        if self._saturated_since is not None:
            saturated += time.monotonic() - self._saturated_since
        return {"users": self.size, "busy": self.busy, "max_users": self.cap,
                "peak_users": self.peak_size, "peak_busy": self.peak_busy,
                "grown": self.grown, "saturated_s": round(saturated, 3)}
