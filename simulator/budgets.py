"""Per-key and per-org budgets combined: a request passes only if both scopes allow it.

Both limiters are *peeked* first and only committed when both allow, so a refusal by
the org does not spend the key's budget (and vice versa). Limiters are created lazily
per (scope, id, endpoint budget); with ``endpoints = "shared"`` every endpoint uses the
budget ``"all"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simulator.config import KeyConfig, LimitSpec, SimulatorConfig
from simulator.limiters import Decision, Limiter, make_limiter


@dataclass(frozen=True, slots=True)
class Verdict:
    """The combined answer: ``decision`` is the most restrictive scope's (the refusing
    scope with the longest wait on a refusal, else the one with the least remaining),
    ``scope`` names it (``key`` or ``org``); ``delay_s`` is the longest queue wait."""

    allowed: bool
    decision: Decision
    scope: str
    delay_s: float


class Budgets:
    """All live limiters of one server."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.limiters: dict[tuple[str, str, str], Limiter] = {}

    def reset(self) -> None:
        """Forget every limiter: every scope is rested."""
        self.limiters.clear()

    def _limiter(self, scope: str, ident: str, budget: str, spec: LimitSpec) -> Limiter:
        slot = (scope, ident, budget)
        limiter = self.limiters.get(slot)
        if limiter is None:
            limiter = make_limiter(self.config.limits.algorithm, spec.limit, spec.window_s,
                                   spec.penalty_s, spec.penalty_extends)
            self.limiters[slot] = limiter
        return limiter

    def admit(self, key: KeyConfig, endpoint: str) -> Verdict:
        """Decide one request by ``key`` on ``endpoint`` (``models`` or ``chat``)."""
        now = self.clock()
        budget = "all" if self.config.limits.endpoints == "shared" else endpoint
        scoped = (
            ("key", self._limiter("key", key.alias, budget, self.config.key_limit(key))),
            ("org", self._limiter("org", key.org, budget, self.config.org_limit(key.org))),
        )
        peeks = [(scope, limiter, limiter.peek(now)) for scope, limiter in scoped]
        if all(decision.allowed for _, _, decision in peeks):
            for _, limiter, _ in peeks:
                limiter.commit(now)
            scope, _, decision = min(peeks, key=lambda p: (p[2].remaining, -p[2].reset_s))
            delay = max(d.delay_s for _, _, d in peeks)
            return Verdict(True, decision, scope, delay)
        refused = []
        for scope, limiter, decision in peeks:
            if not decision.allowed:
                limiter.refuse(now)
                refused.append((scope, limiter.peek(now)))
        scope, decision = max(refused, key=lambda p: p[1].retry_after_s)
        return Verdict(False, decision, scope, 0.0)


def rate_limit_headers(decision: Decision, retry_after: bool, headers: bool) -> dict[str, str]:
    """Headers for one response. Reset and window are integer seconds rounded *up*, so a
    client that waits them out is never early; Retry-After is at least 1."""
    out: dict[str, str] = {}
    if headers:
        reset = _ceil(decision.reset_s)
        window = _ceil(decision.window_s)
        out["X-RateLimit-Limit"] = str(decision.limit)
        out["X-RateLimit-Remaining"] = str(decision.remaining)
        out["X-RateLimit-Reset"] = str(reset)
        out["RateLimit-Policy"] = f"{decision.limit};w={window}"
        out["RateLimit"] = f"limit={decision.limit}, remaining={decision.remaining}, reset={reset}"
    if retry_after and not decision.allowed:
        out["Retry-After"] = str(max(1, _ceil(decision.retry_after_s)))
    return out


def _ceil(seconds: float) -> int:
    if math.isinf(seconds):
        return 86400
    return max(0, math.ceil(seconds - 1e-9))
