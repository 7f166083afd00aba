"""The rate-limit mapper: runs the phases for the key scope and the org scope, infers the
figures, checks them against an expected policy, writes ``ratelimit.json``.

Order: key scope (one key), then -- when the keys file holds two or more keys of one org --
the org scope (those keys in rotation, each far below its own limit), with a key of
another org as the isolation check. Each scope: cycle A (rest probe + burst, cooldown,
recovery shape), then either the refill rate (buckets) or a split cycle B (windows and
penalties). Side checks cost one request each: the other endpoint right after the first
429 (shared budget?), a sibling key of the same org (key or org limit?), a key of another
org during the org's cooldown (isolation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.ratelimit.infer import all_returned, infer_scope, scope_window
from loadtests.ratelimit.phases import ScopeRunner, settle
from loadtests.ratelimit.transport import BoundReached, Transport
from secton_harness.keys import ApiKey, KeyPool
from secton_harness.records import RecordSink

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MapperSettings:
    target: str
    endpoint: str = "models"
    max_requests: int = 2000
    max_duration_s: float = 300.0
    max_rps: float = 100.0
    min_step_s: float = 0.03
    growth: float = 1.12


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda _message: None)


def map_scope(runner: ScopeRunner, *, sibling: ApiKey | None = None,
              outsider: ApiKey | None = None, progress: Progress | None = None
              ) -> dict[str, Any]:
    """Observations for one scope; on a hard bound, what was measured plus ``stopped_by``."""
    say = _quiet(progress)
    obs: dict[str, Any] = {"burst_phase": runner.label or "burst"}
    try:
        _run_scope(runner, obs, sibling, outsider, say)
    except BoundReached as stop:
        obs["stopped_by"] = stop.bound
        say(f"stopped by {stop.bound}")
    return obs


def _run_scope(runner: ScopeRunner, obs: dict[str, Any], sibling: ApiKey | None,
               outsider: ApiKey | None, say: Progress) -> None:
    transport = runner.transport
    say("rest: probing that the limiter is rested")
    first = runner.rest_probe()
    say("burst: requests at max rate until the first 429")
    burst_a = runner.burst(first)
    obs["burst_a"] = burst_a
    if not burst_a["refused"]:
        say(f"burst: no 429 after {burst_a['sent']} requests")
        return
    if burst_a.get("key_refused"):
        obs["unreachable"] = ("the keys' own limits refused before the org's: the org limit "
                              "is above what these keys can send together")
        say(obs["unreachable"])
        return
    burst_a = _rested_burst(runner, obs, burst_a, say)
    say(f"burst: {burst_a['allowed']} allowed, first 429 at {burst_a['first_429_s']:.3f}s")
    t_f = burst_a["t_first_429"]
    say("cooldown: probing at growing gaps until a success")
    cd_a = runner.cooldown(t_f)
    obs["cooldown_a"] = cd_a
    say(f"cooldown: success after {cd_a['success_s']:.3f}s ({cd_a['probes']} probes)")
    ret_a = runner.return_shape()
    obs["return_a"] = ret_a
    if not all_returned(ret_a):
        say("recovery: budget returns one at a time; measuring the refill rate")
        obs["rate"] = runner.return_rate(ret_a["t_last"])
        side_checks(runner, obs, sibling, outsider)
        rate = obs["rate"]["rate_per_s"] or 1.0
        obs["rest_after_s"] = 1.2 * burst_a["allowed"] / rate
        return
    say("recovery: budget returned at once; split cycle to find what it is anchored to")
    c_a = cd_a["cooldown_s"]
    w_a = cd_a["t_recovered"] - burst_a["t0"]
    # a penalty extended by retries ends only once a probe gap exceeds it, so it would
    # also end after one quiet wait of that gap; a window or plain penalty would not.
    extension_signature = c_a > 3 * cd_a["last_gap_s"]
    # rested again: a window past its end; a penalty's fresh window (opened by the first
    # success) past the length its own 429 announced, when that is plainly this scope's
    window, _ = scope_window(burst_a, burst_a["allowed"])
    transport.sleep_until(max(transport.now() + 1.15 * w_a,
                              cd_a["t_success"] + (window or 0.0) + 0.1))
    u0 = runner.rest_probe()
    gap = 0.3 * c_a
    transport.sleep_until(u0.t + gap)
    burst_b = runner.burst()
    cycle_b: dict[str, Any] = {"u0": u0.t, "gap_s": gap, "burst": burst_b}
    obs["cycle_b"] = cycle_b
    if not burst_b["refused"]:
        return
    last_refusal = max(burst_b["t_last_sent"], side_checks(runner, obs, sibling, outsider))
    ext_probe = 1.05 * cd_a["last_gap_s"] if extension_signature else None
    cycle_b["ext_probe_s"] = ext_probe
    # every refusal restarts an extending penalty: the quiet gap runs from the last one
    cycle_b["cooldown"] = runner.cooldown(burst_b["t_first_429"], ext_probe,
                                          anchor=last_refusal if ext_probe else None)
    cycle_b["return"] = runner.return_shape()
    obs["rest_after_s"] = max(1.15 * max(w_a, cycle_b["cooldown"]["t_recovered"] - u0.t),
                              (window or 0.0) + 0.1)


def _rested_burst(runner: ScopeRunner, obs: dict[str, Any], burst_a: dict[str, Any],
                  say: Progress) -> dict[str, Any]:
    """Verify the rest from the burst itself: the scope's own 429 announces its limit; a
    burst well short of it means the scope (an org, whose state a rested key's headers
    hide) was not rested. Then wait the announced full reset and burst once more."""
    limit = burst_a.get("refusal_limit")
    allowed = burst_a["allowed"]
    rest: dict[str, Any] = {"verified_by": "the scope's 429 announces its limit",
                            "announced_limit": limit, "first_burst_allowed": allowed}
    obs["rest_check"] = rest
    if limit is None:
        rest["verified_by"] = "not verifiable (no rate-limit headers)"
        return burst_a
    if allowed >= limit - 1:
        rest["rested"] = True
        return burst_a
    transport = runner.transport
    wait = max(burst_a.get("reset_s") or 0.0, burst_a.get("retry_after_s") or 0.0,
               runner.key_rest_s) + 0.1
    rest.update(rested=False, waited_s=round(wait, 3))
    say(f"burst: {allowed} allowed but the limit announced is {limit}: not rested; "
        f"waiting {wait:.2f}s and bursting again")
    transport.sleep_until(transport.now() + wait)
    burst = runner.burst(runner.rest_probe())
    rest["second_burst_allowed"] = burst["allowed"]
    obs["burst_unrested"] = burst_a
    obs["burst_a"] = burst
    return burst


def side_checks(runner: ScopeRunner, obs: dict[str, Any], sibling: ApiKey | None,
                outsider: ApiKey | None) -> float:
    """One or two requests each, sent while the scope's budget is exhausted: the other
    endpoint (shared budget?), a sibling key of the same org (key or org limit?), a key
    of another org (isolation). Returns the send time of the last one refused."""
    transport = runner.transport
    other = "chat" if runner.endpoint == "models" else "models"
    side = runner.label or "endpoints"
    ends = [transport.fire(runner.next_key(), side, other, step="endpoints")
            for _ in range(2)]
    sib = (transport.fire(sibling, runner.label or "isolation", runner.endpoint,
                          step="isolation") if sibling is not None else None)
    out = (transport.fire(outsider, runner.label or "isolation", runner.endpoint,
                          step="isolation") if outsider is not None else None)
    settle([h for h in (*ends, sib, out) if h is not None])
    # per-endpoint budgets let both through; a shared one at most one (a refill)
    admitted = sum(h.ok or not h.done for h in ends)
    obs["endpoints"] = {"other": other, "allowed": admitted, "sent": len(ends),
                        "status": 200 if admitted == len(ends) else 429}
    if sib is not None and sibling is not None:
        obs["sibling"] = f"{sibling.alias} (same org) -> {sib.status}"
        obs["sibling_refused"] = sib.refused
        obs["sibling_limit"] = sib.limit
    if out is not None and outsider is not None:
        obs["outsider"] = f"{outsider.alias} (other org) -> {out.status}"
        obs["isolated"] = out.ok or not out.done
    return max((h.t for h in (*ends, sib) if h is not None and h.refused), default=0.0)


PROBE_STEPS = ("cooldown", "recovery", "sustained", "endpoints", "isolation")


def headroom(transport: Transport, bursts: int) -> int:
    """Requests left under the cost bound ``3 x bursts + recovery probes`` (verification
    requests are not recovery probes: they are charged against the bursts' allowance)."""
    probes = sum(transport.steps.get(step, 0) for step in PROBE_STEPS)
    return 3 * bursts + probes - transport.sent


def verify_sustained(runner: ScopeRunner, obs: dict[str, Any], bursts: int,
                     say: Progress) -> None:
    """Check the inferred sustained rate with short steady runs: at 90 % it must see no
    429; at 120 % (only when cheap) it must see one. A bucket is run from empty (right
    after the refill measurement), a window or penalty from rested. Skipped, and said so,
    when it would break the cost bound or ``--max-requests``/``--max-duration``."""
    if obs.get("stopped_by") or obs.get("unreachable"):
        return
    scope = infer_scope(obs)
    per_min, burst = scope.get("sustained_per_min"), scope.get("burst") or 0
    if not per_min or burst < 1:
        return
    transport = runner.transport
    rate = per_min / 60.0
    bucket = obs.get("rate") is not None
    if bucket:   # from empty: an overestimate shows as a growing deficit of tokens
        n90 = max(4, min(12, int(0.9 * rate * 2.5)))
        n120 = math.ceil((2 + n90 / 9) * 6) + 1
        wait = 0.0
    else:        # from rested: 1.25 windows at 90 %, one window at 120 %
        n90 = math.ceil(1.125 * burst)
        n120 = math.ceil(1.2 * burst) + 1
        wait = obs.get("rest_after_s", 0.0)
    room = headroom(transport, bursts)
    verify: dict[str, Any] = {"from": "empty" if bucket else "rested", "at_90_requests": n90,
                              "headroom": room}
    obs["verify"] = verify
    left = transport.max_requests - transport.sent
    end = transport.now() + wait + n90 / (0.9 * rate)
    if n90 > room:
        verify["skipped"] = (f"a {n90}-request run at 90 % would exceed the cost bound "
                             f"(room for {room})")
    elif n90 > left or end > transport.deadline:
        verify["skipped"] = "it would exceed --max-requests or --max-duration"
    if "skipped" in verify:
        say(f"verify: skipped, {verify['skipped']}")
        return
    try:
        transport.sleep_until(transport.now() + wait)
        say(f"verify: {n90} requests at 90 % of {per_min:.1f}/min")
        verify["at_90"] = runner.steady(0.9 * rate, n90)
        room, left = headroom(transport, bursts), transport.max_requests - transport.sent
        takes = n120 / (1.2 * rate)
        if verify["at_90"]["refused"]:
            return
        if n120 > min(room, left) or takes > 2.0 or transport.now() + takes > transport.deadline:
            verify["at_120_skipped"] = (f"{n120} requests over {takes:.1f}s: not cheap "
                                        f"(room for {min(room, left)})")
            return
        say(f"verify: up to {n120} requests at 120 %")
        verify["at_120"] = runner.steady(1.2 * rate, n120)
    except BoundReached as stop:
        verify["stopped_by"] = stop.bound


def key_limit(key_obs: dict[str, Any]) -> int | None:
    """The key's own limit as its 429 announced it, to tell a key's refusals from the
    org's; unknown when a sibling key was refused with the same limit announced (the key
    scope then hit the org's limit, not its own)."""
    first = key_obs.get("burst_a") or {}
    limit = first.get("refusal_limit") or first.get("header_limit")
    if key_obs.get("sibling_refused") and key_obs.get("sibling_limit") in (None, limit):
        return None
    return limit


def key_spent_s(key_obs: dict[str, Any]) -> float:
    """How long a key whose own budget is spent is left alone in the org scope: one
    token's time for a bucket, the key's rest for a window or penalty."""
    rate = (key_obs.get("rate") or {}).get("rate_per_s")
    return 1.0 / rate if rate else key_obs.get("rest_after_s", 1.0)


def plan_scopes(keys: KeyPool) -> dict[str, Any]:
    """Which keys measure which scope: the first key alone; the org with most keys."""
    primary = keys.keys[0]
    siblings = [k for k in keys.of_org(primary.org) if k.alias != primary.alias]
    best_org = max(keys.orgs, key=lambda org: len(keys.of_org(org)))
    org_keys = keys.of_org(best_org)
    outsiders = [k for k in keys if k.org != best_org]
    return {
        "primary": primary,
        "sibling": siblings[0] if siblings else None,
        "org": best_org if len(org_keys) >= 2 else None,
        "org_keys": org_keys,
        "outsider": outsiders[0] if outsiders else None,
    }


def run_mapper(settings: MapperSettings, keys: KeyPool, run_dir: Path,
               progress: Progress | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure every scope; returns (observations per scope, run facts)."""
    say = _quiet(progress)
    sink = RecordSink(run_dir, source="ratelimit", flush_interval_s=1.0)
    transport = Transport(settings.target, sink, max_rps=settings.max_rps,
                          max_requests=settings.max_requests,
                          max_duration_s=settings.max_duration_s)
    plan = plan_scopes(keys)
    started = time.time()
    observations: dict[str, Any] = {}
    stopped_by = None
    try:
        key_runner = ScopeRunner(transport, [plan["primary"]], settings.endpoint,
                                 min_step=settings.min_step_s, growth=settings.growth)
        say(f"[key scope] key {plan['primary'].alias}")
        observations["key"] = map_scope(key_runner, sibling=plan["sibling"],
                                        progress=lambda m: say(f"[key] {m}"))
        stopped_by = observations["key"].get("stopped_by")
        key_size = infer_scope(observations["key"]).get("burst") or 0
        verify_sustained(key_runner, observations["key"], key_size,
                         lambda m: say(f"[key] {m}"))
        if plan["org"] is not None and stopped_by is None:
            key_obs = observations["key"]
            key_rest = key_obs.get("rest_after_s", 1.0)
            # the org's state is hidden behind a rested key's headers: rest the keys and
            # the longest window or reset any header announced, then let the org's own
            # 429 verify it (a short burst is redone after the announced reset)
            rest = max(key_rest, transport.longest_reset_s) + 0.1
            say(f"[org scope] resting {rest:.2f}s, then keys "
                f"{', '.join(k.alias for k in plan['org_keys'])} of {plan['org']} in rotation")
            try:
                transport.sleep_until(transport.now() + rest)
            except BoundReached as stop:
                observations["org"] = {"stopped_by": stop.bound}
            else:
                org_runner = ScopeRunner(
                    transport, plan["org_keys"], settings.endpoint, label="org",
                    min_step=settings.min_step_s, growth=settings.growth,
                    key_limit=key_limit(key_obs),
                    key_rest_s=key_spent_s(key_obs))
                observations["org"] = map_scope(org_runner, outsider=plan["outsider"],
                                                progress=lambda m: say(f"[org] {m}"))
                org_burst = infer_scope(observations["org"]).get("burst") or 0
                verify_sustained(org_runner, observations["org"], key_size + org_burst,
                                 lambda m: say(f"[org] {m}"))
            stopped_by = observations["org"].get("stopped_by")
    finally:
        transport.drain(timeout_s=5.0)
        sink.close()
    facts = {
        "requests_sent": transport.sent,
        "duration_s": round(time.time() - started, 3),
        "stopped_by": stopped_by,
        "org": plan["org"],
        "org_keys": [k.alias for k in plan["org_keys"]] if plan["org"] else [],
        "key_alias": plan["primary"].alias,
        "key_org": plan["primary"].org,
    }
    return observations, facts
