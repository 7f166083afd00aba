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

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.ratelimit_phases import RETURN_PROBES, ScopeRunner, settle
from loadtests.ratelimit_transport import BoundReached, Transport
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
    say(f"burst: {burst_a['allowed']} allowed, first 429 at {burst_a['first_429_s']:.3f}s")
    t_f = burst_a["t_first_429"]
    say("cooldown: probing at growing gaps until a success")
    cd_a = runner.cooldown(t_f)
    obs["cooldown_a"] = cd_a
    say(f"cooldown: success after {cd_a['success_s']:.3f}s ({cd_a['probes']} probes)")
    ret_a = runner.return_shape()
    obs["return_a"] = ret_a
    if ret_a["allowed"] < RETURN_PROBES:
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
    transport.sleep_until(transport.now() + 1.15 * w_a)
    u0 = runner.rest_probe()
    gap = 0.3 * c_a
    transport.sleep_until(u0.t + gap)
    burst_b = runner.burst()
    cycle_b: dict[str, Any] = {"u0": u0.t, "gap_s": gap, "burst": burst_b}
    obs["cycle_b"] = cycle_b
    if not burst_b["refused"]:
        return
    side_checks(runner, obs, sibling, outsider)
    ext_probe = 1.05 * cd_a["last_gap_s"] if extension_signature else None
    cycle_b["ext_probe_s"] = ext_probe
    cycle_b["cooldown"] = runner.cooldown(burst_b["t_first_429"], ext_probe)
    cycle_b["return"] = runner.return_shape()
    obs["rest_after_s"] = 1.15 * max(w_a, cycle_b["cooldown"]["t_recovered"] - u0.t)


def side_checks(runner: ScopeRunner, obs: dict[str, Any], sibling: ApiKey | None,
                outsider: ApiKey | None) -> None:
    """One or two requests each, sent while the scope's budget is exhausted: the other
    endpoint (shared budget?), a sibling key of the same org (key or org limit?), a key
    of another org (isolation)."""
    transport = runner.transport
    other = "chat" if runner.endpoint == "models" else "models"
    side = runner.label or "endpoints"
    ends = [transport.fire(runner.keys[0], side, other, step="endpoints") for _ in range(2)]
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
    if out is not None and outsider is not None:
        obs["outsider"] = f"{outsider.alias} (other org) -> {out.status}"
        obs["isolated"] = out.ok or not out.done


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
        if plan["org"] is not None and stopped_by is None:
            # the org's own window is unknown and the headers of a rested key hide it;
            # three key-recoveries covers org windows up to ~3x the key's (docs: limits)
            rest = 3 * observations["key"].get("rest_after_s", 1.0)
            say(f"[org scope] resting {rest:.2f}s, then keys "
                f"{', '.join(k.alias for k in plan['org_keys'])} of {plan['org']} in rotation")
            try:
                transport.sleep_until(transport.now() + rest)
            except BoundReached as stop:
                observations["org"] = {"stopped_by": stop.bound}
            else:
                org_runner = ScopeRunner(transport, plan["org_keys"], settings.endpoint,
                                         label="org", min_step=settings.min_step_s,
                                         growth=settings.growth)
                observations["org"] = map_scope(org_runner, outsider=plan["outsider"],
                                                progress=lambda m: say(f"[org] {m}"))
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
    }
    return observations, facts
