"""Rate-limiter algorithms with an injectable clock, exact and deterministic.

Why hand-written: the ``limits`` library reads the wall clock itself (no injectable
clock, so tests would have to sleep), has no token bucket and no penalty cooldown, and
its sliding window is an approximation. The reference server is the ground truth the
rate-limit mapper is tested against, so every limiter here is exact: given the same
sequence of ``now`` values it gives the same answers, to the float.

Every limiter takes the time as an argument (``now``, monotonic seconds) and has three
operations so that a key limiter and an org limiter can be combined without one
refusal eating the other's budget (see :mod:`simulator.budgets`):

- ``peek(now)`` - what would happen if a request were taken now (no change of state),
- ``commit(now)`` - take the request (only after every scope allowed it),
- ``refuse(now)`` - record this limiter's own refusal (only the penalty limiter cares),
- ``count_refused(now)`` - with ``refusals_count``, a refused request (refused by any
  scope) is counted as if it had been taken, like HAProxy's classic recipe that tracks
  every request before denying: retrying during the block extends it.

``check(now)`` does them in the usual order for a limiter used on its own.

Example of a new algorithm::

    class Unlimited(Limiter):
        def peek(self, now): return Decision(True, 0, 0, 0.0, 0.0, self.window_s)
        def commit(self, now): pass
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple, get_args

from simulator.config import Algorithm

_EPS = 1e-9
#: what a penalty's window does when the penalty ends (:class:`PenaltyCooldown`)
PENALTY_WINDOWS = ("restart", "continue")


class Decision(NamedTuple):
    """One limiter's answer for one request (a named tuple: built on every request, and a
    tuple is several times cheaper to build than a frozen dataclass).

    ``remaining`` is the budget left *after* this request if it is allowed; ``reset_s``
    is the time until the budget is fully restored; ``retry_after_s`` is the exact wait
    until the next request would be allowed (0 when allowed); ``delay_s`` is how long an
    admitted request waits in a queue before it is served (leaky bucket only).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float
    window_s: float
    delay_s: float = 0.0


class Limiter:
    """Base: ``limit`` requests per ``window_s`` seconds."""

    #: count refused requests too (set by :func:`make_limiter`)
    refusals_count = False

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit must be >= 0 and window_s > 0")
        self.limit = limit
        self.window_s = window_s

    def peek(self, now: float) -> Decision:
        raise NotImplementedError

    def commit(self, now: float) -> None:
        raise NotImplementedError

    def refuse(self, now: float) -> None:
        """Record this limiter's own refusal; most algorithms do not care."""

    def count_refused(self, now: float) -> None:
        """Count a refused request as if it had been taken (``refusals_count``)."""
        self.commit(now)

    def check(self, now: float) -> Decision:
        """Peek, then commit or refuse; the answer reflects the state after the request."""
        decision = self.peek(now)
        if decision.allowed:
            self.commit(now)
            return decision
        self.refuse(now)
        if self.refusals_count:
            self.count_refused(now)
        return self.peek(now)


class FixedWindow(Limiter):
    """``limit`` requests per window; the window opens at the first request after the
    previous one closed (like GitHub's hourly window), so a rested limiter always grants
    a full burst and ``reset_s`` is the time until the window closes."""

    def __init__(self, limit: int, window_s: float) -> None:
        super().__init__(limit, window_s)
        self.start: float | None = None
        self.count = 0

    def _roll(self, now: float) -> None:
        if self.start is None or now >= self.start + self.window_s - _EPS:
            self.start = None
            self.count = 0

    def peek(self, now: float) -> Decision:
        self._roll(now)
        start = now if self.start is None else self.start
        reset = start + self.window_s - now
        if self.count < self.limit:
            return Decision(True, self.limit, self.limit - self.count - 1, reset, 0.0,
                            self.window_s)
        return Decision(False, self.limit, 0, reset, reset, self.window_s)

    def commit(self, now: float) -> None:
        self._roll(now)
        if self.start is None:
            self.start = now
        self.count += 1


class SlidingWindow(Limiter):
    """Sliding *log*: the times of the admitted requests in the last ``window_s`` are kept,
    so the count is exact (a sliding counter would interpolate between two fixed windows).
    A refused caller may retry when the oldest logged request ages out."""

    def __init__(self, limit: int, window_s: float) -> None:
        super().__init__(limit, window_s)
        self.log: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.log and self.log[0] + self.window_s <= now + _EPS:
            self.log.popleft()

    def peek(self, now: float) -> Decision:
        self._expire(now)
        used = len(self.log)
        if used < self.limit:
            reset = self.window_s  # the request taken now is the newest
            return Decision(True, self.limit, self.limit - used - 1, reset, 0.0, self.window_s)
        oldest_out = self.log[0] + self.window_s - now if self.log else 0.0
        reset = self.log[-1] + self.window_s - now if self.log else 0.0
        return Decision(False, self.limit, 0, reset, oldest_out, self.window_s)

    def commit(self, now: float) -> None:
        self._expire(now)
        self.log.append(now)


