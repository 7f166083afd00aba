"""Per-key and per-org budgets combined: a request passes only if both scopes allow it.

Both limiters are *peeked* first and only committed when both allow, so a refusal by
the org does not spend the key's budget (and vice versa) — unless a scope has
``refusals_count``: it counts every request it sees, whichever scope refused it (HAProxy's
classic recipe tracks each request in every table before any ``deny``). Limiters are created lazily
per (scope, id, endpoint budget); with ``endpoints = "shared"`` every endpoint uses the
budget ``"all"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from simulator.config import KeyConfig, LimitSpec, SimulatorConfig
from simulator.limiters import Decision, Limiter, make_limiter


class Verdict(NamedTuple):
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
        self.shared = config.limits.endpoints == "shared"
        self.limiters: dict[tuple[str, str, str], Limiter] = {}
        # (key alias, budget) -> (key limiter, org limiter): one dict lookup per request
        self.pairs: dict[tuple[str, str], tuple[Limiter, Limiter]] = {}

    def reset(self) -> None:
        """Forget every limiter: every scope is rested."""
        self.limiters.clear()
        self.pairs.clear()

    def _limiter(self, scope: str, ident: str, budget: str, spec: LimitSpec) -> Limiter:
        slot = (scope, ident, budget)
        limiter = self.limiters.get(slot)
        if limiter is None:
            limiter = make_limiter(self.config.limits.algorithm, spec.limit, spec.window_s,
                                   spec.penalty_s, spec.penalty_extends,
                                   refusals_count=spec.refusals_count, aligned=spec.aligned,
                                   penalty_window=spec.penalty_window)
            self.limiters[slot] = limiter
        return limiter

    def admit(self, key: KeyConfig, endpoint: str) -> Verdict:
        """Decide one request by ``key`` on ``endpoint`` (``models`` or ``chat``)."""
        now = self.clock()
        budget = "all" if self.shared else endpoint
        pair = self.pairs.get((key.alias, budget))
        if pair is None:
            pair = self.pairs[(key.alias, budget)] = (
                self._limiter("key", key.alias, budget, self.config.key_limit(key)),
                self._limiter("org", key.org, budget, self.config.org_limit(key.org)))
        key_limiter, org_limiter = pair
        key_peek = key_limiter.peek(now)
        org_peek = org_limiter.peek(now)
        if key_peek.allowed and org_peek.allowed:
            key_limiter.commit(now)
            org_limiter.commit(now)
            # the most restrictive: least remaining, then longest reset; the key on ties
            if (org_peek.remaining, -org_peek.reset_s) < (key_peek.remaining,
                                                          -key_peek.reset_s):
                scope, decision = "org", org_peek
            else:
                scope, decision = "key", key_peek
            return Verdict(True, decision, scope, max(key_peek.delay_s, org_peek.delay_s))
        refused = []
        for scope, limiter, peeked in (("key", key_limiter, key_peek),
                                       ("org", org_limiter, org_peek)):
            if not peeked.allowed:
                limiter.refuse(now)
            if limiter.refusals_count:   # counts every request it sees, refused or not
                limiter.count_refused(now)
            if not peeked.allowed:
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


def rate_limit_raw(decision: Decision, retry_after: bool,
                   headers: bool) -> list[tuple[bytes, bytes]]:
    """:func:`rate_limit_headers` as raw ASGI headers (lowercase names, latin-1 bytes)."""
    out: list[tuple[bytes, bytes]] = []
    if headers:
        limit, remaining = decision.limit, decision.remaining
        reset = _ceil(decision.reset_s)
        out.append((b"x-ratelimit-limit", b"%d" % limit))
        out.append((b"x-ratelimit-remaining", b"%d" % remaining))
        out.append((b"x-ratelimit-reset", b"%d" % reset))
        out.append((b"ratelimit-policy", b"%d;w=%d" % (limit, _ceil(decision.window_s))))
        out.append((b"ratelimit", b"limit=%d, remaining=%d, reset=%d"
                    % (limit, remaining, reset)))
    if retry_after and not decision.allowed:
        out.append((b"retry-after", b"%d" % max(1, _ceil(decision.retry_after_s))))
    return out


def _ceil(seconds: float) -> int:
    if math.isinf(seconds):
        return 86400
    return max(0, math.ceil(seconds - 1e-9))
