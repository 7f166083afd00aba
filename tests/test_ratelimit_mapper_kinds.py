"""The mapper against the reference server's limiter kinds from issue 14: the
sliding-window counter (HAProxy's weighting, anchored or aligned to the clock), refusals
that count (retrying extends the block) and a penalty box whose window runs on past the
penalty. The same promise as against real limiters (``tests/mapper_tolerance.py``): every
figure right within the issue's tolerances, or not claimed and the confidence not high.

These cover what the real-limiter tests do not: rate-limit headers present as a
cross-check (HAProxy and the ``limits`` targets send none), clock-aligned periods with
counted refusals, and the penalty box's ``refusals_count`` with headers.
"""

from __future__ import annotations

from typing import Any

import pytest
from mapper_tolerance import right_or_honest
from test_ratelimit_mapper import KEYS, NO_LATENCY, run_cli

pytestmark = pytest.mark.slow


def kind(algorithm: str, *, headers: bool = True, **key: Any) -> dict[str, Any]:
    """A server config: ``key`` is the key scope's limit spec; the org out of the way."""
    return {"limits": {"algorithm": algorithm, "headers": headers, "key": key,
                       "org": {"limit": 10_000, "window_s": 1.0}},
            "latency": NO_LATENCY, "keys": KEYS}


def key_scope(reference_server, tmp_path, config: dict[str, Any]) -> dict[str, Any]:
    server = reference_server(config)
    proc, result = run_cli(tmp_path, server.url, KEYS[:1], "--max-duration", "90s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return result["scopes"]["key"]


def test_sliding_window_counter_with_headers(reference_server, tmp_path):
    """Anchored like HAProxy's freq_ctr; the headers (present here) must not make the
    mapper call it a window or a bucket."""
    scope = key_scope(reference_server, tmp_path,
                      kind("sliding_window_counter", limit=10, window_s=1.0))
    right_or_honest(scope, burst=10, per_min=600, algorithms={"sliding_window_counter"})


def test_aligned_counter_counting_refusals_is_right_or_says_so(reference_server, tmp_path):
    """Clock-aligned periods and refused requests counted: probing keeps it refused, so
    no refill is seen; what is reported must hold, and refusals_count is never false."""
    scope = key_scope(reference_server, tmp_path,
                      kind("sliding_window_counter", headers=False, limit=10, window_s=1.0,
                           aligned=True, refusals_count=True))
    right_or_honest(scope, burst=10, per_min=600, algorithms={"sliding_window_counter"},
                    refusals_count=True)


def test_penalty_box_window_longer_than_cooldown(reference_server, tmp_path):
    """The window (1.5 s) runs on past the penalty (0.6 s): a probe after the penalty,
    inside the still-full window, starts another, which looks like a refusal that
    counts. refusals_count is false or null with the reason — never true."""
    scope = key_scope(reference_server, tmp_path,
                      kind("penalty_cooldown", limit=8, window_s=1.5, penalty_s=0.6,
                           penalty_window="continue"))
    right_or_honest(scope, burst=8, per_min=320, algorithms={"penalty_cooldown"},
                    penalty_extends=False, refusals_count=False)
    if scope["refusals_count"] is None:
        assert "do not tell" in scope["evidence"]["refusals_count_why"], scope["evidence"]
        assert scope["confidence"] != "high"
