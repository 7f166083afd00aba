"""Penalty boxes: once over the limit, everything is refused for a cooldown counted from
the first 429 (not from the window's first request): in the split cycle the cooldown is
the same although the second burst began later in its window. An *extending* penalty
(every refusal restarts it) ends only once a probe gap exceeds it, so one probe after a
quiet gap that long succeeds at once. A penalty hides its window: it comes from a
``RateLimit-Policy`` header that is plainly the scope's, else it is a guess that the
steady runs must verify."""

from __future__ import annotations

from loadtests.ratelimit.observations import Burst, Cooldown, Reading


def scope_window(burst_a: Burst, burst: int) -> tuple[float | None, str]:
    """The scope's window from a ``RateLimit-Policy`` header, only when that header is
    plainly this scope's: its limit matches the burst. The 429 announces the refusing
    scope (for the org scope, the org); allowed responses the scope with least left."""
    for limit, window, where in (
            (burst_a.get("refusal_limit"), burst_a.get("refusal_window_s"), "the 429's"),
            (burst_a.get("header_limit"), burst_a.get("header_window_s"), "an allowed one's")):
        if window and limit is not None and abs(limit - burst) <= 1:
            return float(window), f"RateLimit-Policy of {where} response (limit {limit})"
    return None, "no RateLimit-Policy header of this scope's limit"


def read_extending(cd_a: Cooldown, ext_probe_s: float, burst: int) -> Reading:
    """Probing kept it refused; one probe after a quiet gap succeeded: the penalty lies
    between the last two probe gaps of the first cooldown."""
    penalty = (cd_a["prev_gap_s"] + min(cd_a["last_gap_s"], ext_probe_s)) / 2
    return Reading(
        family="penalty", algorithm="penalty_cooldown", burst=burst, sustained_per_min=0.0,
        cooldown_s=penalty, full_recovery_s=penalty, penalty_extends=True, penalty_s=penalty,
        evidence={"why": (
            f"probing every <{cd_a['prev_gap_s']:.3f}s kept it refused for "
            f"{cd_a['cooldown_s']:.2f}s, one probe after a quiet {ext_probe_s:.3f}s "
            "succeeded: retries during the cooldown extend it")})


def read_plain(c_a: float, c_b: float, burst: int) -> Reading:
    penalty = (c_a + c_b) / 2
    return Reading(
        family="penalty", algorithm="penalty_cooldown", burst=burst, sustained_per_min=0.0,
        cooldown_s=penalty, full_recovery_s=penalty, penalty_s=penalty,
        evidence={"why": ("the cooldown is the same after both bursts although the second "
                          "began later in its window: a penalty from the first 429, not a "
                          "window")})


def estimate_sustained(reading: Reading, burst_a: Burst, window_a_s: float) -> None:
    """The sustained estimate: from the scope's own ``RateLimit-Policy`` window, else
    first burst to recovery — only a guess, never reported unless verified."""
    window, source = scope_window(burst_a, reading.burst)
    if window:
        reading.sustained_per_min = 60.0 * reading.burst / window
        reading.evidence["window_from"] = source
    else:
        reading.sustained_per_min = 60.0 * reading.burst / max(window_a_s, 1e-9)
        reading.evidence["window_from"] = f"first burst to recovery, a guess ({source})"
