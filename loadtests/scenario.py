"""Load scenarios: what `secton-harness load` sends, how fast, for how long, judged how.

A scenario is a TOML file validated once into a frozen :class:`Scenario`; every problem is
one line naming the file and the field. Rates are *open-model* targets (requests per
second or per minute, sub-1/s allowed): the load generator sends at that rate whatever the
target's latency, and ``users`` only caps how many requests may be in flight per endpoint.
The shape multiplies every endpoint's rate over time (:meth:`Scenario.multiplier`), and
names the phase each request belongs to (:meth:`Scenario.phase_at`).

Example::

    name = "capacity"
    shape = "step"            # steady | step | spike | soak
    duration = "60s"
    arrival = "poisson"       # even | poisson
    [step]
    steps = 4
    [endpoints.models]
    rate = "20/s"
    params = [{category = "chat"}, {sort = "name"}, {}]
    [endpoints.chat]
    rate = "300/min"
    users = 20
    [thresholds]
    all = ["p95_latency_s < 2", "error_rate < 0.01"]
    chat = ["p99_latency_s < 5"]

This module imports neither Locust nor gevent: the CLI validates a scenario before it
starts anything, and reports can read one.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from loadtests.thresholds import ThresholdSet, parse_threshold
from secton_harness.config import Duration, Model, Rate, load_toml_model
from secton_harness.endpoints import BY_NAME, ENDPOINTS
from secton_harness.errors import BadInput
from secton_harness.keys import ApiKey, KeyPool

#: The cap on a load run's requests when the user gives none (``--max-requests``).
DEFAULT_MAX_REQUESTS = 1_000_000
#: Longest duration each shape accepts without the user saying so explicitly (seconds).
SHAPE_CAPS_S: dict[str, float] = {"steady": 3600.0, "step": 3600.0, "spike": 3600.0,
                                  "soak": 24 * 3600.0}
#: Upper bound of the default ``max_users`` per endpoint (and process); more must be asked
#: for explicitly, since every user holds a connection and some memory.
DEFAULT_MAX_USERS = 1000
DEFAULT_PROMPTS = (
    "Summarise the benefits of load testing in one sentence.",
    "Write a haiku about rate limits.",
    "Explain what an API key is to a new engineer.",
    "List three ways to make an HTTP service faster.",
)


class EndpointLoad(Model):
    """One endpoint's share of the load."""

    rate: Rate = Field(description="target rate, e.g. '20/s', '30/min', '0.5/s'")
    users: int | None = Field(None, ge=1, le=10000)
    max_users: int | None = Field(None, ge=1, le=10000)

    @field_validator("rate")
    @classmethod
    def _positive(cls, rate: float) -> float:
        if rate <= 0:
            raise ValueError("rate must be > 0; omit the endpoint to send none")
        return rate

    def user_count(self) -> int:
        """The starting pool: ``users`` or a default that covers 0.5 s of latency at the
        target rate (the pool grows up to :meth:`max_user_count` when every user is busy)."""
        if self.users is not None:
            return self.users
        return min(1000, max(2, math.ceil(self.rate * 0.5) + 1))

    def max_user_count(self, timeout_s: float, peak_factor: float = 1.0) -> int:
        """The cap of the pool: ``max_users`` or enough users for every request of the
        peak rate to take the whole ``timeout`` (``rate x timeout``), bounded by
        :data:`DEFAULT_MAX_USERS` and never below the starting pool."""
        if self.max_users is not None:
            return max(self.max_users, self.user_count())
        needed = math.ceil(self.rate * peak_factor * timeout_s) + 1
        return max(self.user_count(), min(DEFAULT_MAX_USERS, needed))


class ModelsLoad(EndpointLoad):
    """``GET /v1/models``; each request draws one ``params`` table (query parameters)."""

    params: list[dict[str, str]] = Field(default_factory=lambda: [{}], min_length=1)


class ChatLoad(EndpointLoad):
    """``POST /v1/chat/completions``; each request draws a model, a prompt and a size."""

    models: list[str] = Field(default_factory=lambda: ["copilot-zero"], min_length=1)
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), min_length=1)
    prompt_words: list[int] = Field(default_factory=lambda: [0], min_length=1)
    temperature: float | None = Field(0.7, ge=0, le=2)

    @field_validator("prompt_words")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(size < 0 or size > 100_000 for size in sizes):
            raise ValueError("each prompt size is 0..100000 words (0 = the prompt as written)")
        return sizes


class Endpoints(Model):
    models: ModelsLoad | None = None
    chat: ChatLoad | None = None

    @model_validator(mode="after")
    def _any(self) -> Endpoints:
        if all(getattr(self, endpoint.name) is None for endpoint in ENDPOINTS):
            raise ValueError("no endpoint; add " + " and/or ".join(
                f"[endpoints.{endpoint.name}]" for endpoint in ENDPOINTS))
        return self


class KeySelection(Model):
    """Which keys of the keys file the users are bound to (default: all), spread over orgs."""

    aliases: list[str] = Field(default_factory=list)
    orgs: list[str] = Field(default_factory=list)