class TokenBucket(Limiter):
    """Bucket of ``limit`` tokens (the burst), refilled continuously at
    ``limit / window_s`` tokens per second; a request takes one token."""

    def __init__(self, limit: int, window_s: float) -> None:
        super().__init__(limit, window_s)
        self.rate = limit / window_s
        self.tokens = float(limit)
        self.updated: float | None = None

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(float(self.limit), self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def peek(self, now: float) -> Decision:
        self._refill(now)
        if self.tokens >= 1.0 - _EPS:
            left = self.tokens - 1.0
            reset = (self.limit - left) / self.rate if self.rate else 0.0
            return Decision(True, self.limit, max(0, math.floor(left + _EPS)), reset, 0.0,
                            self.window_s)
        wait = (1.0 - self.tokens) / self.rate if self.rate else math.inf
        reset = (self.limit - self.tokens) / self.rate if self.rate else math.inf
        return Decision(False, self.limit, 0, reset, wait, self.window_s)

    def commit(self, now: float) -> None:
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1.0)

    def count_refused(self, now: float) -> None:
        """A counted refusal takes a token it does not have: the bucket goes into debt,
        so a client retrying faster than the refill is never let through."""
        self._refill(now)
        self.tokens -= 1.0


class LeakyBucket(Limiter):
    """Leaky bucket as a *queue*: requests are served one every ``window_s / limit``
    seconds; up to ``limit`` may wait (the one served now included), later ones are
    refused. An admitted request carries ``delay_s``, its wait in the queue, which the
    server sleeps before answering - so, unlike a token bucket, a burst is smoothed into
    growing latency rather than answered at once (that is what lets a mapper tell them
    apart)."""

    def __init__(self, limit: int, window_s: float) -> None:
        super().__init__(limit, window_s)
        self.interval = window_s / limit if limit else math.inf
        self.next_free: float = -math.inf  # when the queue's last request has been served

    def peek(self, now: float) -> Decision:
        if self.limit == 0:
            return Decision(False, 0, 0, 0.0, math.inf, self.window_s)
        depart = max(now, self.next_free)
        wait = depart - now
        capacity_wait = (self.limit - 1) * self.interval
        if wait <= capacity_wait + _EPS:
            queued_after = math.ceil((wait + self.interval - _EPS) / self.interval)
            return Decision(True, self.limit, max(0, self.limit - queued_after),
                            wait + self.interval, 0.0, self.window_s, delay_s=wait)
        retry = wait - capacity_wait
        return Decision(False, self.limit, 0, wait, retry, self.window_s)

    def commit(self, now: float) -> None:
        self.next_free = max(now, self.next_free) + self.interval


class SlidingWindowCounter(Limiter):
    """Sliding-window *counter* (HAProxy's ``http_req_rate(<period>)`` stick-table
    counter, the ``limits`` library's sliding-window counter): two counts, the current
    period's and the previous one's, weighted by the part of the period still to run::

        rate = current + floor(previous x (time left in the period) / period)

    A request is allowed while ``rate < limit``. ``aligned``: periods are aligned to the
    clock (``floor(now / period)``, like ``limits``); otherwise anchored at the first
    request, rolling on by whole periods, and anchored afresh after two idle periods
    (HAProxy's ``freq_ctr``). After a burst the first success waits for the period's end,
    and then requests come back one by one as the previous period's weight decays."""

    def __init__(self, limit: int, window_s: float, aligned: bool = False) -> None:
        super().__init__(limit, window_s)
        self.aligned = aligned
        self.start: float | None = None
        self.current = 0
        self.previous = 0

    def _roll(self, now: float) -> None:
        period = self.window_s
        if self.aligned:
            start = math.floor(now / period + _EPS) * period
            if self.start is not None and start < self.start + period - _EPS:
                return
            near = self.start is not None and start < self.start + 2 * period - _EPS
            self.previous = self.current if near else 0
            self.current = 0
            self.start = start
            return
        if self.start is None or now < self.start + period - _EPS:
            return
        if now >= self.start + 2 * period - _EPS:
            self.start, self.current, self.previous = None, 0, 0   # anchored afresh
            return
        self.previous, self.current = self.current, 0
        self.start += period

    def _left(self, now: float) -> float:
        return self.window_s if self.start is None else self.start + self.window_s - now

    def _rate(self, now: float) -> int:
        weighted = math.floor(self.previous * self._left(now) / self.window_s + _EPS)
        return self.current + weighted

    def _until_empty(self, now: float, current: int) -> float:
        """Seconds until the counted requests no longer weigh (the rate reads 0)."""
        left, period = self._left(now), self.window_s
        if current > 0:   # into the next period, until floor(current x left' / p) = 0
            return left + period - period / current
        if self.previous > 0:
            return max(0.0, left - period / self.previous)
        return 0.0

    def _wait(self, now: float) -> float:
        """Seconds until ``rate < limit`` (``floor(x) < limit`` exactly when ``x < limit``)."""
        if self.limit == 0:
            return math.inf
        left, period = self._left(now), self.window_s
        if self.current >= self.limit:   # only the next period, as the weight decays
            return left + max(0.0, period - self.limit * period / self.current)
        room = self.limit - self.current
        return max(0.0, left - room * period / self.previous) if self.previous else 0.0

    def peek(self, now: float) -> Decision:
        self._roll(now)
        rate = self._rate(now)
        if rate < self.limit:
            return Decision(True, self.limit, self.limit - rate - 1,
                            self._until_empty(now, self.current + 1), 0.0, self.window_s)
        return Decision(False, self.limit, 0, self._until_empty(now, self.current),
                        self._wait(now), self.window_s)

    def commit(self, now: float) -> None:
        self._roll(now)
        if self.start is None:
            self.start = math.floor(now / self.window_s + _EPS) * self.window_s \
                if self.aligned else now
        self.current += 1


