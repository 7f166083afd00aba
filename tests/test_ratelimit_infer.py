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
