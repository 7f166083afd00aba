"""Exact limiter behaviour with an injected clock (no sleeping)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from simulator.budgets import Budgets, rate_limit_headers
from simulator.config import SimulatorConfig
from simulator.limiters import (
    FixedWindow,
    LeakyBucket,
    PenaltyCooldown,
    SlidingWindow,
    SlidingWindowCounter,
    TokenBucket,
    make_limiter,
)


def allowed_at(limiter, times):
    return [limiter.check(t).allowed for t in times]


def test_fixed_window_burst_refusal_and_reset():
    limiter = FixedWindow(5, 1.0)
    decisions = [limiter.check(10.0 + i * 0.01) for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[5].retry_after_s == pytest.approx(1.0 - 0.05)
    assert decisions[5].reset_s == pytest.approx(0.95)
    assert limiter.check(10.99).allowed is False
    assert allowed_at(limiter, [11.0 + i * 0.001 for i in range(6)]) == [True] * 5 + [False]


def test_fixed_window_refusals_do_not_spend_budget():
    limiter = FixedWindow(2, 10.0)
    assert allowed_at(limiter, [0, 0, 0, 0, 0]) == [True, True, False, False, False]
    assert limiter.count == 2


def test_sliding_window_refuses_until_oldest_ages_out():
    limiter = SlidingWindow(3, 10.0)
    assert allowed_at(limiter, [0.0, 4.0, 8.0]) == [True, True, True]
    refused = limiter.check(9.0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(1.0)  # the request at 0.0 leaves at 10.0
    assert limiter.check(9.999).allowed is False
    assert limiter.check(10.0).allowed is True
    assert limiter.check(13.0).allowed is False  # 4.0, 8.0, 10.0 in the window
    assert limiter.check(14.0).allowed is True


def test_token_bucket_burst_then_refill_rate():
    limiter = TokenBucket(10, 10.0)  # 10 burst, 1 token/s
    assert allowed_at(limiter, [0.0] * 11) == [True] * 10 + [False]
    assert limiter.check(0.0).retry_after_s == pytest.approx(1.0)
    assert limiter.check(0.5).retry_after_s == pytest.approx(0.5)
    assert limiter.check(1.0).allowed is True
    assert limiter.check(1.0).allowed is False
    # after 3.5 s: 3 whole tokens
    assert allowed_at(limiter, [4.5] * 4) == [True, True, True, False]
    # sustained at exactly the refill rate never refuses
    limiter = TokenBucket(2, 2.0)
    assert all(allowed_at(limiter, [float(t) for t in range(20)]))


def test_leaky_bucket_queues_with_growing_delay_then_refuses():
    limiter = LeakyBucket(4, 4.0)  # one served per second, 4 may wait
    decisions = [limiter.check(0.0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, True, False]
    assert [d.delay_s for d in decisions[:4]] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert decisions[4].retry_after_s == pytest.approx(1.0)
    assert limiter.check(0.5).retry_after_s == pytest.approx(0.5)
    later = limiter.check(1.0)
    assert later.allowed and later.delay_s == pytest.approx(3.0)
    # drains at a constant rate: at t=10 the queue is empty
    assert limiter.check(10.0).delay_s == 0.0


def test_penalty_cooldown_refuses_everything_for_penalty():
    limiter = PenaltyCooldown(3, 1.0, penalty_s=5.0)
    assert allowed_at(limiter, [0.0, 0.0, 0.0, 0.1]) == [True, True, True, False]
    refused = limiter.check(2.0)  # window would have reset, but the penalty holds
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(3.1)  # penalty started at 0.1
    assert limiter.check(5.09).allowed is False
    assert allowed_at(limiter, [5.1, 5.1, 5.1, 5.1]) == [True, True, True, False]


def test_penalty_cooldown_extends_on_retry_when_configured():
    limiter = PenaltyCooldown(1, 1.0, penalty_s=5.0, extends=True)
    assert allowed_at(limiter, [0.0, 0.0]) == [True, False]  # penalty until 5.0
    assert limiter.check(4.0).retry_after_s == pytest.approx(5.0)  # restarted: until 9.0
    assert limiter.check(8.9).allowed is False  # restarted again: until 13.9
    assert limiter.check(13.9).allowed is True
    plain = PenaltyCooldown(1, 1.0, penalty_s=5.0)
    assert allowed_at(plain, [0.0, 0.0, 4.0, 5.0]) == [True, False, False, True]


def test_sliding_window_counter_anchored_weighs_the_previous_period():
    """rate = current + floor(previous x time left / period): after a burst the first
    success waits for the period's end, then one returns per period / limit."""
    limiter = SlidingWindowCounter(10, 1.0)   # anchored at the first request
    assert allowed_at(limiter, [5.0] * 11) == [True] * 10 + [False]
    refused = limiter.check(5.5)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert limiter.check(6.0).allowed is False     # boundary: floor(10 x 1.0) = 10
    assert limiter.check(6.001).allowed is True    # 0 + floor(9.99) = 9
    assert limiter.check(6.05).allowed is False    # 1 + floor(9.5) = 10
    assert limiter.check(6.101).allowed is True    # 1 + floor(8.99) = 9
    # one idle period: half the previous weighs; two: anchored afresh, a full burst
    half = SlidingWindowCounter(10, 1.0)
    assert allowed_at(half, [0.0] * 10 + [1.5] * 6) == [True] * 15 + [False]
    fresh = SlidingWindowCounter(10, 1.0)
    assert allowed_at(fresh, [0.0] * 10 + [2.5] * 11) == [True] * 20 + [False]


