"""``load --max-requests`` never shortens a run silently (review item: one endpoint cut).

The cap is split over the endpoints in proportion to the requests each is expected to
send, not to their user counts: the skew scenario (a fast endpoint with 1 user beside a
slow one with 10) used to give the fast one a tenth of the cap, send 5 of its 40 requests
and pass. Real Locust processes against the reference server.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_toml

from loadtests.pacing import arrival_offsets
from loadtests.scenario import load_scenario
from secton_harness.records import read_records

KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"

#: models 10/s with 1 user, chat 1/s with 10 users, 4 s: 40 + 4 = 44 requests
SKEW = {"name": "skew", "duration": "4s", "drain": "5s",
        "endpoints": {"models": {"rate": "10/s", "users": 1},
                      "chat": {"rate": "1/s", "users": 10}}}


def _load(tmp_path: Path, url: str, scenario: Path, cap: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
         "--target", url, "--keys", str(KEYS), "--out", str(tmp_path / "run"),
         "--max-requests", str(cap)], capture_output=True, text=True, timeout=120)


def test_the_cap_is_split_by_expected_requests(tmp_path: Path) -> None:
    scenario = load_scenario(write_toml(tmp_path / "s.toml", SKEW))
    assert scenario.expected_slots() == {"models": 40, "chat": 4}
    caps = scenario.request_caps(50)
    assert caps["models"] >= 40 and caps["chat"] >= 4 and sum(caps.values()) <= 50
    exact = scenario.request_caps(44)
    assert exact == pytest.approx({"models": 40, "chat": 4})


def test_a_cap_below_the_scenario_is_refused(tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "s.toml", SKEW)
    done = _load(tmp_path, "http://127.0.0.1:9", scenario, 43)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "44 requests" in line and "--max-requests 43" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_skewed_endpoints_under_a_cap_that_fits_are_not_cut(tmp_path: Path,
                                                             reference_server) -> None:
    server = reference_server()
    scenario = write_toml(tmp_path / "s.toml", SKEW)
    done = _load(tmp_path, server.url, scenario, 50)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    rates = info["rates"]
    assert (rates["models"]["sent"], rates["models"]["scheduled"]) == (40, 40)
    assert (rates["chat"]["sent"], rates["chat"]["scheduled"]) == (4, 4)
    assert rates["models"]["capped"] == rates["chat"]["capped"] == 0
    assert read_records(tmp_path / "run").num_rows == 44


@pytest.mark.slow
def test_a_cut_that_still_happens_fails_naming_the_cap(tmp_path: Path,
                                                      reference_server) -> None:
    """Poisson arrivals are random: a cap that fits the mean (40) can still be short. The
    seed fixes the schedule at 52 slots (process 0, endpoint 0: the pacer's seed), so 12
    slots past the cap are on record as scheduled and capped, and the run fails."""
    seed = 1
    slots = len(list(arrival_offsets(lambda _t: 10.0, 4.0, "poisson",
                                     random.Random(f"{seed}-0-0"))))
    assert slots > 40
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "4s", "drain": "5s", "arrival": "poisson", "seed": seed,
        "endpoints": {"models": {"rate": "10/s", "users": 2}}})
    server = reference_server()
    done = _load(tmp_path, server.url, scenario, 40)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    models = info["rates"]["models"]
    assert models["sent"] == 40 == read_records(tmp_path / "run").num_rows  # a hard cap
    assert models["scheduled"] == slots and models["capped"] == slots - 40
    check = next(c for c in info["checks"] if c["check"] == "rate:models")
    assert not check["passed"] and "--max-requests 40" in check["detail"], check
    assert "--max-requests 40" in done.stdout + done.stderr
