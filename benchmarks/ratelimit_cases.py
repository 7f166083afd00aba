"""The rate-limit accuracy matrix: every limiter kind the harness knows — the reference server's
algorithms (and its sliding-window counter, counted refusals, penalty box) and real
limiters nobody on the project wrote (nginx ``limit_req``, HAProxy stick tables, the
``limits`` library; ``tests/real_limiters.py`` starts them) — over several configurations
each, with the truth of every figure the mapper reports.

A truth is what the configuration implies, from outside: ``burst`` (``None``: the org is
not reachable by the keys given), the sustained rate, the algorithm names that are right,
the cooldown (exact, a window's ``window - first 429``, an interval, or no single true
answer — e.g. when it depends on how the client probes — with the reason) and the
properties ``penalty_extends``/``refusals_count`` as behaviours (retrying extends the
block; a fixed window that counts refusals shows no difference: false).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: cooldown truths: ("exact", s) | ("window", window_s) | ("within", lo, hi) | ("none", why)
Cooldown = tuple[Any, ...]
PROBING = ("none", "depends on the probing: retries during the block extend it")
PHASE = ("none", "the wait to the period's end depends on the phase the burst fell in")
BUCKETS = frozenset({"token_bucket", "leaky_bucket"})


@dataclass(frozen=True)
class Truth:
    burst: int | None
    per_min: float | None
    algorithms: frozenset[str]
    cooldown: Cooldown
    properties: dict[str, bool | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """``target``: ``server`` (``setup`` is its ``[limits]``), ``nginx``, ``haproxy``,
    ``limits`` or ``penalty_box`` (``setup``: the starter's arguments). ``org``: the org
    scope's truth, measured over three keys of one org (plus one of another org), or
    ``None`` for a key scope alone."""

    name: str
    target: str
    setup: dict[str, Any]
    key: Truth
    org: Truth | None = None


def window(limit: int, window_s: float, algorithm: str, **props: bool | None) -> Truth:
    return Truth(limit, 60 * limit / window_s, frozenset({algorithm}),
                 ("window", window_s), props)


def bucket(limit: int, rate: float, **props: bool | None) -> Truth:
    return Truth(limit, 60 * rate, BUCKETS, ("within", 0.0, 1 / rate), props)


def counter(limit: int, period_s: float, cooldown: Cooldown = PHASE,
            **props: bool | None) -> Truth:
    return Truth(limit, 60 * limit / period_s, frozenset({"sliding_window_counter"}),
                 cooldown, props)


def penalty(limit: int, window_s: float, cooldown: Cooldown, **props: bool | None) -> Truth:
    return Truth(limit, 60 * limit / window_s, frozenset({"penalty_cooldown"}), cooldown,
                 props)


UNREACHABLE = Truth(None, None, frozenset(), ("none", "not reachable"))
OFF = {"limit": 10_000, "window_s": 1.0}   # an org limit out of the way


def spec(limit: int, window_s: float, **extra: Any) -> dict[str, Any]:
    return {"limit": limit, "window_s": window_s, **extra}


def server(algorithm: str, key: dict[str, Any], org: dict[str, Any] | None = None,
           headers: bool = True) -> dict[str, Any]:
    return {"algorithm": algorithm, "headers": headers, "key": key, "org": org or OFF}


CONTINUE = {"penalty_window": "continue"}
CASES: list[Case] = [
    # ---------------------------------------------------------------- reference server
    Case("fixed_window 10/1s, org 24/2s", "server",
         server("fixed_window", spec(10, 1.0), spec(24, 2.0)),
         window(10, 1.0, "fixed_window"), window(24, 2.0, "fixed_window")),
    Case("fixed_window 1/1s", "server", server("fixed_window", spec(1, 1.0)),
         window(1, 1.0, "fixed_window")),
    Case("fixed_window 10/1s counting refusals, no headers", "server",
         server("fixed_window", spec(10, 1.0, refusals_count=True), headers=False),
         window(10, 1.0, "fixed_window", refusals_count=False)),
    Case("sliding_window 10/1s, org 24/2s", "server",
         server("sliding_window", spec(10, 1.0), spec(24, 2.0)),
         window(10, 1.0, "sliding_window"), window(24, 2.0, "sliding_window")),
    Case("sliding_window 10/1s counting refusals, no headers", "server",
         server("sliding_window", spec(10, 1.0, refusals_count=True), headers=False),
         Truth(10, 600, frozenset({"sliding_window"}), PROBING, {"refusals_count": True})),
    Case("token_bucket 20/2s, org 45/3s", "server",
         server("token_bucket", spec(20, 2.0), spec(45, 3.0)),
         bucket(20, 10.0), bucket(45, 15.0)),
    Case("token_bucket 50/5s", "server", server("token_bucket", spec(50, 5.0)),
         bucket(50, 10.0)),
    Case("token_bucket 10/1s counting refusals (debt)", "server",
         server("token_bucket", spec(10, 1.0, refusals_count=True)),
         Truth(10, 600, BUCKETS, PROBING, {"refusals_count": True})),
    Case("leaky_bucket 10/1s, org 24/2s", "server",
         server("leaky_bucket", spec(10, 1.0), spec(24, 2.0)),
         bucket(10, 10.0), bucket(24, 12.0)),
    Case("penalty 8/1s + 0.6s, org 20/2s + 0.6s", "server",
         server("penalty_cooldown", spec(8, 1.0, penalty_s=0.6), spec(20, 2.0, penalty_s=0.6)),
         penalty(8, 1.0, ("exact", 0.6), penalty_extends=False),
         penalty(20, 2.0, ("exact", 0.6), penalty_extends=False)),
    Case("penalty extends 8/1s + 0.3s", "server",
         server("penalty_cooldown", spec(8, 1.0, penalty_s=0.3, penalty_extends=True)),
         penalty(8, 1.0, ("exact", 0.3), penalty_extends=True, refusals_count=True)),
    Case("penalty box 8/1.5s + 0.6s (window longer), no headers", "server",
         server("penalty_cooldown", spec(8, 1.5, penalty_s=0.6, **CONTINUE), headers=False),
         penalty(8, 1.5, ("none", "a probe after the penalty, inside the still-full window, "
                          "starts another: the wait depends on the probing"),
                 penalty_extends=False, refusals_count=False)),
    Case("penalty box 8/1s + 1.5s (cooldown longer), no headers, org 20/1s", "server",
         server("penalty_cooldown", spec(8, 1.0, penalty_s=1.5, **CONTINUE),
                spec(20, 1.0, penalty_s=1.5, **CONTINUE), headers=False),
         penalty(8, 1.0, ("exact", 1.5), penalty_extends=False, refusals_count=False),
         penalty(20, 1.0, ("exact", 1.5), penalty_extends=False, refusals_count=False)),
    Case("counter anchored 10/1s, headers", "server",
         server("sliding_window_counter", spec(10, 1.0)), counter(10, 1.0)),
    Case("counter aligned 8/1s, org 12/1s (below the keys' 24), no headers", "server",
         server("sliding_window_counter", spec(8, 1.0, aligned=True),
                spec(12, 1.0, aligned=True), headers=False),
         counter(8, 1.0), counter(12, 1.0)),
    Case("counter anchored 10/1s counting refusals, no headers", "server",
         server("sliding_window_counter", spec(10, 1.0, refusals_count=True), headers=False),
         counter(10, 1.0, PROBING, refusals_count=True)),
    Case("counter aligned 10/1s counting refusals, no headers", "server",
         server("sliding_window_counter", spec(10, 1.0, aligned=True, refusals_count=True),
                headers=False),
         counter(10, 1.0, PROBING, refusals_count=True)),
    Case("fixed_window 6/1s, org 40/1s (above the keys' 18), headers", "server",
         server("fixed_window", spec(6, 1.0), spec(40, 1.0)),
         window(6, 1.0, "fixed_window"), UNREACHABLE),
    Case("fixed_window 6/1s, org 40/1s (above the keys' 18), no headers", "server",
         server("fixed_window", spec(6, 1.0), spec(40, 1.0), headers=False),
         window(6, 1.0, "fixed_window"), UNREACHABLE),
    # ---------------------------------------------------------------- real limiters
    Case("nginx limit_req 10r/s burst=9", "nginx", {"rate": 10.0, "burst": 9},
         bucket(10, 10.0)),
    Case("nginx limit_req 5r/s burst=2", "nginx", {"rate": 5.0, "burst": 2}, bucket(3, 5.0)),
    Case("nginx limit_req 2r/s burst=0", "nginx", {"rate": 2.0, "burst": 0}, bucket(1, 2.0)),
    Case("nginx limit_req 20r/s burst=49", "nginx", {"rate": 20.0, "burst": 49},
         bucket(50, 20.0)),
    Case("HAProxy http_req_rate 10/1s, admitted only", "haproxy",
         {"limit": 10, "period_s": 1.0, "counts_refused": False},
         counter(10, 1.0, refusals_count=False)),
    Case("HAProxy http_req_rate 20/2s, admitted only", "haproxy",
         {"limit": 20, "period_s": 2.0, "counts_refused": False},
         counter(20, 2.0, refusals_count=False)),
    Case("HAProxy http_req_rate 10/1s, track then deny (counts refused)", "haproxy",
         {"limit": 10, "period_s": 1.0, "counts_refused": True},
         counter(10, 1.0, PROBING, refusals_count=True)),
    Case("limits moving window 10/1s", "limits",
         {"kind": "moving", "key": spec(10, 1), "org": None},
         window(10, 1.0, "sliding_window")),
    Case("limits sliding counter 10/1s", "limits",
         {"kind": "sliding_counter", "key": spec(10, 1), "org": None}, counter(10, 1.0)),
    Case("limits sliding counter 8/1s, org 12/1s (below the keys' 24)", "limits",
         {"kind": "sliding_counter", "key": spec(8, 1), "org": spec(12, 1)},
         counter(8, 1.0), counter(12, 1.0)),
    Case("limits sliding counter 6/1s, org 40/1s (above the keys' 18)", "limits",
         {"kind": "sliding_counter", "key": spec(6, 1), "org": spec(40, 1)},
         counter(6, 1.0), UNREACHABLE),
    Case("penalty box 8/1.5s + 0.6s (window longer), Retry-After only", "penalty_box",
         {"kind": "penalty", "key": spec(8, 1.5, cooldown_s=0.6), "org": None},
         penalty(8, 1.5, ("none", "a probe after the penalty, inside the still-full window, "
                          "starts another: the wait depends on the probing"),
                 penalty_extends=False, refusals_count=False)),
    Case("penalty box 8/1s + 1.5s (cooldown longer), Retry-After only", "penalty_box",
         {"kind": "penalty", "key": spec(8, 1.0, cooldown_s=1.5), "org": None},
         penalty(8, 1.0, ("exact", 1.5), penalty_extends=False, refusals_count=False)),
]
QUICK = ("fixed_window 10/1s, org 24/2s", "token_bucket 20/2s, org 45/3s",
         "counter anchored 10/1s, headers", "penalty box 8/1.5s + 0.6s (window longer), "
         "no headers", "HAProxy http_req_rate 10/1s, track then deny (counts refused)",
         "nginx limit_req 5r/s burst=2")
