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

from loadtests.ratelimit.fingerprints.counter import bucket_cooldown_limit
from loadtests.ratelimit.infer import all_returned, estimate, infer_scope, scope_window
from loadtests.ratelimit.observations import Burst, ScopeObservations, SecondBurst, SplitCycle
from loadtests.ratelimit.phases import ScopeRunner, settle
from loadtests.ratelimit.transport import BoundReached, Transport
from loadtests.ratelimit.verify import verify_sustained
from secton_harness.endpoints import ENDPOINTS, MODELS
from secton_harness.keys import ApiKey, KeyPool
from secton_harness.records import RecordSink

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MapperSettings:
    target: str
    endpoint: str = MODELS.name
    max_requests: int = 2000
    budget: int = 1000
    max_duration_s: float = 300.0
    max_rps: float = 100.0
    min_step_s: float = 0.03
    growth: float = 1.12


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda _message: None)


def map_scope(runner: ScopeRunner, *, sibling: ApiKey | None = None,
              outsider: ApiKey | None = None, progress: Progress | None = None,
              keys_total: int | None = None) -> ScopeObservations:
    """Observations for one scope; on a hard bound, what was measured plus ``stopped_by``."""
    say = _quiet(progress)
    obs: ScopeObservations = {"burst_phase": runner.label or "burst"}
    try:
        _run_scope(runner, obs, sibling, outsider, say, keys_total)
    except BoundReached as stop:
        obs["stopped_by"] = stop.bound
        if stop.why:
            obs["stopped_why"] = stop.why
        if "burst_a" not in obs and stop.burst is not None:
            obs["burst_stopped"] = stop.burst
        if "burst_a" not in obs and stop.rest_refusal is not None:
            obs["rest_refused"] = stop.rest_refusal
        say(f"stopped by {stop.bound}" + (f": {stop.why}" if stop.why else ""))
    return obs


def _run_scope(runner: ScopeRunner, obs: ScopeObservations, sibling: ApiKey | None,
               outsider: ApiKey | None, say: Progress, keys_total: int | None = None) -> None:
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
    if (keys_total and runner.key_limit is None
            and burst_a["allowed"] >= keys_total - len(runner.keys)):
        # no headers tell a key's 429 from the org's, and the keys' own limits together
        # explain the burst: the org's limit was not seen
        obs["unreachable"] = (
            f"the org burst ({burst_a['allowed']}) is what the {len(runner.keys)} keys' own "
            f"limits allow together ({keys_total}) and no rate-limit headers tell a key's "
            "429 from the org's: the org limit, if any, was not reached")
        say(obs["unreachable"])
        return
    burst_a = _rested_burst(runner, obs, burst_a, say)
    say(f"burst: {burst_a['allowed']} allowed, first 429 at {burst_a['first_429_s']:.3f}s")
    t_f = burst_a["t_first_429"]
    if t_f is None:   # the second burst after an unrested first saw no 429
        return
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
        period = burst_a["allowed"] / rate
        obs["rest_after_s"] = 1.2 * period
        if (obs["rate"].get("successes") or 0) >= 2:
            second_bucket_cycle(runner, obs, period, say)
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
                              cd_a["t_success"] + (window or 0.0) + 0.1),
                          "the rest before the split cycle")
    u0 = runner.rest_probe()
    gap = 0.3 * c_a
    transport.sleep_until(u0.t + gap, "the split cycle's gap")
    burst_b = runner.burst()
    cycle_b: SplitCycle = {"u0": u0.t, "gap_s": gap, "burst": burst_b}
    obs["cycle_b"] = cycle_b
    t_b = burst_b["t_first_429"]
    if t_b is None:
        return
    last_refusal = max(burst_b["t_last_sent"], side_checks(runner, obs, sibling, outsider))
    ext_probe = 1.05 * cd_a["last_gap_s"] if extension_signature else None
    cycle_b["ext_probe_s"] = ext_probe
    # every refusal restarts an extending penalty: the quiet gap runs from the last one
    cycle_b["cooldown"] = runner.cooldown(t_b, ext_probe,
                                          anchor=last_refusal if ext_probe else None)
    cycle_b["return"] = runner.return_shape()
    obs["rest_after_s"] = max(1.15 * max(w_a, cycle_b["cooldown"]["t_recovered"] - u0.t),
                              (window or 0.0) + 0.1)
    if not cycle_b["cooldown"]["first_probe_ok"] or ext_probe is None:
        refusal_test(runner, obs, c_a, say)