def test_sliding_window_counter_aligned_periods_follow_the_clock():
    """Aligned to floor(now / period): a burst late in its period recovers at the
    period's boundary, sooner than an anchored counter would."""
    limiter = SlidingWindowCounter(10, 1.0, aligned=True)
    assert allowed_at(limiter, [0.7] * 11) == [True] * 10 + [False]
    assert limiter.check(0.8).retry_after_s == pytest.approx(0.2)
    assert limiter.check(1.001).allowed is True
    anchored = SlidingWindowCounter(10, 1.0)
    assert allowed_at(anchored, [0.7] * 10 + [1.001]) == [True] * 10 + [False]


def test_sliding_window_counter_steady_rate_below_limit_never_refused():
    below, above = SlidingWindowCounter(10, 1.0), SlidingWindowCounter(10, 1.0)
    assert all(allowed_at(below, [0.013 + i / 9 for i in range(90)]))
    assert not all(allowed_at(above, [0.013 + i / 11 for i in range(110)]))


def test_refusals_count_extends_the_block_while_retries_arrive():
    """With refusals counted (HAProxy's track-then-deny recipe), probing faster than the
    limit keeps a counter refused for good; the same probing gets through without."""
    probes = [0.05 * i for i in range(1, 100)]
    counted = make_limiter("sliding_window_counter", 10, 1.0, refusals_count=True)
    plain = make_limiter("sliding_window_counter", 10, 1.0)
    for limiter in (counted, plain):
        assert allowed_at(limiter, [0.0] * 11) == [True] * 10 + [False]
    assert not any(allowed_at(counted, probes))
    assert any(allowed_at(plain, probes))
    assert counted.check(4.95 + 2.01).allowed   # quiet for two periods: rested


def test_refusals_count_puts_a_token_bucket_into_debt():
    counted = make_limiter("token_bucket", 10, 10.0, refusals_count=True)   # 1 token/s
    plain = make_limiter("token_bucket", 10, 10.0)
    for limiter in (counted, plain):
        assert allowed_at(limiter, [0.0] * 11) == [True] * 10 + [False]
    assert allowed_at(plain, [1.0]) == [True]
    assert allowed_at(counted, [1.0, 2.0, 3.0]) == [False] * 3   # each retry spent 1
    # at 3.5: -1 + 0.5, minus this retry = -1.5 tokens, so 2.5 s to the next one
    assert counted.check(3.5).retry_after_s == pytest.approx(2.5)
    assert allowed_at(counted, [6.0]) == [True]


def test_penalty_window_continue_refuses_again_inside_the_full_window():
    """A penalty box whose window runs on: a penalty shorter than the window ends inside
    the still-full window, and the next request starts another penalty; with the window
    restarting, it gets a fresh budget."""
    box = make_limiter("penalty_cooldown", 3, 2.0, penalty_s=0.5, penalty_window="continue")
    assert allowed_at(box, [0.0, 0.0, 0.0, 0.1]) == [True, True, True, False]
    again = box.check(0.7)          # penalty over (0.6), window [0, 2) still full
    assert not again.allowed and again.retry_after_s == pytest.approx(0.5)
    assert box.check(1.19).allowed is False    # the new penalty runs until 1.2
    assert allowed_at(box, [2.0] * 4) == [True] * 3 + [False]
    restart = make_limiter("penalty_cooldown", 3, 2.0, penalty_s=0.5)
    assert allowed_at(restart, [0.0, 0.0, 0.0, 0.1, 0.7]) == [True, True, True, False, True]
    # a penalty longer than the window: both variants come back when it ends
    long = make_limiter("penalty_cooldown", 3, 0.5, penalty_s=2.0, penalty_window="continue")
    assert allowed_at(long, [0.0, 0.0, 0.0, 0.1, 2.09, 2.1]) == [True] * 3 + [False] * 2 + [True]
    with pytest.raises(ValueError, match="penalty window"):
        make_limiter("penalty_cooldown", 3, 1.0, penalty_window="sometimes")


def test_make_limiter_rejects_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_limiter("magic", 1, 1.0)
    assert make_limiter("none", 0, 1.0).check(0.0).allowed


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _config(**limits) -> SimulatorConfig:
    return SimulatorConfig.model_validate({
        "limits": {"key": {"limit": 3, "window_s": "10s"}, "org": {"limit": 4, "window_s": "10s"},
                   **limits},
        "keys": [{"alias": "a1", "key": "sk-a1", "org": "org_alpha"},
                 {"alias": "a2", "key": "sk-a2", "org": "org_alpha"},
                 {"alias": "b1", "key": "sk-b1", "org": "org_beta"}],
        "orgs": [{"id": "org_beta", "limit": 100}],
    })


