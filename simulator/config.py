"""The reference server's configuration: typed, frozen, validated once at load.

Field names are a contract (tests and docs name them). A missing file section takes the
defaults below; ``load_config(None)`` loads the packaged ``default.toml``.

Example::

    seed = 42
    [limits]
    algorithm = "token_bucket"
    [limits.key]
    limit = 10
    window_s = "1s"
    [[keys]]
    alias = "a1"
    key = "sk-demo-alpha-1"
    org = "org_alpha"
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from secton_harness.config import Duration, Model, load_toml_model
from secton_harness.ratelimit_model import LimiterAlgorithm

#: The server's limiter kinds: every algorithm the mapper names, or ``none`` (no limit).
Algorithm = Literal[LimiterAlgorithm, "none"]
Fraction = float

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


class LimitSpec(Model):
    """One scope's limit: ``limit`` requests per ``window_s`` (token bucket: capacity,
    refilled at ``limit`` per ``window_s``). ``penalty_s``/``penalty_extends``/
    ``penalty_window`` only matter for ``penalty_cooldown``, ``aligned`` only for
    ``sliding_window_counter``; ``refusals_count`` for any algorithm (see
    ``simulator/limiters.py``)."""

    limit: int = Field(60, ge=0)
    window_s: Duration = Field(60.0, gt=0)
    penalty_s: Duration = 0.0
    penalty_extends: bool = False
    penalty_window: Literal["restart", "continue"] = "restart"
    aligned: bool = False
    refusals_count: bool = False


class LimitsConfig(Model):
    """How requests are limited; ``endpoints = "shared"`` puts /v1/models and chat on one
    budget, ``"per_endpoint"`` gives each its own."""

    algorithm: Algorithm = "fixed_window"
    endpoints: Literal["shared", "per_endpoint"] = "shared"
    headers: bool = True
    retry_after: bool = True
    key: LimitSpec = LimitSpec.model_validate({})
    org: LimitSpec = LimitSpec.model_validate({"limit": 120})

    @field_validator("algorithm")
    @classmethod
    def _buildable(cls, algorithm: str) -> str:
        """The names come from the core (every algorithm the mapper names); a name the
        server has no limiter for yet is a config error, not a failure at start."""
        from simulator.limiters import make_limiter

        make_limiter(algorithm, 1, 1.0)  # ValueError naming the kinds it builds
        return algorithm


class LatencyConfig(Model):
    """Injected latency: ``base_ms + per_token_ms * completion_tokens + jitter``; jitter is
    exponential with mean ``jitter_ms`` (``jitter = "uniform"``: uniform on 0..jitter_ms).
    /v1/models gets ``base_ms`` + jitter only. All zero means no sleep at all."""

    base_ms: float = Field(5.0, ge=0)
    per_token_ms: float = Field(0.5, ge=0)
    jitter_ms: float = Field(5.0, ge=0)
    jitter: Literal["exponential", "uniform"] = "exponential"


class FaultsConfig(Model):
    """Fractions (0..1) of *successful* responses replaced by a fault; see faults.py."""

    error_500: Fraction = Field(0.0, ge=0, le=1)
    error_503: Fraction = Field(0.0, ge=0, le=1)
    slow: Fraction = Field(0.0, ge=0, le=1)
    slow_s: Duration = 2.0
    malformed_json: Fraction = Field(0.0, ge=0, le=1)
    wrong_content_type: Fraction = Field(0.0, ge=0, le=1)
    drop_connection: Fraction = Field(0.0, ge=0, le=1)
    schema_break: Fraction = Field(0.0, ge=0, le=1)
    auth_open: bool = False


class AdminConfig(Model):
    """``GET /_admin/stats`` and ``POST /_admin/reset``, loopback clients only."""

    enabled: bool = False


class KeyConfig(Model):
    """An API key the server accepts; ``limit``/``window_s`` override ``[limits.key]``."""

    alias: str = Field(min_length=1)
    key: str = Field(min_length=1)
    org: str = Field(min_length=1)
    limit: int | None = Field(None, ge=0)
    window_s: Duration | None = None


class OrgConfig(Model):
    """A per-org override of ``[limits.org]``."""

    id: str = Field(min_length=1)
    limit: int | None = Field(None, ge=0)
    window_s: Duration | None = None


class SimulatorConfig(Model):
    """The whole server config (see the module docstring for an example)."""

    seed: int = 42
    max_body_bytes: int = Field(1024 * 1024, ge=1)
    limits: LimitsConfig = LimitsConfig.model_validate({})
    latency: LatencyConfig = LatencyConfig.model_validate({})
    faults: FaultsConfig = FaultsConfig.model_validate({})
    admin: AdminConfig = AdminConfig.model_validate({})
    keys: list[KeyConfig] = Field(default_factory=list)
    orgs: list[OrgConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SimulatorConfig:
        for field, values in (("alias", [k.alias for k in self.keys]),
                              ("key", [k.key for k in self.keys])):
            seen: set[str] = set()
            for index, value in enumerate(values):
                if value in seen:
                    shown = value if field == "alias" else "(a key)"
                    raise ValueError(f"keys[{index}].{field}: {shown} appears twice; "
                                     f"every key needs a unique {field}")
                seen.add(value)
        ids = [o.id for o in self.orgs]
        for index, org_id in enumerate(ids):
            if org_id in ids[:index]:
                raise ValueError(f"orgs[{index}].id: {org_id!r} appears twice")
        return self

    def key_limit(self, key: KeyConfig) -> LimitSpec:
        """The effective limit of one key (its override over ``[limits.key]``)."""
        return _override(self.limits.key, key.limit, key.window_s)

    def org_limit(self, org_id: str) -> LimitSpec:
        """The effective limit of one org (its ``[[orgs]]`` entry over ``[limits.org]``)."""
        for org in self.orgs:
            if org.id == org_id:
                return _override(self.limits.org, org.limit, org.window_s)
        return self.limits.org


def _override(base: LimitSpec, limit: int | None, window_s: float | None) -> LimitSpec:
    if limit is None and window_s is None:
        return base
    return base.model_copy(update={
        "limit": base.limit if limit is None else limit,
        "window_s": base.window_s if window_s is None else window_s,
    })


def load_config(path: str | Path | None = None) -> SimulatorConfig:
    """Load a server config; ``None`` loads the packaged default. Raises BadInput."""
    return load_toml_model(path or DEFAULT_CONFIG, SimulatorConfig, "simulator config")
