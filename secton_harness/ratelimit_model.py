"""The rate-limit mapper's result, ``ratelimit.json``: its file name, its figures, the
algorithm names and the confidence levels, each defined here once, and a typed model of
the file. In the core because three jobs read it: the mapper writes it
(``loadtests/ratelimit``), the probe exporter re-exports it as gauges (``probes``), the
report shows its card (``reports``).

The model is what the mapper validates before writing and what readers parse with;
unknown keys are kept (``extra="allow"``: evidence, observations and checks are free-form
and older files may carry more), but a figure of the wrong type is an error.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict

RESULT_FILE = "ratelimit.json"

#: The limiter algorithms, by name: what the mapper tells apart, and (with ``none``) the
#: kinds the reference server runs (``simulator/config.py``). Written here only.
LimiterAlgorithm = Literal["fixed_window", "sliding_window", "sliding_window_counter",
                           "token_bucket", "leaky_bucket", "penalty_cooldown"]
#: Every algorithm the mapper can name: a limiter's, or ``unknown`` when it cannot tell (or
#: the steady runs contradicted the algorithm it read from the bursts).
Algorithm = Literal[LimiterAlgorithm, "unknown"]
LIMITER_ALGORITHMS: tuple[str, ...] = get_args(LimiterAlgorithm)
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

#: Confidence levels, lowest first (docs/ratelimit.md "Confidence" says what each promises).
CONFIDENCE = ("low", "medium", "high")
Confidence = Literal["low", "medium", "high"]

#: The numeric figures of a scope and their units (gauges' ``quantity`` label, policy
#: tolerances, the dashboards' columns).
QUANTITY_UNITS = {"burst": "requests", "sustained_per_min": "requests/min",
                  "cooldown_s": "s", "full_recovery_s": "s"}
QUANTITIES: tuple[str, ...] = tuple(QUANTITY_UNITS)
#: The yes/no figures of a scope (``--expect`` may promise each).
FLAGS = ("penalty_extends", "refusals_count", "shared_across_endpoints")
#: The figures shown on a limit card, in order (the mapper's and the report's).
CARD_FIELDS = (*QUANTITIES, "algorithm", *FLAGS, "confidence", "retry_after")
SCOPES = ("key", "org")
#: The card's figures in words, with their unit where the value has none (the report's
#: card; ratelimit.json and summary.json keep the field names).
FIGURE_WORDS = {"burst": "burst (requests)", "sustained_per_min": "sustained rate",
                "cooldown_s": "cooldown", "full_recovery_s": "full recovery",
                "penalty_extends": "retries during a block extend it",
                "refusals_count": "refused requests count against the budget",
                "shared_across_endpoints": "one budget across endpoints",
                "retry_after": "Retry-After"}
#: The figures a report's verdict banner names for each scope: its size and its rate.
HEADLINE_FIGURES = QUANTITIES[:2]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class SustainedBound(_Open):
    """What the steady runs proved when they did not verify a number: ``at_least`` (the
    fastest run without a 429), ``at_most`` (the slowest with one), the unverified
    ``estimate`` and ``why``."""

    at_least: float | None = None
    at_most: float | None = None
    estimate: float | None = None
    why: str


class BurstBound(_Open):
    """A first burst a bound (``--max-requests``, ``--max-duration``) cut short before
    any 429: the burst is at least ``at_least`` requests; ``burst`` itself stays null."""

    at_least: int
    why: str


class RetryAfter(_Open):
    #: true when any of the scope's 429s carried Retry-After, false when its 429s came
    #: without it, null when no 429 of the scope was seen
    present: bool | None = False
    mean_error_s: float | None = None
    max_error_s: float | None = None


class ScopeResult(_Open):
    """One scope (``key`` or ``org``) of ``ratelimit.json``."""

    burst: int | None = None
    burst_bound: BurstBound | None = None
    #: false when the given keys cannot reach the scope's limit (an org above what its
    #: keys may send together): then no figure is reported, with the reason in evidence
    reachable: bool | None = None
    sustained_per_min: float | None = None
    sustained_bound: SustainedBound | None = None
    cooldown_s: float | None = None
    full_recovery_s: float | None = None
    algorithm: Algorithm = "unknown"
    penalty_extends: bool | None = None
    refusals_count: bool | None = None
    shared_across_endpoints: bool | None = None
    retry_after: RetryAfter | None = None
    confidence: Confidence = "low"
    #: figures reported without verification (as bounds, never as measured numbers)
    unverified: list[str] = []
    evidence: dict[str, Any] = {}


class RatelimitResult(_Open):
    """The whole file: target, cost, and the scopes mapped."""

    target: str
    requests_sent: int
    duration_s: float | None = None
    scopes: dict[Literal["key", "org"], ScopeResult]
    cost: dict[str, Any] = {}
    stopped_by: str | None = None


def parse_result(data: Any) -> RatelimitResult:
    """A parsed ``ratelimit.json`` as the model (pydantic ``ValidationError``, a
    ``ValueError``, when it is not that shape)."""
    return RatelimitResult.model_validate(data)
