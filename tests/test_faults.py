"""Every command against every fault of the reference server: keeps running, classifies
each failure, loses no record; probes recover when the target comes back.

* Continuous probe service against one server per fault mode at rate 1.0 (all at once, so
  the test takes one probe duration): the service runs to its ``--duration``, exits 1
  (``failed``), every failure has the reason of its fault, and the records equal the
  results the service counted (run.json ``summary``, kept by a separate listener).
* Continuous probe service while its target is killed (SIGKILL) and restarted on the same
  port: failures during the outage are ``connect``/``timeout``, successes resume after.
* ``load`` and ``ratelimit`` against a server with mixed faults: they finish within their
  bounds, and every request has a record with a status or an error class.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port, write_toml

from secton_harness.metrics import CHECK_REASONS
from secton_harness.records import read_records
from secton_harness.runfolder import read_run_info
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
REASONS = set(CHECK_REASONS)
FAST_PROBES = {"probes": {"interval": "0.3s", "timeout": "1s", "jitter": 0.1,
                          "checks": {"chat_completion": {"interval": "0.5s"},
                                     "org_isolation": {"interval": "0.5s"}}}}
#: fault config -> (check, the reason it must fail with)
FAULTS = {
    "error_500": ({"error_500": 1.0}, "auth_valid", "status"),
    "error_503": ({"error_503": 1.0}, "auth_valid", "status"),
    "slow_past_timeout": ({"slow": 1.0, "slow_s": 1.5}, "auth_valid", "timeout"),
    "malformed_json": ({"malformed_json": 1.0}, "models_list", "schema"),
    "wrong_content_type": ({"wrong_content_type": 1.0}, "auth_valid", "content_type"),
    "drop_connection": ({"drop_connection": 1.0}, "auth_valid", "reset"),
}


def sim_config(**faults: Any) -> dict[str, Any]:
    import tomllib

    from simulator.config import DEFAULT_CONFIG

    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    config["faults"] = faults
    config["latency"] = {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0}
    return config


def probe_cmd(config: Path, target: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "probe", "--config", str(config),
            "--target", target, "--keys", str(KEYS), "--out", str(out), "--port", "0", *extra]


def check_bookkeeping(out: Path) -> list[dict[str, Any]]:
    """Records == run.json records == the service's own count of results."""
    info = read_run_info(out)
    rows = read_records(out).to_pylist()
    counted = sum(n for checks in info["summary"].values() for results in checks.values()
                  for n in results.values())
    assert len(rows) == info["records"] == counted > 0
    for row in rows:
        assert row["success"] or row["reason"] in REASONS, row
    return rows


