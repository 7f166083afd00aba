"""The mapper's phases for one scope (one key, or several keys of one org in rotation).

Each phase sends the fewest requests that answer its question and returns plain
observations (times relative to the phase's anchor, counts), which
:mod:`loadtests.ratelimit.infer` turns into figures:

- ``rest``: the first request of a burst doubles as the rest probe; when its rate-limit
  headers say the budget is not full it waits the announced reset and probes again;
- ``burst``: requests fired at ``--max-rps`` (not waiting for answers, so a leaky bucket's
  queue cannot slow us down) until the first 429 arrives;
- ``cooldown``: probes at geometrically growing gaps (``min_step * growth**k``) from the
  first 429 until a success, so the answer is within ``(growth-1)/2`` of the truth while
  costing O(log) probes; a penalty that retries extend ends only once a gap exceeds it,
  which is exactly how it is detected;
- ``recovery``: right after the first success, three requests at ``--max-rps``: all allowed
  means the budget came back at once (windows, penalty); refusals mean it returns one by
  one (buckets), whose rate ``sustained`` then measures with a fine probe grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import cycle
from typing import Any

import gevent
import gevent.event

from loadtests.ratelimit.observations import (
    Burst,
    Cooldown,
    Refill,
    ReturnShape,
    SteadyRun,
)
from loadtests.ratelimit.transport import BoundReached, Hit, Transport
from secton_harness.endpoints import MODELS
from secton_harness.keys import ApiKey

RETURN_PROBES = 3


@dataclass
class ScopeRunner:
    """Runs phases for one scope against a :class:`Transport`."""

    transport: Transport
    keys: list[ApiKey]
    endpoint: str = MODELS.name
    label: str | None = None           # phase label override (the org scope uses "org")
    min_step: float = 0.03
    growth: float = 1.12
    max_burst: int = 5000
    fast_answer_s: float = 0.05
    # org scope: the key limit as the headers announce it (from the key scope), so a 429
    # a key's own limit gave is told apart from the org's and never read as the org's
    # answer; ``key_rest_s`` is how long such a key is left alone (its window).
    key_limit: int | None = None
    key_rest_s: float = 1.0
    scope_limit: int | None = None     # the limit this scope's own refusals announce
    _rotation: Any = field(init=False, repr=False)
    _exhausted: dict[str, float] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rotation = cycle(self.keys)
        self.min_step = max(self.min_step, 2 * self.transport.interval)

    def _phase(self, name: str) -> str:
        return self.label or name

    def next_key(self) -> ApiKey:
        """The next key in rotation whose own budget is not known to be spent (org scope);
        when every key is spent, wait for the first to come back."""
        now = self.transport.now()
        for _ in range(len(self.keys)):
            key = next(self._rotation)
            if self._exhausted.get(key.alias, 0.0) <= now:
                return key
        alias, until = min(self._exhausted.items(), key=lambda item: item[1])
        self.transport.sleep_until(until, "a spent key's own limit to lift")
        return next(k for k in self.keys if k.alias == alias)

    def _attributable(self) -> bool:
        return (self.key_limit is not None and len(self.keys) > 1
                and self.scope_limit != self.key_limit)

    def key_refused(self, hit: Hit) -> bool:
        """A 429 announcing the key's limit, not this (org) scope's: the key's own answer."""
        return self._attributable() and hit.refused and hit.limit == self.key_limit

    def note(self, hit: Hit) -> None:
        """Leave a key alone once its own budget is known spent (a key-limit 429, or a
        success whose headers show the key with nothing remaining)."""
        if not self._attributable() or not hit.done or hit.limit != self.key_limit:
            return
        if self.key_refused(hit) or (hit.ok and hit.remaining == 0):
            wait = min(hit.reset_s or math.inf, hit.retry_after_s or math.inf,
                       self.key_rest_s)
            self._exhausted[hit.key] = hit.t + wait + 0.02

    # ------------------------------------------------------------------ rest
    def rest_probe(self, attempts: int = 3) -> Hit:
        """One request proving the limiter is rested (headers allowing); part of the burst."""
        hit = self.transport.send(self.next_key(), self._phase("rest"),
                                      self.endpoint, step="rest")
        for _ in range(attempts):
            rested = hit.ok and (hit.limit is None or hit.remaining is None
                                 or hit.remaining >= hit.limit - 1)
            if rested:
                return hit
            wait = hit.retry_after_s if not hit.ok else hit.reset_s
            try:
                self.transport.sleep_until(self.transport.now() + (wait or 1.0) + 0.05,
                                           "the announced reset")
            except BoundReached as stop:
                if hit.refused:   # the scope's own 429: what it announced is kept
                    stop.rest_refusal = {"status": hit.status,
                                         "retry_after_s": hit.retry_after_s}
                raise
            hit = self.transport.send(self.next_key(), self._phase("rest"),
                                      self.endpoint, step="rest")
        return hit

    # ------------------------------------------------------------------ burst
    def burst(self, first: Hit | None = None, step: str = "burst") -> Burst:
        """Fire until the first 429; ``first`` is the rest probe that opened the burst
        (``step="drain"``: a burst that only empties a bucket before a verification run)."""
        refused = gevent.event.Event()

        def done(hit: Hit) -> None:
            if hit.refused:
                refused.set()

        hits: list[Hit] = [first] if first is not None else []
        try:
            while not refused.is_set() and len(hits) < self.max_burst:
                hits.append(self.transport.fire(self.next_key(), self._phase(step),
                                                self.endpoint, on_done=done, step=step))
                gevent.sleep(0)
        except BoundReached as stop:
            # what the cut burst saw is kept: its requests were sent, and without a 429
            # they still prove a lower bound on the burst
            settle(hits)
            stop.burst = summarize_burst(hits) if hits else None
            raise
        settle(hits)
        for hit in hits:
            self.note(hit)
        summary = summarize_burst(hits)
        if self.label and summary["refusal_limit"] is not None:
            # a key's own 429 in rotation comes after about len(keys) x its limit; one
            # after about one key's worth is the org's, whatever number it announces
            summary["key_refused"] = (self.key_limit is not None and len(self.keys) > 1
                                      and summary["refusal_limit"] == self.key_limit
                                      and summary["allowed"] > self.key_limit + 1)
            if not summary["key_refused"]:
                self.scope_limit = summary["refusal_limit"]
        return summary

    # ------------------------------------------------------------------ cooldown
    def cooldown(self, t_first_429: float, first_gap: float | None = None,
                 anchor: float | None = None) -> Cooldown:
        """Probe at growing gaps from the first 429 until a success; ``first_gap`` after
        ``anchor`` (default the first 429; the last refusal sent, for an extending
        penalty that every refusal restarts)."""
        gap = first_gap if first_gap is not None else self.min_step
        at = (anchor if anchor is not None else t_first_429) + gap
        probes: list[Hit] = []
        last_fail = t_first_429
        gaps: list[float] = []
        while True:
            self.transport.sleep_until(at, "the next cooldown probe")
            hit = self.probe("cooldown")
            probes.append(hit)
            gaps.append(hit.t - (anchor if anchor is not None and len(probes) == 1
                                 else last_fail))
            if hit.ok or not hit.done:
                break
            if hit.refused:
                last_fail = hit.t
            gap = max(self.min_step, (self.growth - 1) * (hit.t - t_first_429))
            at = hit.t + gap
        success = probes[-1].t
        return {
            "probes": len(probes),
            "last_fail_s": last_fail - t_first_429,
            "success_s": success - t_first_429,
            "cooldown_s": ((last_fail + success) / 2) - t_first_429,
            "last_gap_s": gaps[-1],
            "prev_gap_s": gaps[-2] if len(gaps) > 1 else 0.0,
            "first_probe_ok": len(probes) == 1,
            "t_success": success,
            "t_recovered": (last_fail + success) / 2,
            "retry_after": [(h.t - t_first_429, h.retry_after_s) for h in probes
                            if h.refused and h.retry_after_s is not None],
        }

    # ------------------------------------------------------------------ recovery
    def return_shape(self) -> ReturnShape:
        """Right after the first success: how many of a few fast requests are allowed."""
        hits: list[Hit] = []
        answers: list[Hit] = []
        for _ in range(len(self.keys) + 1):
            batch = [self.transport.fire(self.next_key(), self._phase("recovery"),
                                         self.endpoint, step="recovery")
                     for _ in range(RETURN_PROBES - len(answers))]
            settle(batch)
            hits += batch
            for hit in batch:
                self.note(hit)
            answers += [h for h in batch if not self.key_refused(h)]
            if len(answers) >= RETURN_PROBES or any(h.refused for h in answers):
                break
        return {"sent": len(answers), "allowed": sum(h.ok or not h.done for h in answers),
                "key_refused": len(hits) - len(answers), "t_last": hits[-1].t}

    def return_rate(self, t_from: float, successes: int = 4,
                    max_probes: int = 80) -> Refill:
        """How fast single requests come back: two growing-gap searches give the interval
        roughly, then a grid of an eighth of it times ``successes`` more returns; the rate
        is taken from the grid successes only: (n-1) / (t_n - t_1)."""
        first = self.cooldown(t_from)
        second = self.cooldown(first["t_success"])
        probes = first["probes"] + second["probes"]
        interval = second["cooldown_s"]
        step = max(interval / 8, self.transport.interval)
        hits: list[Hit] = []
        at = second["t_success"] + step
        while probes < max_probes:
            # only returns after the grid's first refusal count (earlier ones are backlog);
            # a queued (leaky) success answers late: one in flight > 50 ms counts as allowed
            if len(_after_refusal(self._grid(hits), self.transport.now())) >= successes:
                break
            self.transport.sleep_until(at, "the next refill probe")
            hits.append(self.transport.fire(self.next_key(), self._phase("sustained"),
                                            self.endpoint, step="sustained"))
            probes += 1
            at += step
        settle(hits)
        times = _after_refusal(self._grid(hits), math.inf)
        span = times[-1] - times[0] if times else 0.0
        rate = (len(times) - 1) / span if len(times) > 1 and span > 0 else (
            1 / interval if interval > 0 else None)
        return {"probes": probes, "successes": len(times), "rate_per_s": rate,
                "step_s": step, "first_interval_s": interval,
                "t_last": self.transport.now()}

    # ------------------------------------------------------------------ verification
    def steady(self, rate_per_s: float, count: int, step: str = "verify") -> SteadyRun:
        """``count`` requests at a steady ``rate_per_s``, stopping at this scope's first
        429 (a key's own refusal in the org scope is set aside): does the rate hold?"""
        interval = 1.0 / rate_per_s
        at = self.transport.now() + interval
        hits: list[Hit] = []
        refused: Hit | None = None
        late = 0.0
        while len(hits) < count and refused is None:
            self.transport.sleep_until(at, "the next steady request")
            hits.append(self.transport.fire(self.next_key(), self._phase(step),
                                            self.endpoint, step=step))
            # a send behind its time is followed by catch-up sends closer than the
            # interval: the limiter then saw a faster rate than the one asked
            late = max(late, hits[-1].t - at)
            at += interval
            refused = next((h for h in hits if h.refused and not self.key_refused(h)), None)
            for hit in hits:
                self.note(hit)
        settle(hits)
        refused = next((h for h in hits if h.refused and not self.key_refused(h)), None)
        return {"rate_per_min": round(60 * rate_per_s, 2), "sent": len(hits),
                "refused": refused is not None,
                "first_429_at": hits.index(refused) + 1 if refused is not None else None,
                "key_refused": sum(self.key_refused(h) for h in hits),
                "duration_s": round(hits[-1].t - hits[0].t, 3) if hits else 0.0,
                "late_s": round(late, 3)}

    def _grid(self, hits: list[Hit]) -> list[Hit]:
        for hit in hits:
            self.note(hit)
        return [h for h in hits if not self.key_refused(h)]

    def probe(self, step: str) -> Hit:
        """One probe, waited for until it answers or is plainly queued (unanswered three
        times as long as a refusal takes, +30 ms): a leaky bucket serves a queued request
        late, but it was admitted at once, and the search must not wait the queue out."""
        for _ in range(len(self.keys) + 1):
            hit = self.transport.fire(self.next_key(), self._phase(step), self.endpoint,
                                      step=step)
            patience = 3 * self.fast_answer_s + 0.03
            while not hit.done and self.transport.now() - hit.t < patience:
                gevent.sleep(0.001)
            if hit.refused:
                self.fast_answer_s = min(self.fast_answer_s, hit.latency_s)
            self.note(hit)
            if not self.key_refused(hit):
                break
        return hit