def refusal_test(runner: ScopeRunner, obs: ScopeObservations, cooldown_s: float,
                 say: Progress) -> None:
    """Do refused requests count (HAProxy's classic ``track-sc`` then ``deny`` recipe)?
    The first cooldown was measured while probing; if refusals count, those probes kept
    the limiter busy. So: rest, burst again, stay quiet for 75 % of that cooldown and send
    one probe. A window or a plain penalty still refuses it (its cooldown does not depend
    on the client); a limiter that counted the probes lets it through."""
    transport = runner.transport
    transport.sleep_until(transport.now() + obs.get("rest_after_s", 1.0),
                          "the rest before the refusal test")
    say("refusals: do retries during the block extend it? (burst, then one quiet probe)")
    burst = runner.burst(runner.rest_probe(), step="refusal_test")
    if not burst["refused"] or burst["t_first_429"] is None:
        return
    quiet = 0.75 * cooldown_s
    transport.sleep_until(burst["t_first_429"] + quiet, "the refusal test's quiet gap")
    hit = runner.probe("refusal_test")
    obs["refusal_test"] = {"burst_allowed": burst["allowed"], "quiet_s": round(quiet, 3),
                           "cooldown_with_retries_s": round(cooldown_s, 3),
                           "allowed": hit.ok or not hit.done}


def second_bucket_cycle(runner: ScopeRunner, obs: ScopeObservations, period: float,
                        say: Progress) -> None:
    """A bucket and a sliding-window counter both return single successes at the rate;
    they differ in the first one after a burst: within 1/rate for a bucket, at the
    period's end for a counter. A burst that happened to end near a period boundary would
    hide it, so a second burst is made 2.5 periods later (rested, and at another phase),
    and a third, a third of a period further on, when the first two looked like a
    bucket's."""
    transport = runner.transport
    refill = obs.get("rate")
    rate = (refill["rate_per_s"] if refill else None) or 1.0
    second: SecondBurst = {}
    obs["bucket_b"] = second
    for shift in (0.0, 1 / 3):
        wait = (2.5 + shift) * period
        say(f"recovery: another burst after {wait:.2f}s (bucket or windowed counter?)")
        transport.sleep_until(transport.now() + wait, "the rest before another burst")
        burst = runner.burst(runner.rest_probe())
        if burst["t_first_429"] is None:
            break
        cooldown = runner.cooldown(burst["t_first_429"])
        if "burst" not in second:
            second["burst"], second["cooldown"] = burst, cooldown
        else:
            second.setdefault("more_cooldowns_s", []).append(cooldown["cooldown_s"])
        longest = max(obs["cooldown_a"]["cooldown_s"], cooldown["cooldown_s"])
        if longest > bucket_cooldown_limit(rate):
            break
    obs["rest_after_s"] = 2.2 * period


def _rested_burst(runner: ScopeRunner, obs: ScopeObservations, burst_a: Burst,
                  say: Progress) -> Burst:
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
    transport.sleep_until(transport.now() + wait, "the announced reset")
    burst = runner.burst(runner.rest_probe())
    rest["second_burst_allowed"] = burst["allowed"]
    obs["burst_unrested"] = burst_a
    obs["burst_a"] = burst
    return burst


def other_endpoint(endpoint: str) -> str:
    """The endpoint the shared-budget check sends to: the first other one in
    :data:`~secton_harness.endpoints.ENDPOINTS` (the endpoint itself when it is the only
    one, which then reads as a shared budget: nothing else to tell it from)."""
    return next((e.name for e in ENDPOINTS if e.name != endpoint), endpoint)


