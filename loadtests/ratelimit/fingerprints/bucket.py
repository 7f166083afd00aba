"""Token and leaky buckets: after a refusal single successes return at 1/rate, the first
within 1/rate of the 429 (a counter's waits for its period: ``counter``); growing burst
latency (requests queued, not refused) marks a leaky bucket."""

from __future__ import annotations

import math

import pandas as pd

from loadtests.ratelimit.observations import Reading, ScopeObservations

#: the records' column holding the mapper's sub-phase (``check`` is the probes')
STEP_COLUMN = "step"


def bucket_capacity(allowed: int, rate: float, last_allowed_s: float) -> int:
    """A bucket's capacity from a burst fired faster than it refills: the burst also got
    ``rate * duration`` refilled tokens, which are not capacity."""
    return max(1, math.ceil(allowed - rate * last_allowed_s - 0.05))


def leaky_evidence(records: pd.DataFrame | None, phase: str, rate: float,
                   capacity: int) -> tuple[bool, float | None]:
    """Did latency grow through the burst as a queue would make it (leaky bucket)?"""
    if records is None or records.empty or rate <= 0:
        return False, None
    mask = (records["phase"] == phase) & (records["status"] == 200)
    if STEP_COLUMN in records:
        mask &= records[STEP_COLUMN] == "burst"
    burst = records[mask]
    if len(burst) < 3:
        return False, None
    growth = float(burst["latency_s"].max() - burst["latency_s"].min())
    expected = (capacity - 1) / rate
    return growth > max(0.02, 0.5 * expected), growth


def read_bucket(obs: ScopeObservations, rate: float,
                records: pd.DataFrame | None) -> Reading:
    """Capacity = the burst minus the refill during it; ``sustained = 60·rate``; the
    bucket is full again ``(capacity-1)/rate`` after the first token came back."""
    burst_a, cooldown = obs["burst_a"], obs["cooldown_a"]["cooldown_s"]
    capacity = bucket_capacity(burst_a["allowed"], rate, burst_a["last_allowed_s"])
    leaky, growth = leaky_evidence(records, obs.get("burst_phase", "burst"), rate, capacity)
    reading = Reading(
        family="bucket", algorithm="leaky_bucket" if leaky else "token_bucket",
        burst=capacity, sustained_per_min=60.0 * rate, cooldown_s=cooldown,
        # tokens left at the first 429 were 1 - rate * cooldown; full = capacity again
        full_recovery_s=(capacity - 1) / rate + cooldown,
        evidence={"burst_latency_growth_s": None if growth is None else round(growth, 3),
                  "why": ("after a refusal, single successes return at 1/rate intervals, "
                          "the first within 1/rate of the 429"
                          + ("; burst latency grew like a queue" if leaky else
                             "; burst answered at once (not queued)"))})
    second = (obs.get("bucket_b") or {}).get("burst")
    if second and second["refused"]:
        again = bucket_capacity(second["allowed"], rate, second["last_allowed_s"])
        if abs(again - capacity) > 1:
            reading.confidence = "medium"
            reading.evidence["burst_mismatch"] = (f"second burst's capacity {again}, "
                                                  f"first {capacity}")
    return reading
