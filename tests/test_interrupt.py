"""SIGINT and SIGTERM in the middle of probe, ratelimit and load runs.

Each run is interrupted once it has recorded something; then: the process exits by itself
(probe service 0, as a service asked to stop; load and ratelimit 130), every record taken
is in the run folder (no stray part files left unmerged where the command merges),
``run.json`` says ``interrupted``, and ``secton-harness report`` builds from the folder.
Already covered elsewhere: probe + SIGTERM (test_probe_cli.py), load + SIGTERM
(test_load.py, with the record count checked against Locust's); here the other signal of
each and the report.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, write_toml

from secton_harness.records import read_records
from secton_harness.runfolder import read_run_info
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
SLOW_MAPPING = {"limits": {"algorithm": "token_bucket", "key": {"limit": 20, "window_s": 10},
                           "org": {"limit": 60, "window_s": 10}},
                "latency": {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0},
                "keys": [{"alias": "a1", "key": "sk-demo-alpha-1", "org": "org_alpha"},
                         {"alias": "a2", "key": "sk-demo-alpha-2", "org": "org_alpha"}]}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", *args]


def interrupt_when_recording(process: subprocess.Popen[str], out: Path, sig: signal.Signals,
                             settle_s: float = 1.5) -> tuple[str, str]:
    """Wait for the first records (parts or merged), then send ``sig``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if list(out.glob("records.parts/*.parquet")) or (out / "records.parquet").exists():
            break
        time.sleep(0.1)
    time.sleep(settle_s)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    return process.communicate(timeout=60)


def assert_interrupted_and_reportable(out: Path, tmp_path: Path) -> int:
    info = read_run_info(out)
    assert info["outcome"] == "interrupted", info
    rows = read_records(out).num_rows
    assert rows > 0
    report = subprocess.run(cli("report", str(out), "--out", str(tmp_path / "report")),
                            capture_output=True, text=True, timeout=120)
    # the report is written; an interrupted run stopped early, so its verdict is FAILED
    # and `report` exits 1 (it exited 0 on a FAILED verdict before, see docs/reports.md)
    assert report.returncode == 1, report.stderr[-1000:]
    assert (tmp_path / "report" / "report.html").exists()
    assert "STOPPED EARLY" in (tmp_path / "report" / "report.md").read_text()
    return rows


def test_probe_service_sigint(default_server: ReferenceServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        cli("probe", "--target", default_server.url, "--keys", str(KEYS), "--out", str(out),
            "--port", str(free_port())), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    # The first results are only written at the sink's first flush: wait on run.json.
    time.sleep(3)
    _stdout, stderr = interrupt_when_recording(process, out, signal.SIGINT, settle_s=0)
    assert process.returncode == 0, stderr[-1000:]
    assert "Traceback" not in stderr
    # a signal is the service's normal end: its window is judged on its results, not
    # reported as a run stopped early
    info = read_run_info(out)
    assert info["stopped_by"] == "SIGINT" and info["outcome"] == "passed", info
    rows = read_records(out).num_rows
    assert rows > 0 and rows == info["records"]
    assert not (out / "records.parts").exists()
    report = subprocess.run(cli("report", str(out), "--out", str(tmp_path / "report")),
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr[-1000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "PASSED" in text and "STOPPED EARLY" not in text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ratelimit_interrupted(sig: signal.Signals, reference_server: object,
                               tmp_path: Path) -> None:
    server = reference_server(SLOW_MAPPING)  # type: ignore[operator]
    out = tmp_path / "rl"
    process = subprocess.Popen(
        cli("ratelimit", "--target", server.url, "--keys", str(KEYS), "--out", str(out),
            "--max-duration", "60s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    _, stderr = interrupt_when_recording(process, out, sig, settle_s=2.5)
    assert process.returncode == 130, stderr[-1000:]
    assert_interrupted_and_reportable(out, tmp_path)
    assert not (out / "records.parts").exists()


def test_ratelimit_interrupt_prints_no_traceback(reference_server: object,
                                                 tmp_path: Path) -> None:
    server = reference_server(SLOW_MAPPING)  # type: ignore[operator]
    out = tmp_path / "rl"
    process = subprocess.Popen(
        cli("ratelimit", "--target", server.url, "--keys", str(KEYS), "--out", str(out),
            "--max-duration", "60s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    _, stderr = interrupt_when_recording(process, out, signal.SIGTERM, settle_s=2.5)
    assert "Traceback" not in stderr, stderr[-1000:]


def test_load_sigint(reference_server: object, tmp_path: Path) -> None:
    server = reference_server({"limits": {"algorithm": "none"},  # type: ignore[operator]
                               "keys": SLOW_MAPPING["keys"]})
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "60s", "endpoints": {"models": {"rate": "20/s", "users": 4}}})
    out = tmp_path / "run"
    write_toml(tmp_path / "keys.toml", {"keys": SLOW_MAPPING["keys"]})
    process = subprocess.Popen(
        cli("load", "--scenario", str(scenario), "--target", server.url, "--keys",
            str(tmp_path / "keys.toml"), "--out", str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = interrupt_when_recording(process, out, signal.SIGINT)
    assert process.returncode == 130, stderr[-1000:]
    assert "Traceback" not in stderr
    assert assert_interrupted_and_reportable(out, tmp_path) >= 20


@pytest.mark.parametrize("command", ["probe", "ratelimit"])
def test_sigkill_leaves_running_and_report_says_never_finished(
        command: str, reference_server: object, tmp_path: Path) -> None:
    """SIGKILL gives a command no chance to write its end (probe and ratelimit have no
    child to do it, unlike load): run.json keeps ``running``, and ``report`` names the
    run "never finished", never a pass."""
    server = reference_server(SLOW_MAPPING)  # type: ignore[operator]
    out = tmp_path / "run"
    extra = (["--port", str(free_port())] if command == "probe"
             else ["--max-duration", "60s"])
    process = subprocess.Popen(
        cli(command, "--target", server.url, "--keys", str(KEYS), "--out", str(out),
            *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if list(out.glob("records.parts/*.parquet")):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the run ended before it could be killed"
    process.kill()
    process.wait(timeout=30)
    assert read_run_info(out)["outcome"] == "running"
    assert read_records(out).num_rows > 0  # the flushed batches survive
    report = subprocess.run(cli("report", str(out), "--out", str(tmp_path / "report")),
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 1, report.stderr[-1000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "STOPPED EARLY" in text and "never finished" in text
