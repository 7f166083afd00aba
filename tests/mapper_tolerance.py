"""The issue's tolerances for a mapped scope (issue 14, docs/ratelimit.md "Confidence"):
every figure right — burst ±1 key / ±2 org, sustained ±10 %, cooldown ±max(10 %, 0.25 s),
algorithm right, properties right — or not claimed (``null`` with a bound that holds, or
``unknown``) and the confidence then not ``high``. Shared by the mapper's tests against
real limiters and against the reference server's limiter kinds."""

from __future__ import annotations

import json
from typing import Any


def right_or_honest(scope: dict[str, Any], *, burst: int, per_min: float,
                    algorithms: set[str], cooldown_s: float | None = None,
                    burst_tolerance: int = 1, **properties: Any) -> None:
    """Each figure right within tolerance, or not claimed (null + a bound that holds /
    ``unknown``) and then the confidence is not ``high``."""
    wrong: list[str] = []
    unclaimed: list[str] = []
    if scope.get("burst") is None:
        unclaimed.append("burst")
    elif abs(scope["burst"] - burst) > burst_tolerance:
        wrong.append(f"burst {scope['burst']} (truth {burst})")
    sustained = scope.get("sustained_per_min")
    if sustained is None:
        unclaimed.append("sustained_per_min")
        bound = scope.get("sustained_bound") or {}
        assert bound.get("why"), f"sustained null without a bound and why: {scope}"
        if bound.get("at_most") is not None and bound["at_most"] < 0.9 * per_min:
            wrong.append(f"sustained at_most {bound['at_most']} < truth {per_min}")
        if bound.get("at_least") is not None and bound["at_least"] > 1.1 * per_min:
            wrong.append(f"sustained at_least {bound['at_least']} > truth {per_min}")
    elif abs(sustained - per_min) > 0.1 * per_min:
        wrong.append(f"sustained {sustained}/min (truth {per_min})")
    if scope["algorithm"] == "unknown":
        unclaimed.append("algorithm")
    elif scope["algorithm"] not in algorithms:
        wrong.append(f"algorithm {scope['algorithm']} (truth {sorted(algorithms)})")
    if cooldown_s is not None and scope.get("cooldown_s") is not None and abs(
            scope["cooldown_s"] - cooldown_s) > max(0.1 * cooldown_s, 0.25):
        wrong.append(f"cooldown {scope['cooldown_s']} (truth {cooldown_s})")
    for name, truth in properties.items():
        if scope.get(name) is not None and scope.get(name) != truth:
            wrong.append(f"{name} {scope.get(name)} (truth {truth})")
    assert not wrong, f"wrong figures {wrong}, confidence {scope['confidence']}: " + \
        json.dumps(scope["evidence"], default=str)[:2500]
    if unclaimed:
        assert scope["confidence"] != "high", (unclaimed, scope["evidence"])