class PenaltyCooldown(FixedWindow):
    """Fixed window, but the first refusal starts a penalty of ``penalty_s`` during which
    everything is refused; with ``extends`` every refused retry during the penalty
    restarts it (punishing clients that ignore Retry-After). When the penalty ends the
    window starts afresh (``window = "restart"``), or runs on (``"continue"``, a penalty
    box as many APIs write it): a penalty shorter than the window then ends inside the
    same, still full, window, and the next request starts another penalty."""

    def __init__(self, limit: int, window_s: float, penalty_s: float,
                 extends: bool = False, window: str = "restart") -> None:
        super().__init__(limit, window_s)
        if window not in PENALTY_WINDOWS:
            raise ValueError(f"unknown penalty window {window!r}; use one of "
                             f"{', '.join(PENALTY_WINDOWS)}")
        self.penalty_s = penalty_s
        self.extends = extends
        self.restarts = window == "restart"
        self.penalty_until: float | None = None

    def _in_penalty(self, now: float) -> bool:
        if self.penalty_until is None:
            return False
        if now >= self.penalty_until - _EPS:
            self.penalty_until = None
            if self.restarts:
                self.start = None
                self.count = 0
            return False
        return True

    def peek(self, now: float) -> Decision:
        if self._in_penalty(now) and self.penalty_until is not None:
            wait = self.penalty_until - now
            return Decision(False, self.limit, 0, wait, wait, self.window_s)
        return super().peek(now)

    def refuse(self, now: float) -> None:
        if self.penalty_s <= 0:
            return
        if self._in_penalty(now):
            if self.extends:
                self.penalty_until = now + self.penalty_s
            return
        self.penalty_until = now + self.penalty_s


class NoLimit(Limiter):
    """Never refuses (``algorithm = "none"``); no rate-limit headers are sent for it."""

    def __init__(self, limit: int = 0, window_s: float = 1.0) -> None:
        super().__init__(max(limit, 0), window_s)

    def peek(self, now: float) -> Decision:
        return Decision(True, self.limit, self.limit, 0.0, 0.0, self.window_s)

    def commit(self, now: float) -> None:
        pass


#: The kinds :func:`make_limiter` builds (the names: secton_harness.ratelimit_model).
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)


def make_limiter(algorithm: str, limit: int, window_s: float, penalty_s: float = 0.0,
                 penalty_extends: bool = False, *, refusals_count: bool = False,
                 aligned: bool = False, penalty_window: str = "restart") -> Limiter:
    """A fresh limiter for one scope (a key, an org) and one endpoint budget."""
    limiter: Limiter
    if algorithm == "fixed_window":
        limiter = FixedWindow(limit, window_s)
    elif algorithm == "sliding_window":
        limiter = SlidingWindow(limit, window_s)
    elif algorithm == "sliding_window_counter":
        limiter = SlidingWindowCounter(limit, window_s, aligned)
    elif algorithm == "token_bucket":
        limiter = TokenBucket(limit, window_s)
    elif algorithm == "leaky_bucket":
        limiter = LeakyBucket(limit, window_s)
    elif algorithm == "penalty_cooldown":
        limiter = PenaltyCooldown(limit, window_s, penalty_s, penalty_extends, penalty_window)
    elif algorithm == "none":
        return NoLimit(limit, window_s)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of "
                         f"{', '.join(ALGORITHMS)}")
    limiter.refusals_count = refusals_count
    return limiter