def test_probe_service_classifies_every_fault(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "harness.toml", FAST_PROBES)
    servers, probes = [], {}
    try:
        for name, (faults, _, _) in FAULTS.items():
            server = ReferenceServer(write_toml(tmp_path / f"{name}.toml", sim_config(**faults)))
            servers.append(server.start())
            probes[name] = subprocess.Popen(
                # 8 s: >= 2 runs of a 1 s timeout check even when six services start
                # slowly side by side on a busy machine (4 s gave 1 run once)
                probe_cmd(config, server.url, tmp_path / name, "--duration", "8s"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, process in probes.items():
            out, err = process.communicate(timeout=60)
            assert process.returncode == 1, f"{name}: {err[-1000:]}"
            assert "Traceback" not in err, err
    finally:
        for process in probes.values():
            if process.poll() is None:
                process.kill()
        for server in servers:
            server.stop()
    for name, (_, check, reason) in FAULTS.items():
        out = tmp_path / name
        assert read_run_info(out)["outcome"] == "failed"
        rows = check_bookkeeping(out)
        of_check = [r for r in rows if r["check"] == check]
        assert len(of_check) >= 2, f"{name}: the service stopped probing {check}"
        assert {r["reason"] for r in of_check} == {reason}, name


def _wait_for_line(lines: queue.Queue[str], *words: str, timeout_s: float = 60) -> float:
    """Block until the probe prints a line holding every word; the time it was read."""
    deadline = time.monotonic() + timeout_s
    while True:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        if all(word in line for word in words):
            return time.time()


def test_probe_service_recovers_when_the_target_restarts(tmp_path: Path) -> None:
    """Driven by what the service prints (its state-change lines), not by sleeps, so a busy
    machine that starts the service slowly cannot leave a phase without probes."""
    port = free_port()
    sim = write_toml(tmp_path / "sim.toml", sim_config())
    config = write_toml(tmp_path / "harness.toml", FAST_PROBES)
    out = tmp_path / "run"
    server = ReferenceServer(sim, port=port).start()
    probe = subprocess.Popen(probe_cmd(config, server.url, out, "--duration", "20s"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "COLUMNS": "200"})
    lines: queue.Queue[str] = queue.Queue()
    stdout: list[str] = []

    def read_stdout() -> None:
        assert probe.stdout is not None
        for line in probe.stdout:
            stdout.append(line)
            lines.put(line)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        _wait_for_line(lines, "auth_valid", "PASS")
        time.sleep(1.0)  # a few successful runs before the outage
        assert server.process is not None
        server.process.kill()  # no goodbye: connections simply stop being accepted
        server.process.wait()
        killed_at = time.time()
        _wait_for_line(lines, "auth_valid", "FAIL")
        time.sleep(2.0)  # several failed runs during the outage
        restarted_at = time.time()
        server = ReferenceServer(sim, port=port).start()
        up_at = time.time()  # start() returns once it answers; a busy machine takes seconds
        assert server.url.endswith(f":{port}")
        _wait_for_line(lines, "auth_valid", "PASS")
        probe.wait(timeout=60)
        assert probe.stderr is not None
        stderr = probe.stderr.read()
    finally:
        if probe.poll() is None:
            probe.kill()
        server.stop()
    reader.join(timeout=10)
    assert probe.returncode == 1, stderr[-1000:]  # checks failed during the outage
    assert "Traceback" not in stderr
    rows = check_bookkeeping(out)
    auth = sorted((r for r in rows if r["check"] == "auth_valid"), key=lambda r: r["ts"])
    before = [r for r in auth if r["ts"] < killed_at - 0.5]
    outage = [r for r in auth if killed_at + 0.5 < r["ts"] < restarted_at - 0.2]
    after = [r for r in auth if r["ts"] > up_at + 1.5]
    assert before and all(r["success"] for r in before)
    assert outage and all(not r["success"] and r["reason"] in {"connect", "timeout"}
                          for r in outage), [(r["reason"], r["error"]) for r in outage]
    # recovered and healthy to the end; in between, only a probe a loaded machine made
    # late (the 1 s timeout) may fail, never a connection left dead by the outage
    assert len(after) >= 3 and all(r["success"] for r in after[-3:]), "probes did not recover"
    assert all(r["success"] or r["reason"] == "timeout" for r in after), [
        (r["reason"], r["error"]) for r in after if not r["success"]]


MIXED = {"error_500": 0.15, "error_503": 0.15, "malformed_json": 0.1,
         "wrong_content_type": 0.1, "drop_connection": 0.1, "slow": 0.05, "slow_s": 1.5}


def test_load_keeps_every_record_under_faults(tmp_path: Path) -> None:
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "4s", "timeout": "1s", "drain": "2s", "validate_sample": 1.0,
        "endpoints": {"models": {"rate": "10/s"}, "chat": {"rate": "5/s"}},
        "thresholds": {"all": ["error_rate < 0.01"]}})
    config = sim_config(**MIXED)
    config["limits"] = {"algorithm": "none"}
    with ReferenceServer(write_toml(tmp_path / "sim.toml", config)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
             "--target", server.url, "--keys", str(KEYS), "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]  # the error-rate threshold fails
    assert "Traceback" not in done.stderr
    rows = read_records(tmp_path / "run").to_pylist()
    locust = json.loads((tmp_path / "run" / "locust-summary.json").read_text())
    assert len(rows) == locust["requests"] > 30
    errors = Counter(r["error"] or str(r["status"]) for r in rows)
    assert {"500", "503"} <= set(errors) or {"http"} <= set(errors), errors
    assert {"timeout", "invalid_json", "content_type"} & set(errors), errors
    for row in rows:
        assert (row["status"] == 200 and not row["error"]) or row["error"] or \
            row["status"] >= 400, row


def test_ratelimit_finishes_and_records_every_request_under_faults(tmp_path: Path) -> None:
    config = sim_config(**MIXED)
    config["limits"] = {"algorithm": "fixed_window", "key": {"limit": 8, "window_s": 1},
                        "org": {"limit": 20, "window_s": 1}}
    out = tmp_path / "rl"
    with ReferenceServer(write_toml(tmp_path / "sim.toml", config)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "secton_harness", "ratelimit", "--target", server.url,
             "--keys", str(KEYS), "--out", str(out), "--max-duration", "30s",
             "--max-requests", "400"], capture_output=True, text=True, timeout=90)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    result = json.loads((out / "ratelimit.json").read_text())
    rows = read_records(out).to_pylist()
    assert len(rows) == result["requests_sent"] <= 400
    assert any(r["error"] or r["status"] >= 500 for r in rows), "no fault was seen"


