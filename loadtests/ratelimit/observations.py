"""The mapper's observations of one scope, typed: what the phases measured (``phases``),
what the driver adds (cycles, side checks, rests, verification), what the fingerprints
read (``fingerprints``). Stored as plain JSON in ``ratelimit.json``'s ``observations`` (clock
values ``t_*`` dropped), so these are ``TypedDict``s: the type checker sees every key's
name and type, and the file stays the same JSON.

Times named ``t*`` are on the transport's monotonic clock (seconds); ``*_s`` are
durations; counts are requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict


class Burst(TypedDict):
    """Fired at ``--max-rps`` until the first 429 (``phases.summarize_burst``)."""

    sent: int
    allowed: int
    queued: int
    errors: int
    t0: float
    t_first_429: float | None
    refused: bool
    last_allowed_s: float
    first_429_s: float | None
    retry_after_s: float | None
    reset_s: float | None
    header_limit: int | None
    header_window_s: float | None
    refusal_limit: int | None
    refusal_window_s: float | None
    t_last_sent: float
    key_refused: NotRequired[bool]   # org scope: the first 429 was a key's own


class Cooldown(TypedDict):
    """Growing-gap probes from the first 429 to the first success (``phases.cooldown``)."""

    probes: int
    last_fail_s: float
    success_s: float
    cooldown_s: float
    last_gap_s: float
    prev_gap_s: float
    first_probe_ok: bool
    t_success: float
    t_recovered: float
    retry_after: list[tuple[float, float]]


class ReturnShape(TypedDict):
    """A few fast requests right after the first success: all allowed, or refused."""

    sent: int
    allowed: int
    key_refused: int
    t_last: float


class Refill(TypedDict):
    """Single successes after refusals (``phases.return_rate``)."""

    probes: int
    successes: int
    rate_per_s: float | None
    step_s: float
    first_interval_s: float
    t_last: float


#: Windows and penalties: rest, one request, a quiet gap, a burst, its cooldown and the
#: recovery shape after it (``return``: a Python keyword, hence the functional syntax).
SplitCycle = TypedDict("SplitCycle", {
    "u0": float, "gap_s": float, "burst": Burst, "ext_probe_s": float | None,
    "cooldown": Cooldown, "return": ReturnShape}, total=False)


class SecondBurst(TypedDict, total=False):
    """Buckets and counters: a second burst 2.5 periods later, and its cooldown; the
    cooldown of a third, when the first two looked like a bucket's."""

    burst: Burst
    cooldown: Cooldown
    more_cooldowns_s: list[float]


class SteadyRun(TypedDict):
    """A steady run at ``factor`` × the estimate (``phases.steady``)."""

    rate_per_min: float
    sent: int
    refused: bool
    first_429_at: int | None
    key_refused: int
    duration_s: float
    late_s: float                # the latest send behind its schedule
    factor: NotRequired[float]   # set by the verification, not by the run


class Verification(TypedDict, total=False):
    """The steady runs' outcome (``verify.verify_sustained``)."""

    runs: list[SteadyRun]
    verified: bool
    estimate_per_min: float
    at_least_per_min: float | None
    at_most_per_min: float | None
    unverified: str


class ScopeObservations(TypedDict, total=False):
    """Everything measured for one scope; absent keys were not reached (a bound, or a
    phase the limiter's shape did not need)."""

    burst_phase: str
    burst_a: Burst
    burst_unrested: Burst
    rest_check: dict[str, Any]
    cooldown_a: Cooldown
    return_a: ReturnShape
    rate: Refill
    bucket_b: SecondBurst
    cycle_b: SplitCycle
    endpoints: dict[str, Any]
    sibling: str
    sibling_refused: bool
    sibling_limit: int | None
    outsider: str
    isolated: bool
    rest_after_s: float
    refusal_test: dict[str, Any]
    verify: Verification
    unreachable: str
    stopped_by: str
    stopped_why: str        # what the bound cut short, in words
    burst_stopped: Burst    # a first burst the bound cut short (no ``burst_a`` then)
    rest_refused: dict[str, Any]   # a rest probe's 429 {status, retry_after_s}, wait cut


@dataclass
class Reading:
    """What one family's fingerprint reads from the observations: the algorithm, the
    figures (``sustained_per_min`` is the estimate the steady runs then verify), and the
    evidence for it. ``family`` picks how the verification runs (bucket, counter, window,
    penalty)."""

    family: str
    algorithm: str
    burst: int
    sustained_per_min: float
    cooldown_s: float
    full_recovery_s: float
    confidence: str = "high"
    penalty_extends: bool = False
    penalty_s: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
