"""Config loading: every bad input becomes one line naming file, field and problem."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secton_harness.config import (
    Duration,
    HttpUrl,
    Model,
    Rate,
    is_loopback,
    load_toml_model,
    parse_duration,
    parse_http_url,
    parse_rate,
    require_loopback,
)
from secton_harness.errors import BadInput


class Target(Model):
    url: HttpUrl
    timeout_s: Duration = 10.0


class Sample(Model):
    target: Target
    rate: Rate = 1.0
    name: str = "x"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "harness.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0), ("2", 2.0), (1.5, 1.5),
    ("2min", 120.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "per_second"), [
    ("5/s", 5.0), ("30/min", 0.5), ("0.5/s", 0.5), ("3600/h", 1.0), (7, 7.0),
])
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["5x", "", "s", "-1s", True, None, "1.2.3s"])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="duration|negative"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["5/fortnight", "fast", "/s", True])
def test_bad_rates_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="rate|unit"):
        parse_rate(bad)


@pytest.mark.parametrize("bad", ["ftp://x", "localhost:8080", "http://", "http://h:99999", 3])
def test_bad_urls_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_http_url(bad)


def test_url_trailing_slash_removed() -> None:
    assert parse_http_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"


def test_valid_file_loads_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, 'rate = "30/min"\n[target]\nurl = "http://127.0.0.1:9"\n'
                           'timeout_s = "250ms"\n')
    config = load_toml_model(path, Sample)
    assert config.target.timeout_s == 0.25
    assert config.rate == 0.5
    with pytest.raises(Exception, match="frozen"):
        config.rate = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(("text", "expected"), [
    ('[target]\nurl = "nope"\n', r"harness.toml: target.url: .*not an http\(s\) URL"),
    ('[target]\nurl = "http://a"\ntimout_s = 3\n', r"target.timout_s: unknown field"),
    ("rate = 1\n", r"harness.toml: target: missing"),
    ('[target]\nurl = "http://a"\ntimeout_s = "5x"\n', r"target.timeout_s: .*'5x' is not a "
                                                       r"duration; use e.g. '30s'"),
    ('name = 3\n[target]\nurl = "http://a"\n', r"harness.toml: name: .*string"),
    ("[target\n", r"harness.toml: not valid TOML"),
])
def test_bad_config_gives_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(BadInput, match=expected) as info:
        load_toml_model(write(tmp_path, text), Sample)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="nothere.toml: config not found"):
        load_toml_model(tmp_path / "nothere.toml", Sample)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is a directory"):
        load_toml_model(tmp_path, Sample)


@given(st.text(max_size=30))
def test_duration_parser_never_raises_anything_but_valueerror(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert parse_duration(text) >= 0


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_duration_seconds_round_trip(seconds: float) -> None:
    assert parse_duration(f"{seconds:.6f}s") == pytest.approx(round(seconds, 6))


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8080", True), ("http://localhost", True), ("http://[::1]:9", True),
    ("http://127.8.9.10", True), ("https://api.secton.org", False), ("http://10.0.0.1", False),
])
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_require_loopback_refuses_remote_without_confirmation() -> None:
    require_loopback("http://127.0.0.1:1", False, "why")
    require_loopback("https://api.secton.org", True, "why")
    with pytest.raises(BadInput, match="api.secton.org is not loopback: it bursts; pass "
                                       "--allow-remote to confirm"):
        require_loopback("https://api.secton.org", False, "it bursts")


@pytest.mark.parametrize(("url", "why"), [
    ("http://user:hunter2pw@127.0.0.1:9", "user:password"),
    ("http://user@127.0.0.1:9/v1", "user:password"),
    ("https://:hunter2pw@example.com", "user:password"),
    ("http://127.0.0.1:9/?token=hunter2pw", "query string"),
    ("http://127.0.0.1:9?", "query string"),
    ("http://127.0.0.1:9/#hunter2pw", "fragment"),
    ("ftp://user:hunter2pw@127.0.0.1", "not an http"),
    ("http://user:hunter2pw@127.0.0.1:99999", "user:password"),
    ("http://u:hunter2pw/x@127.0.0.1", "invalid port"),
])
def test_urls_with_credentials_or_a_query_are_refused_unshown(url: str, why: str) -> None:
    """user:password would be written to run.json, reports and output (and sent as Basic
    auth instead of the Bearer key); a query garbles every request path."""
    with pytest.raises(ValueError, match=why) as info:
        parse_http_url(url)
    assert "hunter2pw" not in str(info.value)