class StepShape(Model):
    """Step ramp: ``steps`` equal steps from ``start`` x rate up to the full rate."""

    steps: int = Field(5, ge=1, le=100)
    start: float | None = Field(None, gt=0, le=1)


class SpikeShape(Model):
    """Spike: the rate times ``factor`` from ``at`` for ``length``; the rest at the rate."""

    at: Duration | None = None
    length: Duration | None = None
    factor: float = Field(5.0, gt=0, le=1000)


class Scenario(Model):
    """A whole load scenario (see the module docstring)."""

    name: str = "load"
    shape: Literal["steady", "step", "spike", "soak"] = "steady"
    duration: Duration = Field(description="how long requests are sent (required)")
    arrival: Literal["even", "poisson"] = "even"
    seed: int = 1
    timeout: Duration = Field(30.0, gt=0, le=3600)
    #: after ``duration``, how long in-flight requests may finish (default: ``timeout``);
    #: what is still open then is recorded as ``cancelled``
    drain: Duration | None = Field(None, ge=0, le=3600)
    #: a due request that cannot start within this (every user busy at ``max_users``, or
    #: the generator behind) is *dropped*: counted, never sent late
    late_tolerance: Duration = Field(1.0, gt=0, le=60)
    #: the default rate check: every endpoint must send at least this share of the
    #: requests its schedule asked for (0 = no check)
    min_rate_ratio: float = Field(0.95, ge=0, le=1)
    validate_sample: float = Field(0.1, ge=0, le=1)
    abort_on_fail: bool = False
    abort_grace: Duration = 10.0
    #: stop by itself when the target looks down: >= 90 % of the last 10 s's requests (at
    #: least 20) got no answer or a 5xx; a safe default, so a dead target is not hammered
    stop_when_down: bool = True
    max_duration: Duration | None = None
    step: StepShape = Field(default_factory=StepShape)
    spike: SpikeShape = Field(default_factory=SpikeShape)
    keys: KeySelection = Field(default_factory=KeySelection)
    endpoints: Endpoints
    thresholds: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for scope, expressions in value.items():
            if scope != "all" and scope not in BY_NAME:
                raise ValueError(f"thresholds.{scope}: unknown scope; use 'all', "
                                 f"{', '.join(repr(name) for name in BY_NAME)}")
            for expression in expressions:
                parse_threshold(expression, scope)  # ValueError names the expression
        return value

    @model_validator(mode="after")
    def _thresholds_on_loaded_endpoints(self) -> Scenario:
        """A threshold on an endpoint the scenario never sends could only fail with
        "no data" after the whole run: refuse it before."""
        loaded = self.endpoint_loads()
        for scope in self.thresholds:
            if scope in BY_NAME and scope not in loaded:
                raise ValueError(f"thresholds.{scope}: the scenario sends no {scope} "
                                 f"requests (no [endpoints.{scope}])")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> Scenario:
        if self.duration <= 0:
            raise ValueError("duration must be > 0, e.g. '60s'")
        cap = self.max_duration if self.max_duration is not None else SHAPE_CAPS_S[self.shape]
        if self.duration > cap:
            raise ValueError(f"duration {self.duration:g}s exceeds the cap of {cap:g}s for "
                             f"shape {self.shape!r}; set max_duration to allow it")
        if self.shape == "spike":
            at, length = self.spike_window()
            if at + length > self.duration:
                raise ValueError(f"spike ends at {at + length:g}s, after duration "
                                 f"{self.duration:g}s")
        return self

    # ------------------------------------------------------------------ derived

    def endpoint_loads(self) -> dict[str, EndpointLoad]:
        """The configured endpoints by name (``models``, ``chat``)."""
        found = {e.name: getattr(self.endpoints, e.name) for e in ENDPOINTS}
        return {name: load for name, load in found.items() if load is not None}

    @property
    def drain_s(self) -> float:
        """How long in-flight requests may finish after ``duration``."""
        return self.timeout if self.drain is None else self.drain

    def capped(self, max_duration_s: float) -> Scenario:
        """This scenario with its drain cut so that sending and draining end by
        ``max_duration_s`` (``load --max-duration``, a hard cap on the whole run: a 3 s
        scenario against a target trickling its answers ran 36 s under
        ``--max-duration 3s``, the default drain being the 30 s timeout). A request still
        open at the cut is recorded as ``cancelled``."""
        room = max(0.0, max_duration_s - self.duration)
        if self.drain_s <= room:
            return self
        return self.model_copy(update={"drain": room})

    def peak_factor(self) -> float:
        """The largest :meth:`multiplier` of the shape (the spike factor, else 1)."""
        return max(1.0, self.spike.factor) if self.shape == "spike" else 1.0

    def max_users_of(self, endpoint: str) -> int:
        """The pool cap of ``endpoint`` (see :meth:`EndpointLoad.max_user_count`)."""
        return self.endpoint_loads()[endpoint].max_user_count(self.timeout, self.peak_factor())

    def threshold_set(self) -> ThresholdSet:
        return ThresholdSet.parse(self.thresholds,
                                  {e.name: e.path for e in ENDPOINTS})

    def spike_window(self) -> tuple[float, float]:
        at = self.spike.at if self.spike.at is not None else self.duration / 3
        length = self.spike.length if self.spike.length is not None else self.duration / 3
        return at, length

    def multiplier(self, elapsed_s: float) -> float:
        """Factor on every endpoint's rate at ``elapsed_s`` into the run (0 after the end)."""
        if elapsed_s < 0 or elapsed_s >= self.duration:
            return 0.0
        if self.shape == "step":
            steps = self.step.steps
            start = self.step.start if self.step.start is not None else 1 / steps
            index = min(steps - 1, int(elapsed_s / (self.duration / steps)))
            return start + (1 - start) * (index / (steps - 1) if steps > 1 else 1)
        if self.shape == "spike":
            at, length = self.spike_window()
            return self.spike.factor if at <= elapsed_s < at + length else 1.0
        return 1.0

    def rate_breakpoints(self) -> list[float]:
        """Offsets (seconds) where :meth:`multiplier` changes: step and spike edges.

        The pacer finishes a gap that crosses one at the new rate (see
        ``loadtests.pacing.arrival_offsets``), so each phase gets exactly its rate.
        """
        if self.shape == "step":
            width = self.duration / self.step.steps
            return [i * width for i in range(1, self.step.steps)]
        if self.shape == "spike":
            at, length = self.spike_window()
            return [edge for edge in (at, at + length) if 0 < edge < self.duration]
        return []

    def phase_at(self, elapsed_s: float) -> str:
        """The phase label stored with each record (``step-3``, ``spike``, ``steady``...)."""
        if self.shape == "step":
            index = min(self.step.steps - 1,
                        int(max(0.0, elapsed_s) / (self.duration / self.step.steps)))
            return f"step-{index + 1}"
        if self.shape == "spike":
            at, length = self.spike_window()
            if elapsed_s < at:
                return "before"
            return "spike" if elapsed_s < at + length else "after"
        return self.shape

    def phase_windows(self) -> dict[str, tuple[float, float]]:
        """Each phase's (start, end) offsets in seconds, in order (one window per phase)."""
        edges = [0.0, *self.rate_breakpoints(), self.duration]
        windows: dict[str, tuple[float, float]] = {}
        for start, end in itertools.pairwise(edges):
            if end > start:
                windows[self.phase_at((start + end) / 2)] = (start, end)
        return windows

    def expected_requests(self, endpoint: str) -> float:
        """Requests the shape asks of ``endpoint`` over the whole duration (for checks)."""
        load = self.endpoint_loads()[endpoint]
        if self.shape == "step":
            steps = self.step.steps
            total = sum(self.multiplier((i + 0.5) * self.duration / steps) for i in range(steps))
            return load.rate * self.duration * total / steps
        if self.shape == "spike":
            _, length = self.spike_window()
            return load.rate * (self.duration + length * (self.spike.factor - 1))
        return load.rate * self.duration

    def expected_slots(self) -> dict[str, int]:
        """Per endpoint: the whole requests its schedule asks for (``expected_requests``
        rounded up: even arrivals start at offset 0, so 2.5 s at 3/s is 8 slots)."""
        return {name: math.ceil(self.expected_requests(name) - 1e-9)
                for name in self.endpoint_loads()}

    def request_caps(self, max_requests: int) -> dict[str, float]:
        """``--max-requests`` split over the endpoints in proportion to the requests each
        is expected to send (never to their user counts: one fast endpoint with 1 user
        and a slow one with 10 would give the fast one a tenth of the cap). When the
        scenario's slots fit under the cap, every endpoint's part covers its own slots."""
        slots = self.expected_slots()
        total = sum(slots.values())
        if total <= 0:
            return {name: max_requests / max(1, len(slots)) for name in slots}
        return {name: max_requests * n / total for name, n in slots.items()}


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file; any problem is one-line :class:`BadInput`."""
    return load_toml_model(path, Scenario, "scenario")


def scenario_summary(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data for run.json."""
    return scenario.model_dump(mode="json")


def spread_keys(pool: KeyPool, aliases: list[str], orgs: list[str]) -> list[ApiKey]:
    """The selected keys interleaved by org (a1, b1, a2, b2, a3...), so that users bound
    round-robin spread over every org as evenly as the pool allows."""
    keys = [pool.by_alias(alias) for alias in aliases] if aliases else list(pool)
    if orgs:
        unknown = set(orgs) - {key.org for key in keys}
        if unknown:
            raise BadInput(f"scenario keys.orgs: no key of org(s) {', '.join(sorted(unknown))}")
        keys = [key for key in keys if key.org in orgs]
    by_org: dict[str, list[ApiKey]] = {}
    for key in keys:
        by_org.setdefault(key.org, []).append(key)
    spread = [key for row in itertools.zip_longest(*by_org.values()) for key in row if key]
    if not spread:
        raise BadInput("scenario keys: the selection matches no key")
    return spread
