"""The probes' part of the harness config file: targets and the ``[probes]`` section.

A harness config (see ``examples/harness.toml``) names one or several targets and how to
probe them::

    [[targets]]
    label = "staging"                  # the `target` label of every metric and record
    url = "https://staging.secton.example/v1"
    timeout = "10s"                    # optional: caps every check's timeout on this target
    keys = "staging-keys.toml"         # optional: this target's keys (else --keys / env)

    [probes]
    interval = "30s"                   # default for every check
    jitter = 0.1                       # +-10 % of the interval, so probes never beat in step
    model = "copilot-zero"
    ratelimit_files = ["runs/rl/ratelimit.json"]  # mapper results the exporter re-exports

    [probes.checks.chat_completion]    # per-check overrides
    interval = "5m"                    # chat probes cost tokens: run them less often
    degraded = "5s"
    failed = "20s"

Any other top-level table is an error naming it (a ``[probe]`` typo must not load as the
defaults).
Overrides, strongest first: ``--target URL`` (label ``default`` or ``--label``), then the
environment variable ``SECTON_BASE_URL``, then ``[[targets]]``. Keys: ``--keys FILE``, a
target's own ``keys``, then ``SECTON_API_KEY`` (see :func:`secton_harness.keys.resolve_keys`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from probes.checks import CHECKS
from secton_harness.config import Duration, HttpUrl, Model, model_from_dict, read_toml
from secton_harness.errors import BadInput

ENV_BASE_URL = "SECTON_BASE_URL"
_LABEL_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

#: Every check the probes know, in the order they are shown (the rows of probes.checks).
CHECK_NAMES: tuple[str, ...] = tuple(CHECKS)


class CheckDefaults(Model):
    """Built-in schedule and thresholds of one check (overridden by ``[probes.checks.X]``)."""

    interval: float
    timeout: float
    degraded: float
    failed: float


#: Chat-based checks cost tokens and are slow by nature: longer interval and thresholds.
BUILTIN_DEFAULTS: dict[str, CheckDefaults] = {
    name: CheckDefaults(interval=30.0, timeout=10.0, degraded=1.0, failed=5.0)
    for name in CHECK_NAMES
} | {
    "chat_completion": CheckDefaults(interval=300.0, timeout=30.0, degraded=5.0, failed=20.0),
    "org_isolation": CheckDefaults(interval=300.0, timeout=30.0, degraded=5.0, failed=20.0),
}


class TargetConfig(Model):
    """One API to probe; ``label`` becomes the ``target`` label (never the URL)."""

    label: str
    url: HttpUrl
    timeout: Duration | None = Field(default=None, gt=0)
    keys: str | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _LABEL_RE.match(value):
            raise ValueError(f"{value!r} must be 1-64 of A-Z a-z 0-9 _ . : -")
        return value


class CheckConfig(Model):
    """Per-check overrides; any field left out takes the check's built-in default."""

    enabled: bool = True
    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)
    degraded: Duration | None = Field(default=None, gt=0)
    failed: Duration | None = Field(default=None, gt=0)


class ProbesConfig(Model):
    """The ``[probes]`` section."""

    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)
    jitter: float = Field(default=0.1, ge=0, le=0.5)
    degraded: Duration | None = Field(default=None, gt=0)
    failed: Duration | None = Field(default=None, gt=0)
    key_alias: str | None = None
    model: str = "copilot-zero"
    prompt: str = "Reply with one word: ping"
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    category: str = "chat"
    sort: str = "name"
    expected_models: list[str] | None = None
    schema_dir: str | None = None
    #: ``ratelimit.json`` files (or globs, or mapper run folders) the exporter re-exports.
    ratelimit_files: list[str] = Field(default_factory=list)
    checks: dict[str, CheckConfig] = Field(default_factory=dict)

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: dict[str, CheckConfig]) -> dict[str, CheckConfig]:
        for name in value:
            if name not in CHECK_NAMES:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECK_NAMES)}")
        return value

    def settings(self, name: str) -> CheckSettings:
        """The effective settings of check ``name``: override > [probes] > built-in."""
        base = BUILTIN_DEFAULTS[name]
        own = self.checks.get(name, CheckConfig())
        degraded = _first(own.degraded, self.degraded, base.degraded)
        failed = _first(own.failed, self.failed, base.failed)
        return CheckSettings(
            name=name, enabled=own.enabled,
            interval=_first(own.interval, self.interval, base.interval),
            timeout=_first(own.timeout, self.timeout, base.timeout),
            degraded=degraded, failed=max(failed, degraded))

    @property
    def models_expected(self) -> list[str]:
        """Models the category-filtered list must contain (default: the chat probe's model)."""
        return [self.model] if self.expected_models is None else list(self.expected_models)


class CheckSettings(Model):
    """Resolved schedule and thresholds of one check (what the scheduler runs)."""

    name: str
    enabled: bool
    interval: float
    timeout: float
    degraded: float
    failed: float


class HarnessConfig(Model):
    """The harness config file: its targets and the probes' settings (nothing else)."""

    targets: list[TargetConfig] = Field(default_factory=list)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)

    @model_validator(mode="after")
    def _unique_labels(self) -> HarnessConfig:
        labels = [t.label for t in self.targets]
        for index, label in enumerate(labels):
            if label in labels[:index]:
                raise ValueError(f"targets[{index}].label: {label!r} appears twice; "
                                 "labels are unique")
        return self

    def enabled_checks(self) -> list[CheckSettings]:
        return [s for s in (self.probes.settings(n) for n in CHECK_NAMES) if s.enabled]


def _first(*values: float | None) -> float:
    return next(float(v) for v in values if v is not None)


def load_harness_config(path: str | os.PathLike[str] | None) -> HarnessConfig:
    """The probes' view of a harness config file (defaults only when ``path`` is None).

    Relative ``keys``, ``schema_dir`` and ``ratelimit_files`` paths are resolved against
    the file's folder.
    """
    if path is None:
        return HarnessConfig()
    data = read_toml(path, "harness config")
    config = model_from_dict(HarnessConfig, data, str(path))
    base = Path(path).resolve().parent
    targets = [t.model_copy(update={"keys": str(base / t.keys)}) if t.keys else t
               for t in config.targets]
    probes = config.probes
    if probes.schema_dir:
        probes = probes.model_copy(update={"schema_dir": str(base / probes.schema_dir)})
    if probes.ratelimit_files:
        probes = probes.model_copy(update={"ratelimit_files": [
            str(base / Path(f).expanduser()) for f in probes.ratelimit_files]})
    return config.model_copy(update={"targets": targets, "probes": probes})


def apply_overrides(config: HarnessConfig, target_url: str | None = None,
                    label: str | None = None,
                    env: Mapping[str, str] | None = None) -> HarnessConfig:
    """``--target`` (else ``SECTON_BASE_URL``) replaces the config's targets with one.

    Raises :class:`BadInput` when no target is known at all.
    """
    env = os.environ if env is None else env
    url, source = target_url, "--target"
    if url is None and env.get(ENV_BASE_URL, "").strip():
        url, source = env[ENV_BASE_URL].strip(), ENV_BASE_URL
    if url is not None:
        data: dict[str, Any] = {"label": label or "default", "url": url}
        target = model_from_dict(TargetConfig, data, source)
        config = config.model_copy(update={"targets": [target]})
    elif label is not None:
        raise BadInput("--label: only meaningful with --target URL")
    if not config.targets:
        raise BadInput(f"no target: pass --target URL, set {ENV_BASE_URL}, or add "
                       "[[targets]] to the --config file")
    return config
