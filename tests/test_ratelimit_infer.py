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


def test_full_return_after_a_block_probing_extended_is_ambiguous():
    """A penalty box whose window outlasts the penalty gives the full budget back and
    lets a quiet probe through sooner than probing did, without counting a refusal:
    neither true nor false is honest."""
    for family in ("window", "penalty"):
        obs = {"refusal_test": {**TEST, "allowed": True},
               "cycle_b": {"return": {"sent": 3, "allowed": 3, "key_refused": 0}}}
        value, why = refusals_count(obs, False, family)
        assert value is None and "do not tell" in why, (family, why)


def test_partial_return_rules_the_penalty_box_out():
    """Only part of the budget back after the split cycle (a log or a weighted counter,
    as HAProxy's track-then-deny recipe): the refused probes counted."""
    obs = {"refusal_test": {**TEST, "allowed": True},
           "cycle_b": {"return": {"sent": 2, "allowed": 1, "key_refused": 0}}}
    value, why = refusals_count(obs, False, "window")
    assert value is True and "part of the budget" in why
    assert refusals_count({"refusal_test": {**TEST, "allowed": True}}, False,
                          "counter")[0] is True