def test_ratelimit_stops_when_the_target_is_down(tmp_path: Path) -> None:
    """Every answer a 500: the mapper gives up after 20 in a row instead of sending its
    whole --max-requests budget, says why, and exits 1."""
    config = sim_config(error_500=1.0)
    out = tmp_path / "rl"
    with ReferenceServer(write_toml(tmp_path / "sim.toml", config)) as server:
        done = subprocess.run(
            [sys.executable, "-m", "secton_harness", "ratelimit", "--target", server.url,
             "--keys", str(KEYS), "--out", str(out), "--max-requests", "400"],
            capture_output=True, text=True, timeout=90)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    result = json.loads((out / "ratelimit.json").read_text())
    assert result["stopped_by"] == "target_down"
    rows = read_records(out).to_pylist()
    # 20 failures in a row stop it; requests already in flight may still land.
    assert 20 <= len(rows) == result["requests_sent"] < 60
    assert read_run_info(out)["outcome"] == "failed"


def test_load_stops_itself_when_the_target_is_down(tmp_path: Path) -> None:
    """A 60 s scenario against a target answering only 500: the run stops itself within
    seconds (stop_when_down, on by default), keeps every record and says why."""
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "60s", "timeout": "1s", "drain": "1s",
        "endpoints": {"models": {"rate": "20/s", "users": 4}}})
    with ReferenceServer(write_toml(tmp_path / "sim.toml", sim_config(error_500=1.0))) as server:
        done = subprocess.run(
            [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
             "--target", server.url, "--keys", str(KEYS), "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    info = read_run_info(tmp_path / "run")
    assert info["outcome"] == "failed"
    assert any("target down" in reason for reason in info["aborted_on"]), info["aborted_on"]
    rows = read_records(tmp_path / "run").to_pylist()
    locust = json.loads((tmp_path / "run" / "locust-summary.json").read_text())
    assert len(rows) == locust["requests"]
    assert 20 <= len(rows) < 20 * 30  # stopped long before the 60 s (1200 requests)
    # every answer was a 500; requests still open when the run stopped are "cancelled"
    assert all(r["status"] == 500 or r["error"] == "cancelled" for r in rows)
    # the report says so first: stopped early, for the dead target
    from reports.build import build_report

    report = build_report([tmp_path / "run"], out=tmp_path / "report")
    verdict = report.summary["runs"][0]["verdict"]
    assert verdict["status"] == "stopped early", verdict
    assert any("target down" in reason for reason in verdict["reasons"]), verdict
    html = report.html.read_text()
    banner = html.index('class="banner failed"')
    assert "STOPPED EARLY" in html[banner:html.index("</div>", banner)]