def test_org_budget_shared_by_its_keys_not_other_orgs():
    config = _config()
    budgets = Budgets(config, FakeClock())
    a1, a2, b1 = config.keys
    assert [budgets.admit(a1, "chat").allowed for _ in range(3)] == [True] * 3
    assert budgets.admit(a1, "chat").scope == "key"
    first = budgets.admit(a2, "chat")
    assert first.allowed and first.scope == "org" and first.decision.remaining == 0
    refused = budgets.admit(a2, "chat")
    assert not refused.allowed and refused.scope == "org"
    assert [budgets.admit(b1, "chat").allowed for _ in range(3)] == [True] * 3


def test_org_refusal_does_not_spend_key_budget():
    config = _config()
    clock = FakeClock()
    budgets = Budgets(config, clock)
    a1, a2, _ = config.keys
    for _ in range(3):
        budgets.admit(a1, "models")
    budgets.admit(a2, "models")  # org now exhausted (4)
    for _ in range(10):
        assert not budgets.admit(a2, "models").allowed
    key_limiter = budgets.limiters[("key", "a2", "all")]
    assert key_limiter.count == 1  # only the admitted request counted


def test_per_endpoint_budgets_are_separate_and_shared_is_one():
    config = _config(endpoints="per_endpoint")
    budgets = Budgets(config, FakeClock())
    a1 = config.keys[0]
    assert [budgets.admit(a1, "models").allowed for _ in range(4)] == [True] * 3 + [False]
    assert budgets.admit(a1, "chat").allowed
    shared = Budgets(_config(), FakeClock())
    assert [shared.admit(a1, "models").allowed for _ in range(3)] == [True] * 3
    assert not shared.admit(a1, "chat").allowed


def test_headers_round_up_and_retry_after_at_least_one():
    config = _config()
    clock = FakeClock()
    budgets = Budgets(config, clock)
    a1 = config.keys[0]
    for _ in range(3):
        budgets.admit(a1, "chat")
    clock.now += 0.25
    verdict = budgets.admit(a1, "chat")
    headers = rate_limit_headers(verdict.decision, retry_after=True, headers=True)
    assert headers["Retry-After"] == "10"  # 9.75 s rounded up
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Policy"] == "3;w=10"
    assert headers["RateLimit"] == "limit=3, remaining=0, reset=10"
    assert rate_limit_headers(verdict.decision, retry_after=False, headers=False) == {}


def test_refusals_count_scope_counts_requests_the_other_scope_refused():
    """A key limiter with refusals_count counts every request it sees, also those the
    org refused (HAProxy tracks each table before any deny); without it, it does not."""
    key = {"limit": 3, "window_s": "10s", "refusals_count": True}
    config = _config(key=key)
    budgets = Budgets(config, FakeClock())
    a1, a2, _ = config.keys
    for _ in range(3):
        budgets.admit(a1, "models")
    assert budgets.admit(a2, "models").allowed   # org now exhausted (4)
    assert budgets.admit(a2, "models").scope == "org"   # refused by the org, counted
    for _ in range(4):
        assert not budgets.admit(a2, "models").allowed
    assert budgets.limiters[("key", "a2", "all")].count == 6


def test_config_carries_the_new_limiter_options():
    config = _config(algorithm="sliding_window_counter",
                     key={"limit": 5, "window_s": "1s", "aligned": True,
                          "refusals_count": True})
    budgets = Budgets(config, FakeClock())
    budgets.admit(config.keys[0], "models")
    limiter = budgets.limiters[("key", "a1", "all")]
    assert isinstance(limiter, SlidingWindowCounter) and limiter.aligned
    assert limiter.refusals_count
    with pytest.raises(ValueError, match="penalty_window"):
        _config(key={"penalty_window": "sometimes"})


def _fields(model: type[BaseModel], prefix: str = "") -> typing.Iterator[str]:
    for name, field in model.model_fields.items():
        yield prefix + name
        for inner in typing.get_args(field.annotation) or (field.annotation,):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _fields(inner, f"{prefix}{name}.")


def test_docs_name_every_server_config_field():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "reference-server.md").read_text()
    missing = [name for name in _fields(SimulatorConfig)
               if not re.search(rf"\b{name.split('.')[-1]}\b", doc)]
    assert not missing, f"docs/reference-server.md does not name {missing}"


def test_the_server_builds_every_algorithm_the_mapper_names() -> None:
    """The server's kinds are the core's names plus ``none`` (one vocabulary); its config
    accepts exactly those it has a limiter for."""
    from typing import get_args

    from secton_harness.ratelimit_model import LIMITER_ALGORITHMS
    from simulator.config import LimitsConfig
    from simulator.limiters import ALGORITHMS

    assert tuple(ALGORITHMS) == (*LIMITER_ALGORITHMS, "none")
    for name in ALGORITHMS:
        assert LimitsConfig(algorithm=name).algorithm == name
    assert "unknown" not in get_args(LimitsConfig.model_fields["algorithm"].annotation)
