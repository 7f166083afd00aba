"""The --expect policy model and the pure inference helpers (no network)."""

from __future__ import annotations

import pytest
from conftest import write_toml

from loadtests.ratelimit.fingerprints.bucket import bucket_capacity
from loadtests.ratelimit.infer import retry_after_accuracy
from loadtests.ratelimit.policy import (
    ScopePolicy,
    check_policy,
    check_scope,
    load_policy,
    parse_tolerance,
)
from secton_harness.errors import BadInput

MEASURED = {"burst": 10, "sustained_per_min": 590.0, "cooldown_s": 0.9,
            "full_recovery_s": 0.9, "algorithm": "fixed_window",
            "shared_across_endpoints": True, "retry_after": {"max_error_s": 0.4}}


def test_tolerances_parse():
    assert parse_tolerance(1) == (1.0, 0.0)
    assert parse_tolerance("10%") == (0.0, 0.1)
    with pytest.raises(ValueError):
        parse_tolerance("ten")


def test_policy_passes_within_default_tolerances(tmp_path):
    path = write_toml(tmp_path / "p.toml", {"key": {
        "burst": 11, "sustained_per_min": 600, "cooldown_s": 1.1, "full_recovery_s": 0.7,
        "algorithm": ["fixed_window", "sliding_window"], "shared_across_endpoints": True,
        "retry_after_max_error_s": 1.0}})
    verdict = check_policy(load_policy(path), {"key": MEASURED})
    assert verdict["passed"], verdict


def test_policy_fails_and_shows_resolved_values(tmp_path):
    path = write_toml(tmp_path / "p.toml", {"key": {
        "burst": {"value": 12, "tolerance": 1}, "cooldown_s": {"value": 2, "tolerance": "5%"}},
        "org": {"burst": 30}})
    verdict = check_policy(load_policy(path), {"key": MEASURED})
    assert not verdict["passed"]
    key = verdict["scopes"]["key"]
    assert key["burst"]["pass"] is False and "(10) == 12" in key["burst"]["line"]
    assert key["cooldown_s"]["tolerance"] == 0.1
    assert verdict["scopes"]["org"]["measured"]["pass"] is False


def test_bad_policy_is_one_line_bad_input(tmp_path):
    path = write_toml(tmp_path / "p.toml", {"key": {"algorithm": "magic"}})
    with pytest.raises(BadInput, match=r"key\.algorithm"):
        load_policy(path)
    path = write_toml(tmp_path / "q.toml", {"key": {"burts": 3}})
    with pytest.raises(BadInput, match="burts"):
        load_policy(path)


def test_bucket_capacity_removes_refill_during_the_burst():
    # 22 allowed in 0.105 s at 20 tokens/s: 2 were refills
    assert bucket_capacity(22, 20.0, 0.105) == 20
    assert bucket_capacity(10, 10.0, 0.045) == 10


def test_retry_after_accuracy_against_observed_recovery():
    cooldown = {"cooldown_s": 0.6, "retry_after": [(0.3, 1.0)]}
    acc = retry_after_accuracy([cooldown], [1.0], extends=False, penalty_s=None)
    assert acc["present"] and acc["samples"] == 2
    assert acc["max_error_s"] == pytest.approx(0.7)
    assert acc["mean_error_s"] == pytest.approx(0.55)
    none = retry_after_accuracy([{"cooldown_s": 1.0, "retry_after": []}], [None], False, None)
    assert none == {"present": False, "mean_error_s": None, "max_error_s": None,
                    "mean_signed_error_s": None, "samples": 0}


def test_check_lines_use_the_policy_files_words_not_pythons() -> None:
    """``key.shared_across_endpoints (True) == True`` and ``in ['fixed_window']`` showed
    Python; a figure not measured read ``(None)``."""
    policy = ScopePolicy(burst=10, algorithm=["fixed_window", "token_bucket"],
                         shared_across_endpoints=True, retry_after_max_error_s=1.0)
    checks = check_scope("key", policy, {"burst": None, "algorithm": "fixed_window",
                                         "shared_across_endpoints": True})
    lines = {name: check["line"] for name, check in checks.items()}
    assert lines["burst"] == "key.burst (not measured) == 10 ± 1"
    assert lines["algorithm"] == "key.algorithm (fixed_window) in fixed_window | token_bucket"
    assert lines["shared_across_endpoints"] == "key.shared_across_endpoints (true) == true"
    assert lines["retry_after_max_error_s"] == "key.retry_after.max_error_s (not measured) <= 1"
    assert not any(word in " ".join(lines.values()) for word in ("True", "None", "['"))


def test_a_scope_not_measured_names_why():
    from loadtests.ratelimit.policy import Policy

    policy = Policy(org=ScopePolicy(burst=10))
    line = check_policy(policy, {}, {"org": "stopped by max_duration in the key scope"}
                        )["scopes"]["org"]["measured"]["line"]
    assert line == ("org scope documented but not measured (stopped by max_duration in "
                    "the key scope)")
    assert "two or more keys of one org" in check_policy(policy, {})["scopes"]["org"][
        "measured"]["line"]
