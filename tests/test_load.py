"""End-to-end load runs: the real CLI, a real Locust child, the real reference server.

Each run is a few seconds long. Rates are asserted on the records (send times), which the
pacer controls; nothing here asserts on how fast the machine is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from conftest import ROOT, free_port, write_toml

from benchmarks.truth import demo_keys
from loadtests.thresholds import measure
from secton_harness.records import read_records
from secton_harness.runfolder import read_run_info
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
MODELS, CHAT = "/v1/models", "/v1/chat/completions"
DEMO_KEYS = demo_keys()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceServer]:
    """Unlimited server (no 429s) with small latency, shared by the rate tests."""
    config = write_toml(tmp_path_factory.mktemp("sim") / "sim.toml", {
        "limits": {"algorithm": "none"}, "latency": {"base_ms": 2, "per_token_ms": 0.05,
                                                      "jitter_ms": 1}, "keys": DEMO_KEYS})
    with ReferenceServer(config) as running:
        yield running


def cli(scenario: Path, target: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
            "--target", target, "--keys", str(KEYS), "--out", str(out), *extra]


def run_cli(*args: Any, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout)


def rate(table: Any, endpoint: str) -> float:
    return measure("rps", table.filter(pc.equal(table["endpoint"], endpoint)))


def test_rates_records_and_passing_thresholds(server: ReferenceServer, tmp_path: Path) -> None:
    """Even arrivals: 0.5/s and 25/s reached within 10 %; one record per Locust request."""
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "7s", "arrival": "even", "validate_sample": 1.0,
        "endpoints": {"models": {"rate": "0.5/s", "users": 2,
                                 "params": [{"category": "chat"}, {"sort": "name"}]},
                      "chat": {"rate": "1500/min", "users": 10}},
        "thresholds": {"all": ["error_rate == 0", "p95_latency_s < 2"],
                       "chat": ["rps >= 20"]}})
    out = tmp_path / "run"
    done = run_cli(scenario, server.url, out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "error_rate (0) == 0" in done.stderr
    table = read_records(out)
    assert rate(table, MODELS) == pytest.approx(0.5, rel=0.10)
    assert rate(table, CHAT) == pytest.approx(25, rel=0.10)
    locust = json.loads((out / "locust-summary.json").read_text())
    assert table.num_rows == locust["requests"] > 0
    info = read_run_info(out)
    assert info["outcome"] == "passed" and info["records"] == table.num_rows
    rows = table.to_pylist()
    chat = [r for r in rows if r["endpoint"] == CHAT]
    assert all(r["total_tokens"] and r["intended_ts"] <= r["ts"] for r in chat)
    assert {r["org"] for r in chat} == {"org_alpha", "org_beta"}
    assert not [r["reason"] for r in rows if r["error"]]  # contract checked on every response
    assert "sk-demo" not in (out / "run.json").read_text()


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("secton_"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_processes_merge_records_and_metrics(server: ReferenceServer, tmp_path: Path) -> None:
    """--processes 2: both workers' records merged, metrics at the master count every
    request exactly once, rates within 10 % (each worker paces its share)."""
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "6s", "arrival": "even",
        "endpoints": {"models": {"rate": "10/s", "users": 4}, "chat": {"rate": "80/s",
                                                                         "users": 16}}})
    out, port = tmp_path / "run", free_port()
    # Locust's master announces spawning_complete without waiting for the workers' reports,
    # as it does after 1 s on a loaded machine: the workers must still count their final
    # users (they once counted none, recorded 0 requests and the run exited 0)
    env = {**os.environ, "LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP": "0"}
    child = subprocess.Popen(cli(scenario, server.url, out, "--processes", "2",
                                 "--metrics-port", str(port), "--metrics-linger", "3s"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    last: dict[str, float] = {}
    while child.poll() is None:
        time.sleep(0.3)
        with contextlib.suppress(OSError):
            last = _scrape(port)
    assert child.returncode == 0, child.stderr.read()[-2000:] if child.stderr else ""
    table = read_records(out)
    assert len(set(table["worker"].to_pylist())) == 2
    assert rate(table, MODELS) == pytest.approx(10, rel=0.10)
    assert rate(table, CHAT) == pytest.approx(80, rel=0.10)
    assert table.num_rows == json.loads((out / "locust-summary.json").read_text())["requests"]
    counted = sum(v for k, v in last.items() if k.startswith("secton_requests_total{"))
    assert counted == table.num_rows
    histogram = sum(v for k, v in last.items()
                    if k.startswith("secton_request_duration_seconds_count{"))
    assert histogram == table.num_rows
    assert last['secton_load_target_rate{endpoint="/v1/chat/completions"}'] in (0.0, 80.0)
    assert last['secton_load_dropped_total{endpoint="/v1/chat/completions"}'] == 0.0
    assert not list(out.glob("records.parts/*"))


def test_failing_thresholds_exit_1_and_429_counted_apart(reference_server: Any,
                                                         tmp_path: Path) -> None:
    limited = reference_server({"limits": {"algorithm": "fixed_window",
                                           "key": {"limit": 5, "window_s": "60s"},
                                           "org": {"limit": 1000, "window_s": "60s"}},
                                "latency": {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0},
                                "keys": DEMO_KEYS})
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "3s", "endpoints": {"models": {"rate": "20/s", "users": 5}},
        "thresholds": {"all": ["ratelimited_rate < 0.05", "error_rate == 0"]}})
    out = tmp_path / "run"
    done = run_cli(scenario, limited.url, out)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "ratelimited_rate (0." in done.stderr and "FAIL" in done.stderr
    table = read_records(out)
    per_key = Counter(table["key_alias"].to_pylist())
    allowed = sum(min(5, n) for n in per_key.values())  # each key's first 5 in the window
    assert len(per_key) == 5
    assert measure("ratelimited", table) == table.num_rows - allowed
    assert measure("errors", table) == 0
    refused = [r for r in table.to_pylist() if r["status"] == 429]
    assert all(r["retry_after_s"] >= 1 and r["ratelimit_limit"] == 5 for r in refused)
    info = read_run_info(out)
    assert info["outcome"] == "failed"
    assert [t["passed"] for t in info["thresholds"]] == [False, True]


def test_bad_scenario_and_remote_target_exit_2(tmp_path: Path) -> None:
    bad = write_toml(tmp_path / "bad.toml", {"duration": "5x", "endpoints": {
        "models": {"rate": "1/s"}}})
    done = run_cli(bad, "http://127.0.0.1:9", tmp_path / "r1")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("duration: '5x' is not a duration; use e.g. '30s'")
    good = write_toml(tmp_path / "good.toml", {"duration": "5s", "endpoints": {
        "models": {"rate": "1/s"}}})
    done = run_cli(good, "http://example.com", tmp_path / "r2")
    assert done.returncode == 2 and "--allow-remote" in done.stderr


def test_sigterm_keeps_every_record(server: ReferenceServer, tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "60s", "endpoints": {"chat": {"rate": "40/s", "users": 8}}})
    out = tmp_path / "run"
    child = subprocess.Popen(cli(scenario, server.url, out), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(out.glob("records.parts/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=40)
    assert child.returncode == 130, err[-2000:]
    info = read_run_info(out)
    assert info["outcome"] == "interrupted"
    table = read_records(out)
    assert table.num_rows == json.loads((out / "locust-summary.json").read_text())["requests"]
    assert table.num_rows >= 40


def test_abort_on_fail_stops_early(server: ReferenceServer, tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "60s", "abort_on_fail": True, "abort_grace": "2s",
        "endpoints": {"models": {"rate": "20/s"}},
        "thresholds": {"all": ["p50_latency_s < 0.000001"]}})
    out = tmp_path / "run"
    done = run_cli(scenario, server.url, out, timeout=40)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "stopped early: p50_latency_s (" in done.stderr and "(abort_on_fail)" in done.stderr
    info = read_run_info(out)
    assert info["outcome"] == "failed" and info["aborted_on"]
    assert read_records(out).num_rows < 20 * 30  # stopped long before the 60 s
