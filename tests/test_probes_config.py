"""Harness config (probes section), overrides, and the condition evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, write_toml

from probes.checks import CHECKS
from probes.conditions import Condition
from probes.config import (
    CHECK_NAMES,
    HarnessConfig,
    apply_overrides,
    load_harness_config,
)
from secton_harness.error_classes import TRANSPORT_CLASSES
from secton_harness.errors import BadInput


def test_example_config_loads_with_per_check_overrides() -> None:
    config = load_harness_config(ROOT / "examples" / "harness.toml")
    assert [t.label for t in config.targets] == ["local"]
    assert Path(config.targets[0].keys or "").is_file()
    chat = config.probes.settings("chat_completion")
    assert (chat.interval, chat.timeout, chat.degraded, chat.failed) == (300, 30, 5, 20)
    assert config.probes.settings("ratelimit_headers").interval == 60
    assert config.probes.settings("auth_valid").interval == 30


def test_bad_values_name_file_and_field(tmp_path: Path) -> None:
    cases = {
        "probes.checks.chat_completion.interval": {"probes": {"checks": {
            "chat_completion": {"interval": "5x"}}}},
        "probes.checks": {"probes": {"checks": {"chat": {"interval": "5s"}}}},
        "targets[0].url": {"targets": [{"label": "a", "url": "ftp://x"}]},
        "probes.jitter": {"probes": {"jitter": 2}},
        "targets[0].label": {"targets": [{"label": "a b", "url": "http://x"}]},
    }
    for field, data in cases.items():
        path = write_toml(tmp_path / "h.toml", data)
        with pytest.raises(BadInput) as caught:
            load_harness_config(path)
        assert f"h.toml: {field}" in str(caught.value), (field, str(caught.value))


def test_target_overrides_and_env() -> None:
    config = HarnessConfig.model_validate({"targets": [{"label": "prod",
                                                        "url": "https://api.example/v1"}]})
    assert apply_overrides(config, env={}).targets[0].label == "prod"
    env = {"SECTON_BASE_URL": "http://127.0.0.1:9"}
    assert apply_overrides(config, env=env).targets[0].url == "http://127.0.0.1:9"
    cli = apply_overrides(config, "http://127.0.0.1:8", "staging", env=env)
    assert (cli.targets[0].label, cli.targets[0].url) == ("staging", "http://127.0.0.1:8")
    with pytest.raises(BadInput, match="no target"):
        apply_overrides(HarnessConfig(), env={})
    with pytest.raises(BadInput, match="--target"):
        apply_overrides(HarnessConfig(), "not a url", env={})


def test_disabled_checks_are_not_run() -> None:
    config = HarnessConfig.model_validate(
        {"probes": {"checks": {"chat_completion": {"enabled": False}}}})
    assert [s.name for s in config.enabled_checks()] == [
        n for n in CHECK_NAMES if n != "chat_completion"]


def test_conditions_print_resolved_values() -> None:
    assert Condition.parse("[STATUS] == 200", "status").evaluate({"STATUS": 500}).shown == \
        "expected [STATUS] == 200, got 500"
    # a failed != never reads as a true statement ("[STATUS] (429) != 429" did)
    assert Condition.parse("[STATUS] != 429", "ratelimited").evaluate({"STATUS": 429}).shown \
        == "expected [STATUS] != 429, got 429"
    org = Condition.parse("[ORG] == [KEY_ORG]", "invariant")
    outcome = org.evaluate({"ORG": "org_open", "KEY_ORG": "org_alpha"})
    assert not outcome.ok and outcome.shown == \
        "expected [ORG] == [KEY_ORG] (org_alpha), got org_open"
    assert org.evaluate({"ORG": "a", "KEY_ORG": "a"}).ok
    models = Condition.parse("[MODEL_IDS] contains [EXPECTED_MODELS]", "invariant")
    assert models.evaluate({"MODEL_IDS": ["a", "b"], "EXPECTED_MODELS": ["a"]}).ok
    assert not models.evaluate({"MODEL_IDS": ["b"], "EXPECTED_MODELS": ["a"]}).ok
    ct = Condition.parse("[CONTENT_TYPE] =~ json", "content_type")
    assert ct.evaluate({"CONTENT_TYPE": "application/problem+json"}).ok
    assert not ct.evaluate({"CONTENT_TYPE": "text/html"}).ok
    assert not Condition.parse("[STATUS] == 200", "status").evaluate({}).ok  # missing fails
    with pytest.raises(ValueError, match="reason"):
        Condition.parse("[STATUS] == 200", "nope")
    with pytest.raises(ValueError, match="PLACEHOLDER"):
        Condition.parse("STATUS = 200", "status")


def test_every_check_orders_transport_before_status_before_body() -> None:
    transport = ["timeout", "connect", "reset", "too_large", "protocol"]
    # the probe's transport reasons are exactly the vocabulary's transport classes
    assert set(transport) == TRANSPORT_CLASSES
    order = [*transport, "ratelimited", "status", "content_type", "schema", "invariant"]
    for spec in CHECKS.values():
        reasons = [c.reason for c in spec.conditions]
        assert reasons[:5] == transport, spec.name
        positions = [order.index(r) for r in reasons]
        assert positions == sorted(positions), spec.name


def test_unknown_top_level_table_is_an_error_naming_it(tmp_path: Path) -> None:
    """A ``[probe]`` typo used to load silently as the defaults."""
    path = write_toml(tmp_path / "harness.toml", {"probe": {"interval": "5x"}})
    with pytest.raises(BadInput) as caught:
        load_harness_config(path)
    assert "probe" in str(caught.value) and "harness.toml" in str(caught.value)