def side_checks(runner: ScopeRunner, obs: ScopeObservations, sibling: ApiKey | None,
                outsider: ApiKey | None) -> float:
    """One or two requests each, sent while the scope's budget is exhausted: the other
    endpoint (shared budget?), a sibling key of the same org (key or org limit?), a key
    of another org (isolation). Returns the send time of the last one refused.

    Then one more on the scope's own endpoint (``recheck``): the other endpoint admitting
    both only says "its own budget" if this one is still refused. On a slow machine the
    side requests can leave after the budget came back (a new window, a refill): then
    both are admitted whatever the budgets, and a re-check admitted too says so (seen:
    the demo's fixed window read "not shared" when the check fell into the next one)."""
    transport = runner.transport
    other = other_endpoint(runner.endpoint)
    side = runner.label or "endpoints"
    ends = [transport.fire(runner.next_key(), side, other, step="endpoints")
            for _ in range(2)]
    sib = (transport.fire(sibling, runner.label or "isolation", runner.endpoint,
                          step="isolation") if sibling is not None else None)
    out = (transport.fire(outsider, runner.label or "isolation", runner.endpoint,
                          step="isolation") if outsider is not None else None)
    recheck = transport.fire(runner.next_key(), side, runner.endpoint, step="endpoints")
    settle([h for h in (*ends, sib, out, recheck) if h is not None])
    # per-endpoint budgets let both through; a shared one at most one (a refill)
    admitted = sum(h.ok or not h.done for h in ends)
    obs["endpoints"] = {"other": other, "allowed": admitted, "sent": len(ends),
                        "status": 200 if admitted == len(ends) else 429,
                        "recheck_refused": recheck.refused and not runner.key_refused(recheck),
                        "span_s": round(recheck.t - ends[0].t, 4)}
    if sib is not None and sibling is not None:
        obs["sibling"] = f"{sibling.alias} (same org) -> {sib.status}"
        obs["sibling_refused"] = sib.refused
        obs["sibling_limit"] = sib.limit
    if out is not None and outsider is not None:
        obs["outsider"] = f"{outsider.alias} (other org) -> {out.status}"
        obs["isolated"] = out.ok or not out.done
    return max((h.t for h in (*ends, sib, recheck) if h is not None and h.refused),
               default=0.0)


def key_limit(key_obs: dict[str, Any]) -> int | None:
    """The key's own limit as its 429 announced it, to tell a key's refusals from the
    org's; unknown when a sibling key was refused with the same limit announced (the key
    scope then hit the org's limit, not its own)."""
    first = key_obs.get("burst_a") or {}
    limit = first.get("refusal_limit") or first.get("header_limit")
    if key_obs.get("sibling_refused") and key_obs.get("sibling_limit") in (None, limit):
        return None
    return limit


def org_rest_s(key_obs: ScopeObservations, longest_reset_s: float) -> float:
    """How long to rest before the org burst. The org's state is hidden behind a rested
    key's headers, and a weighted counter still remembers the key phase for up to two
    periods: rest the key's own rest, the longest window or reset any header announced,
    and twice the longest recovery or cooldown the key scope observed, plus a margin. The
    org's own 429, when it announces a limit, then verifies the rest (``rest_check``)."""
    key = infer_scope(key_obs)
    observed = max(key.get("full_recovery_s") or 0.0, key.get("cooldown_s") or 0.0)
    return max(key_obs.get("rest_after_s", 1.0), longest_reset_s, 2.0 * observed) + 0.2


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
        # the key scope may spend half the budget when an org scope follows
        key_budget = settings.budget // 2 if plan["org"] is not None else settings.budget
        verify_sustained(key_runner, observations["key"], estimate(observations["key"]),
                         key_budget, lambda m: say(f"[key] {m}"))
        if plan["org"] is not None and stopped_by is None:
            key_obs = observations["key"]
            rest = org_rest_s(key_obs, transport.longest_reset_s)
            say(f"[org scope] resting {rest:.2f}s, then keys "
                f"{', '.join(k.alias for k in plan['org_keys'])} of {plan['org']} in rotation")
            try:
                transport.sleep_until(transport.now() + rest,
                                      "the rest before the org scope")
            except BoundReached as stop:
                observations["org"] = {"stopped_by": stop.bound,
                                       "stopped_why": stop.why or ""}
            else:
                # keys the key phase did not use first: their own state is fresh
                fresh_first = sorted(plan["org_keys"],
                                     key=lambda k: k.alias == plan["primary"].alias)
                org_runner = ScopeRunner(
                    transport, fresh_first, settings.endpoint, label="org",
                    min_step=settings.min_step_s, growth=settings.growth,
                    key_limit=key_limit(key_obs),
                    key_rest_s=key_spent_s(key_obs))
                key_burst = infer_scope(key_obs).get("burst") or 0
                observations["org"] = map_scope(
                    org_runner, outsider=plan["outsider"],
                    progress=lambda m: say(f"[org] {m}"),
                    keys_total=key_burst * len(plan["org_keys"]) or None)
                verify_sustained(org_runner, observations["org"],
                                 estimate(observations["org"]), settings.budget,
                                 lambda m: say(f"[org] {m}"))
            stopped_by = observations["org"].get("stopped_by")
    finally:
        transport.drain(timeout_s=5.0)
        sink.close()
    facts = {
        "requests_sent": transport.sent,
        "budget": settings.budget,
        "duration_s": round(time.time() - started, 3),
        "stopped_by": stopped_by,
        "org": plan["org"],
        "org_keys": [k.alias for k in plan["org_keys"]] if plan["org"] else [],
        "key_alias": plan["primary"].alias,
        "key_org": plan["primary"].org,
    }
    return observations, facts
