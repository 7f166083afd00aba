"""``refusals_count`` from the refusal test's observations (pure, no network): true only
where no other limiter explains what was seen, null with the reason where one does."""

from __future__ import annotations

from loadtests.ratelimit.infer import refusals_count

TEST = {"burst_allowed": 8, "quiet_s": 1.377, "cooldown_with_retries_s": 1.836}


def test_extending_penalty_counts_refusals():
    assert refusals_count({}, True, "penalty") == (True, None)


def test_not_tested_is_null():
    assert refusals_count({}, False, "bucket") == (None, None)


def test_quiet_probe_refused_is_false():
    value, why = refusals_count({"refusal_test": {**TEST, "allowed": False}}, False, "window")
    assert value is False and "refused" in why


def test_a_block_probing_extended_with_the_budget_back_at_once_is_ambiguous():
    """A penalty box whose window outlasts the penalty lets a quiet probe through sooner
    than probing did, without counting a refusal; so does a log or HAProxy's track-then-
    deny counter, which do count them: neither true nor false is honest. (A partial
    return after the split cycle is no proof either: seen from a penalty box when a
    late answer on a loaded machine was read as the recovery.)"""
    for family in ("window", "penalty"):
        for returned in (3, 0):
            obs = {"refusal_test": {**TEST, "allowed": True},
                   "cycle_b": {"return": {"sent": 3, "allowed": returned, "key_refused": 0}}}
            value, why = refusals_count(obs, False, family)
            assert value is None and "do not tell" in why, (family, why)


def test_budget_back_one_by_one_after_a_quiet_probe_got_through_counts():
    value, why = refusals_count({"refusal_test": {**TEST, "allowed": True}}, False, "counter")
    assert value is True and "counted" in why


def test_a_refused_run_whose_sends_fell_behind_is_not_counted():
    """Sends behind schedule catch up closer than the interval: the limiter saw a faster
    rate than the one asked, so such a 429 proves nothing (seen on a busy machine: a
    steady 88 % run refused, the figure read 14 % low with confidence high)."""
    from loadtests.ratelimit.infer import apply_verification, slipped

    run = {"rate_per_min": 600.0, "sent": 20, "refused": True, "first_429_at": 20,
           "key_refused": 0, "duration_s": 2.0, "factor": 0.9}
    assert not slipped({**run, "late_s": 0.04})          # 0.4 of a 0.1 s interval
    assert slipped({**run, "late_s": 0.06})
    assert not slipped({**run, "refused": False, "late_s": 1.0})   # no 429: still a bound
    evidence: dict = {}
    apply_verification({"runs": [{**run, "late_s": 0.3}], "unverified": "x"}, 660.0,
                       "fixed_window", evidence)
    assert "fell 0.3s behind: not counted" in evidence["sustained_check"]


def test_a_counter_verified_well_above_its_estimate_is_not_claimed():
    """A counter's refill grid reads high, so the steady runs may move its rate down; a
    final rate well above the estimate contradicts the counter reading (seen under load:
    nginx's leaky bucket with one slow cooldown read as a counter, estimated 615/min,
    'verified' at 766/min with confidence high). Then the algorithm is unknown and the
    confidence medium; a move down within the grid's error keeps it."""
    from loadtests.ratelimit.infer import apply_verification

    up = apply_verification({"verified": True, "estimate_per_min": 766.0, "runs": []},
                            615.0, "sliding_window_counter", {}, family="counter")
    assert (up.algorithm, up.confidence) == ("unknown", "medium")
    down = apply_verification({"verified": True, "estimate_per_min": 540.0, "runs": []},
                              615.0, "sliding_window_counter", {}, family="counter")
    assert (down.algorithm, down.confidence) == ("sliding_window_counter", "high")


def test_shared_budget_is_told_only_while_the_scope_still_refuses():
    """Both side requests admitted says 'its own budget' only if the scope's own endpoint,
    re-checked after them, still refused and no bucket refill fits in between; a budget
    that came back first (a new window on a slow machine: the demo read 'not shared')
    is not told."""
    from loadtests.ratelimit.infer import shared_budget

    both = {"other": "chat", "allowed": 2, "sent": 2, "status": 200, "span_s": 0.004}
    assert shared_budget({**both, "status": 429, "allowed": 0}, None)[0] is True
    assert shared_budget({**both, "recheck_refused": True}, None)[0] is False
    shared, why = shared_budget({**both, "recheck_refused": False}, None)
    assert shared is None and "come back" in why
    assert shared_budget({**both, "recheck_refused": True}, 10.0)[0] is False   # 0.04 < 1
    shared, why = shared_budget({**both, "recheck_refused": True, "span_s": 0.2}, 10.0)
    assert shared is None and "refill" in why


def _burst(allowed: int, refused: bool, retry_after_s: float | None = None) -> dict:
    return {"sent": allowed + refused, "allowed": allowed, "refused": refused,
            "retry_after_s": retry_after_s}


def test_retry_after_present_says_what_the_429s_showed_when_unmeasured():
    """A cooldown a bound cut short: the other figures are unknown, Retry-After is not."""
    from loadtests.ratelimit.infer import infer_scope

    def seen(burst: dict) -> bool | None:
        obs = {"burst_a": burst, "stopped_by": "max_duration"}
        return infer_scope(obs)["retry_after"]["present"]  # type: ignore[arg-type]

    assert seen(_burst(5, True, 30.0)) is True
    assert seen(_burst(5, True, None)) is False
    assert seen(_burst(5, False)) is None


def test_a_bound_before_the_burst_is_named_not_a_burst_without_429():
    from loadtests.ratelimit.infer import infer_scope

    scope = infer_scope({"stopped_by": "max_duration",  # type: ignore[typeddict-item]
                         "stopped_why": "waiting the announced reset (12.00s) would "
                                        "exceed it"})
    assert scope["evidence"]["why"] == (
        "stopped by max_duration before the burst: waiting the announced reset (12.00s) "
        "would exceed it: no burst was sent")
    assert scope["burst"] is None and scope["retry_after"]["present"] is None


def test_a_cut_burst_is_a_lower_bound_and_counts_its_requests():
    import pandas as pd

    from loadtests.ratelimit.infer import cost_summary, infer_scope

    scope = infer_scope({"stopped_by": "max_requests",  # type: ignore[typeddict-item]
                         "burst_stopped": _burst(49, False)})
    assert scope["burst"] is None and scope["burst_bound"]["at_least"] == 49
    assert "at least 49" in scope["evidence"]["why"]
    records = pd.DataFrame({"phase": ["burst"] * 49, "step": ["burst"] * 49})
    assert cost_summary(records, {"key": scope})["minimum_bursts"] == 49
    assert cost_summary(records, {"key": {"burst": 10, "evidence": {}}})["minimum_bursts"] == 11