def _after_refusal(hits: list[Hit], now: float) -> list[float]:
    """Send times of the admitted grid probes that follow the grid's first refusal."""
    first = next((i for i, h in enumerate(hits) if h.refused), None)
    if first is None:
        return []
    return [h.t for h in hits[first:] if h.ok or (not h.done and now - h.t > 0.05)]


def settle(hits: list[Hit]) -> None:
    """Wait briefly for answers. A request still unanswered three times the fastest
    answer (+30 ms) after it was sent is queued by a leaky bucket (it will be served):
    callers count it as allowed rather than wait out the queue."""
    fastest = min((h.latency_s for h in hits if h.done), default=0.05)
    deadline = 3 * fastest + 0.03
    step = 0.002
    waited = 0.0
    while waited < deadline and not all(h.done for h in hits):
        gevent.sleep(step)
        waited += step


def summarize_burst(hits: list[Hit]) -> Burst:
    """Counts and times of a burst, in send order: successes before the first refusal."""
    hits = sorted(hits, key=lambda h: h.t)
    t0 = hits[0].t
    first_refused = next((i for i, h in enumerate(hits) if h.refused), None)
    before = hits if first_refused is None else hits[:first_refused]
    allowed = [h for h in before if h.ok or not h.done]
    t_fail = hits[first_refused].t if first_refused is not None else None
    first_429 = hits[first_refused] if first_refused is not None else None
    return {
        "sent": len(hits),
        "allowed": len(allowed),
        "queued": sum(1 for h in before if not h.done),
        "errors": sum(1 for h in before if h.done and not h.ok),
        "t0": t0,
        "t_first_429": t_fail,
        "refused": first_refused is not None,
        "last_allowed_s": (allowed[-1].t - t0) if allowed else 0.0,
        "first_429_s": (t_fail - t0) if t_fail is not None else None,
        "retry_after_s": first_429.retry_after_s if first_429 else None,
        "reset_s": first_429.reset_s if first_429 else None,
        "header_limit": next((h.limit for h in allowed if h.limit is not None), None),
        "header_window_s": next((h.window_s for h in allowed if h.window_s is not None), None),
        # the refusing scope's own announcement (the headers of an allowed request show
        # whichever scope has least left, often not the one being measured)
        "refusal_limit": first_429.limit if first_429 else None,
        "refusal_window_s": first_429.window_s if first_429 else None,
        "t_last_sent": hits[-1].t,
    }
