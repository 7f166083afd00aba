"""The documented rate-limit policy (``--expect policy.toml``) and its check against a map.

Each scope (``[key]``, ``[org]``) lists the figures the API documents. A numeric figure is
either a bare number (default tolerance) or a table ``{value, tolerance}`` where the
tolerance is absolute (``1``, ``0.25``) or relative (``"10%"``)::

    [key]
    burst = 10                                   # ± 1 request by default
    sustained_per_min = { value = 600, tolerance = "10%" }
    cooldown_s = 1.0                             # ± max(10 %, 0.25 s) by default
    algorithm = ["token_bucket", "leaky_bucket"] # any of these
    shared_across_endpoints = true

Checks are data: each becomes a line that shows the resolved values, e.g.
``key.burst (12) == 10 ± 1: fail``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from secton_harness.config import Model, load_toml_model
from secton_harness.ratelimit_model import ALGORITHMS, FLAGS, QUANTITY_UNITS

#: Default tolerance by a figure's unit: (absolute, relative); the larger one applies.
_TOLERANCE_BY_UNIT: dict[str, tuple[float, float]] = {
    "requests": (1.0, 0.0), "requests/min": (0.0, 0.10), "s": (0.25, 0.10)}
#: Default tolerance per figure: a burst ± 1, a rate ± 10 %, a time ± max(0.25 s, 10 %).
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    quantity: _TOLERANCE_BY_UNIT[unit] for quantity, unit in QUANTITY_UNITS.items()}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_tolerance(value: Any) -> tuple[float, float]:
    """``(absolute, relative)`` from ``0.25`` or ``"10%"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a tolerance; use e.g. 1, 0.25 or '10%'")
    if isinstance(value, int | float) and value >= 0:
        return float(value), 0.0
    if isinstance(value, str) and (match := _PERCENT.match(value)):
        return 0.0, float(match.group(1)) / 100
    raise ValueError(f"{value!r} is not a tolerance; use e.g. 1, 0.25 or '10%'")


class Figure(Model):
    """One documented number with its tolerance (``None``: the figure's default)."""

    value: float = Field(ge=0)
    tolerance: float | str | None = None

    @field_validator("tolerance")
    @classmethod
    def _valid(cls, value: Any) -> Any:
        if value is not None:
            parse_tolerance(value)
        return value


class ScopePolicy(Model):
    """What the documentation promises for one scope; every field optional."""

    burst: Figure | float | None = None
    sustained_per_min: Figure | float | None = None
    cooldown_s: Figure | float | None = None
    full_recovery_s: Figure | float | None = None
    algorithm: str | list[str] | None = None
    shared_across_endpoints: bool | None = None
    penalty_extends: bool | None = None
    refusals_count: bool | None = None
    retry_after_max_error_s: float | None = Field(None, ge=0)

    @field_validator("algorithm")
    @classmethod
    def _known(cls, value: Any) -> Any:
        for name in [value] if isinstance(value, str) else (value or []):
            if name not in ALGORITHMS:
                raise ValueError(f"{name!r} is not an algorithm; use one of "
                                 f"{', '.join(ALGORITHMS)}")
        return value


class Policy(Model):
    key: ScopePolicy | None = None
    org: ScopePolicy | None = None


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file (BadInput naming file and field on a problem)."""
    return load_toml_model(path, Policy, "policy file")


def _figure(raw: Figure | float, name: str) -> tuple[float, float]:
    """(expected value, allowed absolute difference)."""
    figure = raw if isinstance(raw, Figure) else Figure(value=raw)
    absolute, relative = (parse_tolerance(figure.tolerance) if figure.tolerance is not None
                          else DEFAULT_TOLERANCES[name])
    return figure.value, max(absolute, relative * figure.value)


def _word(value: Any) -> str:
    """A measured or promised value as the policy file spells it (TOML's true/false), or
    "not measured"; never Python's True/None or a list's repr."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_scope(name: str, policy: ScopePolicy, measured: dict[str, Any]) -> dict[str, Any]:
    """Every documented figure of one scope: expected, measured, tolerance, pass."""
    checks: dict[str, Any] = {}
    for figure in DEFAULT_TOLERANCES:
        raw = getattr(policy, figure)
        if raw is None:
            continue
        expected, allowed = _figure(raw, figure)
        got = measured.get(figure)
        passed = got is not None and abs(got - expected) <= allowed + 1e-9
        shown = "unverified" if got is None and figure in (
            measured.get("unverified") or []) else _word(got)
        bound = measured.get(f"{figure}_bound") or {}
        if got is None and figure == "burst" and bound.get("at_least") is not None:
            shown = f"at least {bound['at_least']}, unverified"
        checks[figure] = {"expected": expected, "tolerance": round(allowed, 4),
                          "measured": got, "pass": passed,
                          "line": f"{name}.{figure} ({shown}) == {expected:g} ± {allowed:g}"}
    if policy.algorithm is not None:
        allowed_algos = [policy.algorithm] if isinstance(policy.algorithm, str) else list(
            policy.algorithm)
        got = measured.get("algorithm")
        checks["algorithm"] = {"expected": allowed_algos, "measured": got,
                               "pass": got in allowed_algos,
                               "line": f"{name}.algorithm ({_word(got)}) in "
                                       f"{' | '.join(allowed_algos)}"}
    for prop in FLAGS:
        promised = getattr(policy, prop)
        if promised is None:
            continue
        got = measured.get(prop)
        checks[prop] = {"expected": promised, "measured": got, "pass": got == promised,
                        "line": f"{name}.{prop} ({_word(got)}) == {_word(promised)}"}
    if policy.retry_after_max_error_s is not None:
        got = (measured.get("retry_after") or {}).get("max_error_s")
        checks["retry_after_max_error_s"] = {
            "expected": policy.retry_after_max_error_s, "measured": got,
            "pass": got is not None and got <= policy.retry_after_max_error_s,
            "line": f"{name}.retry_after.max_error_s ({_word(got)}) <= "
                    f"{policy.retry_after_max_error_s:g}"}
    return checks


#: why a documented scope is missing when nothing else is known: no keys for it
NO_ORG_KEYS = "needs two or more keys of one org"


def check_policy(policy: Policy, scopes: dict[str, dict[str, Any]],
                 not_measured: dict[str, str] | None = None) -> dict[str, Any]:
    """Checks per scope; a documented scope that was not measured fails, naming why
    (``not_measured[scope]``: e.g. the bound that stopped the run before it)."""
    result: dict[str, Any] = {"passed": True, "scopes": {}}
    for name in ("key", "org"):
        scope_policy = getattr(policy, name)
        if scope_policy is None:
            continue
        measured = scopes.get(name)
        if measured is None:
            why = (not_measured or {}).get(name) or NO_ORG_KEYS
            checks = {"measured": {"pass": False,
                                   "line": f"{name} scope documented but not measured "
                                           f"({why})"}}
        else:
            checks = check_scope(name, scope_policy, measured)
        result["scopes"][name] = checks
        if not all(c["pass"] for c in checks.values()):
            result["passed"] = False
    return result
