"""Rate-limit header parsing: every dialect, garbage tolerance, and round-trip properties."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secton_harness.ratelimit_headers import (
    RateLimitInfo,
    _lower_headers,
    _parse_general,
    parse_ratelimit,
    parse_retry_after,
)

NOW = 1_700_000_000.0


def test_no_headers_is_empty_and_consistent() -> None:
    info = parse_ratelimit({"content-type": "application/json"}, now=NOW)
    assert info == RateLimitInfo()
    assert not info.present
    assert info.inconsistencies() == ()


def test_retry_after_delta_seconds() -> None:
    info = parse_ratelimit({"Retry-After": "7"}, now=NOW)
    assert info.retry_after_s == 7.0
    assert info.sources == ("retry-after",)
    assert info.inconsistencies() == ()


def test_retry_after_http_date_forms() -> None:
    # RFC 9110 example date, in its three accepted forms.
    moment = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    for text in ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                 "Sun Nov  6 08:49:37 1994"):
        assert parse_retry_after(text, now=moment - 10) == pytest.approx(10.0), text


def test_retry_after_date_in_past_is_zero_never_negative() -> None:
    info = parse_ratelimit({"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}, now=NOW)
    assert info.retry_after_s == 0.0


@pytest.mark.parametrize("junk", ["soon", "-3", "", "1e5", "NaN", "Sun, 99 Foo 1994"])
def test_retry_after_garbage_becomes_problem(junk: str) -> None:
    info = parse_ratelimit({"Retry-After": junk}, now=NOW)
    assert info.retry_after_s is None
    assert len(info.problems) == 1 and "retry-after" in info.problems[0]
    assert info.inconsistencies()


def test_x_ratelimit_delta_reset() -> None:
    info = parse_ratelimit({"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "4",
                            "X-RateLimit-Reset": "30"}, now=NOW)
    assert (info.limit, info.remaining, info.reset_s) == (10, 4, 30.0)
    assert info.sources == ("x-ratelimit",)
    assert info.inconsistencies() == ()


def test_x_ratelimit_epoch_reset_seconds_and_ms() -> None:
    info = parse_ratelimit({"x-ratelimit-reset": str(int(NOW) + 42)}, now=NOW)
    assert info.reset_s == pytest.approx(42.0)
    info = parse_ratelimit({"x-ratelimit-reset": str(int(NOW * 1000) + 1500)}, now=NOW)
    assert info.reset_s == pytest.approx(1.5)
    past = parse_ratelimit({"x-ratelimit-reset": str(int(NOW) - 100)}, now=NOW)
    assert past.reset_s == 0.0


def test_headers_are_case_insensitive() -> None:
    info = parse_ratelimit({"X-RATELIMIT-LIMIT": "5", "x-RateLimit-remaining": "1",
                            "RETRY-AFTER": "2"}, now=NOW)
    assert (info.limit, info.remaining, info.retry_after_s) == (5, 1, 2.0)


def test_draft_ratelimit_fields() -> None:
    info = parse_ratelimit({"RateLimit-Limit": "100", "RateLimit-Remaining": "0",
                            "RateLimit-Reset": "12"}, now=NOW)
    assert (info.limit, info.remaining, info.reset_s) == (100, 0, 12.0)
    assert info.sources == ("ratelimit-fields",)


def test_draft_ratelimit_limit_with_quota_policies() -> None:
    info = parse_ratelimit({"RateLimit-Limit": "10, 10;w=1, 50;w=60"}, now=NOW)
    assert info.limit == 10 and not info.problems


def test_structured_dictionary_form_with_policy() -> None:
    info = parse_ratelimit({"RateLimit": "limit=10, remaining=5, reset=3",
                            "RateLimit-Policy": "10;w=60"}, now=NOW)
    assert (info.limit, info.remaining, info.reset_s) == (10, 5, 3.0)
    assert info.policy == "10;w=60" and info.window_s == 60.0
    assert info.sources == ("ratelimit", "ratelimit-policy")
    assert info.inconsistencies() == ()


def test_newest_draft_named_policies() -> None:
    info = parse_ratelimit({"RateLimit": '"default";r=5;t=3',
                            "RateLimit-Policy": '"burst";q=100;w=1, "default";q=10;w=60'},
                           now=NOW)
    assert (info.limit, info.remaining, info.reset_s, info.window_s) == (10, 5, 3.0, 60.0)
    assert info.inconsistencies() == ()


def test_newest_draft_picks_most_constrained_policy() -> None:
    info = parse_ratelimit({"RateLimit": '"day";r=900;t=4000, "minute";r=2;t=20',
                            "RateLimit-Policy": '"day";q=1000;w=86400, "minute";q=10;w=60'},
                           now=NOW)
    assert (info.limit, info.remaining, info.reset_s, info.window_s) == (10, 2, 20.0, 60.0)


def test_newest_family_wins_and_disagreement_is_a_problem() -> None:
    info = parse_ratelimit({"RateLimit": "limit=10, remaining=5, reset=3",
                            "X-RateLimit-Limit": "12", "X-RateLimit-Remaining": "5"}, now=NOW)
    assert info.limit == 10
    assert info.problems == ("limit: x-ratelimit (12) disagrees with ratelimit (10)",)
    assert info.inconsistencies()


def test_garbage_values_become_none_with_problems() -> None:
    info = parse_ratelimit({"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "3.5",
                            "X-RateLimit-Reset": "whenever", "RateLimit-Policy": ";;;"},
                           now=NOW)
    assert (info.limit, info.remaining, info.reset_s, info.window_s) == (None, None, None, None)
    assert len(info.problems) == 4
    assert "x-ratelimit-limit: 'lots' is not an integer" in info.problems


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "11"}, "remaining (11) <= limit (10)"),
    ({"x-ratelimit-remaining": "-1"}, "remaining (-1) >= 0"),
    ({"x-ratelimit-reset": "-5"}, "reset_s (-5) >= 0"),
    ({"ratelimit-policy": "10;w=0"}, "window_s (0) > 0"),
])
def test_inconsistent_values_are_named(headers: dict[str, str], expected: str) -> None:
    info = parse_ratelimit(headers, now=NOW)
    assert expected in info.inconsistencies()
    assert info.inconsistencies()


def test_huge_numbers_do_not_raise() -> None:
    info = parse_ratelimit({"x-ratelimit-limit": "9" * 5000, "x-ratelimit-reset": "9" * 400,
                            "retry-after": "9" * 400}, now=NOW)
    assert (info.limit, info.reset_s, info.retry_after_s) == (None, None, None)


@pytest.mark.parametrize("headers", [
    {"X-RateLimit-Remaining": "99999999999999999999"},
    {"RateLimit-Limit": "-99999999999999999999"},
    {"RateLimit": "limit=10, remaining=99999999999999999999, reset=3"},
    {"RateLimit": '"default";r=99999999999999999999;t=3'},
    {"RateLimit-Policy": '"default";q=99999999999999999999;w=60'},
])
def test_counts_beyond_int64_are_problems_not_values(headers: dict[str, str]) -> None:
    """A count the records cannot store (int64) is refused here, named in ``problems``."""
    info = parse_ratelimit(headers, now=NOW)
    assert info.limit in (None, 10) and info.remaining is None
    assert any("out of range" in problem for problem in info.problems)


def test_accepts_httpx_headers() -> None:
    import httpx

    headers = httpx.Headers([("Retry-After", "1"), ("X-RateLimit-Limit", "3")])
    assert parse_ratelimit(headers, now=NOW).limit == 3


# --------------------------------------------------------------------------- properties

_HEADER_NAMES = st.sampled_from([
    "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit",
    "RateLimit-Policy", "ratelimit", "retry-after",
])
_STRUCTURED_TEXT = st.text(alphabet=st.sampled_from(list('0123456789=;,"\\ -.rtqwlimitdefault')),
                           max_size=60)


@given(st.dictionaries(_HEADER_NAMES, st.one_of(st.text(max_size=80), _STRUCTURED_TEXT)),
       st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_never_raises_on_arbitrary_header_text(headers: dict[str, str], now: float) -> None:
    info = parse_ratelimit(headers, now=now)
    assert isinstance(info.problems, tuple)
    info.inconsistencies()  # must not raise either
    if info.retry_after_s is not None:
        assert info.retry_after_s >= 0
    _fits_a_record(info)


_NUMBERS = st.one_of(st.integers(min_value=-(10**25), max_value=10**25).map(str),
                     st.sampled_from(["99999999999999999999", "9223372036854775808",
                                      "-9223372036854775809", "9223372036854775807", "1e308"]))


@given(st.dictionaries(_HEADER_NAMES, _NUMBERS))
def test_every_parsed_count_fits_a_record(headers: dict[str, str]) -> None:
    """Whatever number a target sends, the parsed figures go through the real record
    conversion unchanged (a value that did not fit once lost the whole batch)."""
    _fits_a_record(parse_ratelimit(headers, now=NOW))


def _fits_a_record(info: RateLimitInfo) -> None:
    from secton_harness.records import rows_to_table

    row = {"retry_after_s": info.retry_after_s, "ratelimit_limit": info.limit,
           "ratelimit_remaining": info.remaining, "ratelimit_reset_s": info.reset_s}
    stored = rows_to_table([row]).to_pylist()[0]
    assert {name: stored[name] for name in row} == row
    assert stored["detail"] == ""


@given(st.integers(min_value=0, max_value=10**9))
def test_delta_seconds_round_trip(seconds: int) -> None:
    info = parse_ratelimit({"Retry-After": str(seconds)}, now=NOW)
    assert info.retry_after_s == float(seconds)
    assert info.problems == ()


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**6))
def test_http_date_round_trip(ahead_s: int, now_offset: int) -> None:
    now = float(NOW + now_offset)
    text = email.utils.formatdate(now + ahead_s, usegmt=True)  # IMF-fixdate
    info = parse_ratelimit({"Retry-After": text}, now=now)
    assert info.retry_after_s == pytest.approx(float(ahead_s))
    assert info.problems == ()


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_epoch_reset_round_trip(ahead_s: int, now_offset: int) -> None:
    now = float(NOW + now_offset)
    info = parse_ratelimit({"X-RateLimit-Reset": str(int(now) + ahead_s)}, now=now)
    assert info.reset_s == pytest.approx(float(ahead_s))


_PLAIN_CASE_NAMES = st.sampled_from([
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
    "x-ratelimit-reset", "RateLimit-Remaining"])  # the last one: never the shortcut's
_DIGITISH = st.one_of(
    st.integers(min_value=0, max_value=10**20).map(str),
    st.text(alphabet=st.sampled_from(list("0123456789 +-.٣²e")), max_size=22),
    st.sampled_from(["999999999", "1000000000", "1700000030", "999999999999999999",
                     "1000000000000000000", "007", ""]))


@given(st.dictionaries(_PLAIN_CASE_NAMES, _DIGITISH),
       st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_the_plain_digits_shortcut_reads_what_the_general_parser_reads(
        headers: dict[str, str], now: float) -> None:
    """The load path's shortcut (plain ``X-RateLimit-*``/``Retry-After`` digits) is one
    definition with the general parser: the same figures, sources and problems."""
    assert parse_ratelimit(headers, now=now) == _parse_general(_lower_headers(headers), now)
