"""The report on a run folder written by a real ``load`` run: the scenario is read where
``load`` writes it, so a baseline of another scenario is refused.

The report's other tests write run folders themselves; this one proves the reader and the
real writer agree (they did not: the report read a top-level ``scenario`` that ``load``
never wrote, so every ``runs[].scenario`` was null and the scenario rule never applied).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_toml

from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
SCENARIO = {"name": "tiny-ramp", "shape": "step", "duration": "2s", "step": {"steps": 2},
            "endpoints": {"models": {"rate": "4/s", "users": 2}}}


def _harness(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_a_real_load_run_reports_its_scenario(default_server: ReferenceServer,
                                              tmp_path: Path) -> None:
    run = tmp_path / "run"
    loaded = _harness("load", "--scenario", write_toml(tmp_path / "s.toml", SCENARIO),
                      "--target", default_server.url, "--keys", KEYS, "--out", run)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    # the same run under another scenario name, as a baseline
    other = shutil.copytree(run, tmp_path / "other")
    info = json.loads((other / "run.json").read_text())
    info["config"]["scenario"]["name"] = "another-scenario"
    (other / "run.json").write_text(json.dumps(info))

    done = _harness("report", run, other, "--out", tmp_path / "both")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    scenario = summary["runs"][0]["scenario"]
    assert scenario["name"] == "tiny-ramp" and scenario["shape"] == "step"
    assert scenario["steps"] == 2 and scenario["duration_s"] == 2.0
    assert scenario["endpoints"] == [{"name": "models", "rate": 4.0, "users": 2}]
    assert [row["shape"] for row in summary["comparison"]] == ["step", "step"]
    names = [c["name"] for c in summary["runs"][0]["checks"]]  # load's default checks
    assert "requests" in names and any(name.startswith("rate:") for name in names), names

    refused = _harness("report", run, "--baseline", other, "--out", tmp_path / "b")
    assert refused.returncode == 2, (refused.returncode, refused.stderr)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "scenario another-scenario vs tiny-ramp" in lines[0], lines
