"""Sliding-window counters (HAProxy ``http_req_rate``, the ``limits`` library's
sliding-window counter): ``rate = current + previous × (time left in the period / period)``.
Single successes return at the rate like a bucket, but the first success after a burst
waits for the period to end: a bucket has a token back within 1/rate, a counter only at the
period's boundary. Two bursts at different phases of the period (the driver rests 2.5
periods between them), so one ending near a boundary cannot hide it."""

from __future__ import annotations

from typing import Any

from loadtests.ratelimit.observations import Reading, ScopeObservations


def bucket_cooldown_limit(rate: float) -> float:
    """The longest first-success wait a bucket can show: its next token comes within
    1/rate of the 429; the cooldown search brackets it within 6 % or 15 ms (its 30 ms
    minimum step), so anything above 1.2/rate + 30 ms is not a bucket."""
    return 1.2 / rate + 0.03


def counter_evidence(obs: ScopeObservations, rate: float) -> dict[str, Any] | None:
    """The cooldowns of the bursts when one is longer than a bucket's could be; None when
    all are a bucket's. A counter's first success waits for the period's end, at a
    random phase, so each burst hides it with probability about ``1.2 N⁻¹`` (the limit
    over the burst): the driver makes up to three bursts."""
    second = obs.get("bucket_b") or {}
    cooldowns = [obs["cooldown_a"]["cooldown_s"]]
    if second.get("cooldown"):
        cooldowns.append(second["cooldown"]["cooldown_s"])
    cooldowns += second.get("more_cooldowns_s", [])
    longest = max(cooldowns)
    if longest <= bucket_cooldown_limit(rate):
        return None
    return {"longest_cooldown_s": round(longest, 3),
            "cooldowns_s": [round(c, 3) for c in cooldowns],
            "second_burst_allowed": second["burst"]["allowed"] if "burst" in second else None}


def read_counter(obs: ScopeObservations, rate: float, counter: dict[str, Any]) -> Reading:
    """``burst`` = the larger burst (a counter refills nothing during it); ``sustained =
    60·rate`` (the refill grid reads a little high: the verification settles it); full
    recovery one period after the boundary, when the previous period no longer weighs."""
    burst = int(max(obs["burst_a"]["allowed"], counter["second_burst_allowed"] or 0))
    cooldown = obs["cooldown_a"]["cooldown_s"]
    return Reading(
        family="counter", algorithm="sliding_window_counter", burst=burst,
        sustained_per_min=60.0 * rate, cooldown_s=cooldown,
        full_recovery_s=cooldown + burst / rate,
        evidence={**counter, "why": (
            f"single successes return at 1/rate ({1 / rate:.3f}s), but the first one came "
            f"{counter['longest_cooldown_s']:.3f}s after the 429: a bucket refills within "
            "1/rate; a counter waits for its period to end, then lets the previous "
            "period's weight decay")})
