"""The wrk2 demonstration: a stalled server cannot hide behind a stalled client.

A steady open-model run (50/s, even arrivals, only 2 users and ``max_users = 2``, so at
most 2 requests are in flight; ``late_tolerance`` long enough that no due request is
dropped) against a reference server that is frozen with SIGSTOP for one second mid-run and
resumed with SIGCONT (no server change needed). Only the 2 requests in flight see the
stall as plain latency (< 1 % of the run, so the plain p99 hides it); the ~50 requests
that were *due* during the stall wait for a free user, and the latency measured from
their intended send time (coordinated-omission corrected) shows it. Both figures must be
in run.json's summary, the CLI's table, and the report (summary.json, report.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, write_toml
from test_truth_counts import DEMO_KEYS

from benchmarks import truth
from loadtests.thresholds import measure
from secton_harness.records import read_records
from secton_harness.runfolder import read_run_info
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
STALL_S = 1.0
STALL_SERVER = {"limits": {"algorithm": "none"}, "admin": {"enabled": True},
                "latency": {"base_ms": 5, "per_token_ms": 0, "jitter_ms": 0},
                "keys": DEMO_KEYS}
STALL_SCENARIO = {"name": "stall", "duration": "6s", "arrival": "even", "drain": "5s",
                  "validate_sample": 0.0,
                  # a fixed pool of 2 (no growth), and due requests wait out the stall
                  # instead of being dropped: the client-side queue this test is about
                  "late_tolerance": "3s",
                  "endpoints": {"models": {"rate": "50/s", "users": 2, "max_users": 2}}}


def stall_server(server: ReferenceServer, started_after: int = 25,
                 stall_s: float = STALL_S, timeout_s: float = 30.0) -> None:
    """Once the load has sent ``started_after`` requests, freeze the server process for
    ``stall_s`` (SIGSTOP), then resume it (SIGCONT)."""
    assert server.process is not None
    deadline = time.monotonic() + timeout_s
    while truth.fetch_stats(server.url)["requests_total"] < started_after:
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(stall_s)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_corrected_p99_shows_a_server_stall_that_plain_p99_hides(tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "stall.toml", STALL_SCENARIO)
    out = tmp_path / "run"
    with ReferenceServer(write_toml(tmp_path / "sim.toml", STALL_SERVER)) as server:
        load = subprocess.Popen(
            [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
             "--target", server.url, "--keys", str(KEYS), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stall_server(server)
            _, stderr = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
        stats = truth.fetch_stats(server.url)
    assert load.returncode == 0, stderr[-2000:]
    table = read_records(out)
    assert table.num_rows == stats["requests_total"] >= 290  # nothing lost to the stall

    plain_p99 = measure("p99_latency_s", table)
    corrected_p99 = measure("p99_corrected_latency_s", table)
    # the stall happened and was seen by the requests in flight ...
    assert measure("max_latency_s", table) >= 0.8 * STALL_S
    # ... but they are under 1 % of the run: the plain p99 hides it
    assert plain_p99 < 0.1
    # measured from when each request was due, the stall is plain to see
    assert corrected_p99 >= 0.5 * STALL_S

    summary = read_run_info(out)["summary"]["all"]
    assert summary["p99_latency_s"] == pytest.approx(plain_p99)
    assert summary["p99_corrected_latency_s"] == pytest.approx(corrected_p99)
    assert "p99 corr." in stderr

    report_dir = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "secton_harness", "report", str(out),
                           "--out", str(report_dir)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    capacity = json.loads((report_dir / "summary.json").read_text())["capacity"]
    assert capacity["latency"]["p99"] == pytest.approx(plain_p99)
    assert capacity["latency_corrected"]["p99"] == pytest.approx(corrected_p99)
    endpoint = capacity["by_endpoint"][0]
    assert endpoint["p99"] < 0.1 <= 0.5 * STALL_S <= endpoint["p99_corrected"]
    markdown = (report_dir / "report.md").read_text()
    assert "p99 corrected" in markdown and "intended send time" in markdown
    assert "intended send (corrected)" in (report_dir / "report.html").read_text()
