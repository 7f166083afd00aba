"""Scenario loading: defaults, shapes, and one clear line for each bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, write_toml

from loadtests.scenario import load_scenario
from secton_harness.errors import BadInput

BASE: dict[str, Any] = {"duration": "10s", "endpoints": {"models": {"rate": "2/s"}}}


def _load(tmp_path: Path, data: dict[str, Any]) -> Any:
    return load_scenario(write_toml(tmp_path / "s.toml", data))


def test_minimal_defaults(tmp_path: Path) -> None:
    scenario = _load(tmp_path, BASE)
    assert scenario.shape == "steady" and scenario.arrival == "even"
    assert scenario.duration == 10.0
    assert scenario.endpoint_loads()["models"].rate == 2.0
    assert scenario.endpoint_loads()["models"].user_count() == 2
    assert scenario.expected_requests("models") == 20


def test_rates_per_minute_and_sub_one_per_second(tmp_path: Path) -> None:
    scenario = _load(tmp_path, {"duration": "1m", "endpoints": {
        "models": {"rate": "0.5/s"}, "chat": {"rate": "30/min", "users": 3}}})
    loads = scenario.endpoint_loads()
    assert loads["models"].rate == 0.5 and loads["chat"].rate == 0.5
    assert loads["chat"].user_count() == 3


def test_step_and_spike_shapes(tmp_path: Path) -> None:
    step = _load(tmp_path, {**BASE, "shape": "step", "step": {"steps": 4}})
    assert [step.multiplier(t) for t in (0, 3, 5.5, 9.9, 10)] == [0.25, 0.5, 0.75, 1.0, 0.0]
    assert step.phase_at(9.9) == "step-4"
    assert step.expected_requests("models") == pytest.approx(2 * 10 * 2.5 / 4)
    spike = _load(tmp_path, {**BASE, "shape": "spike",
                             "spike": {"at": "2s", "length": "3s", "factor": 4}})
    assert [spike.multiplier(t) for t in (1, 2, 4.9, 5)] == [1, 4, 4, 1]
    assert [spike.phase_at(t) for t in (1, 3, 6)] == ["before", "spike", "after"]


def test_example_capacity_scenario_loads() -> None:
    scenario = load_scenario(ROOT / "examples" / "capacity.toml")
    assert len(scenario.threshold_set()) >= 3


@pytest.mark.parametrize(("data", "message"), [
    ({"endpoints": {"models": {"rate": "2/s"}}}, "s.toml: duration: missing"),
    ({**BASE, "duration": "5x"}, "s.toml: duration: '5x' is not a duration"),
    ({**BASE, "endpoints": {}}, "s.toml: endpoints: no endpoint; add [endpoints.models]"),
    ({**BASE, "endpoints": {"models": {"rate": "2/fortnight"}}},
     "s.toml: endpoints.models.rate: '2/fortnight': unknown unit"),
    ({**BASE, "endpoints": {"models": {"rate": 0}}}, "endpoints.models.rate: rate must be > 0"),
    ({**BASE, "shape": "sawtooth"}, "s.toml: shape: 'sawtooth': Input should be"),
    ({**BASE, "duration": "2h"}, "duration 7200s exceeds the cap of 3600s"),
    ({**BASE, "thresholds": {"all": ["p95 < 2"]}}, "unknown metric 'p95'"),
    ({**BASE, "thresholds": {"chta": ["rps > 1"]}}, "thresholds.chta: unknown scope"),
    ({**BASE, "validate_sample": 2}, "s.toml: validate_sample: 2"),
    ({**BASE, "endpoints": {"chat": {"rate": "1/s", "prompts": []}}},
     "endpoints.chat.prompts"),
    ({**BASE, "shape": "spike", "spike": {"at": "8s", "length": "5s"}},
     "spike ends at 13s, after duration 10s"),
    ({**BASE, "ramp": 3}, "s.toml: ramp: unknown field"),
])
def test_bad_input_is_one_line(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as caught:
        _load(tmp_path, data)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text


def test_load_docs_mention_every_field_flag_and_metric() -> None:
    """docs/load.md names every scenario field, every `load` flag and the load metrics."""
    import typer

    from loadtests.command import register
    from loadtests.scenario import ChatLoad, ModelsLoad, Scenario
    from secton_harness.metrics import DROPPED, INFLIGHT, TARGET_RATE, USERS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "load.md").read_text()
    app = typer.Typer()
    register(app)
    command = typer.main.get_command(app)
    flags = [opt for param in command.params for opt in param.opts
             if opt.startswith("--") and "completion" not in opt]
    names = [*Scenario.model_fields, *ModelsLoad.model_fields, *ChatLoad.model_fields, *flags,
             DROPPED, INFLIGHT, TARGET_RATE, USERS]
    missing = [name for name in names if f"`{name}" not in doc and f" {name}" not in doc]
    assert not missing, missing
