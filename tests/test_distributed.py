"""Scale-out on one machine: a Locust master and two workers started as separate
``secton-harness load`` processes, each worker with its own ``--out`` as if it ran on
another machine, then the procedure of docs/scaling.md: copy every worker's part files
into the master's run folder, merge, re-judge the thresholds on the merged records.

Asserts on counts and on the merged data only (never on speed): records from both workers,
Locust's count == record count == ``secton_requests_total`` at the master, thresholds
judged on the merged records.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from conftest import ROOT, free_port, write_toml

from benchmarks.truth import demo_keys
from loadtests.scenario import load_scenario
from loadtests.thresholds import measure
from secton_harness.records import merge_parts, read_records

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
DEMO_KEYS = demo_keys()


def load_cmd(scenario: Path, target: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
            "--target", target, "--keys", str(KEYS), "--out", str(out), *extra]


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("secton_"))}


def copy_worker_parts(worker_out: Path, master_out: Path) -> int:
    """Step 3 of docs/scaling.md: a worker's parts into the master's records.parts/."""
    target = master_out / "records.parts"
    target.mkdir(exist_ok=True)
    parts = sorted((worker_out / "records.parts").glob("*.parquet"))
    for part in parts:
        shutil.copy2(part, target / part.name)
    return len(parts)


def test_master_and_two_workers_merge_records_metrics_thresholds(
        reference_server: Any, tmp_path: Path) -> None:
    server = reference_server({"limits": {"algorithm": "none"},
                               "latency": {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0},
                               "keys": DEMO_KEYS})
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "5s", "arrival": "even", "drain": "2s",
        "endpoints": {"models": {"rate": "10/s", "users": 4},
                      "chat": {"rate": "40/s", "users": 8}},
        # needs both workers' records: one worker alone sends about half
        "thresholds": {"all": ["error_rate == 0", "requests >= 200"],
                       "chat": ["rps >= 30"]}})
    master_port, metrics_port = free_port(), free_port()
    master_out = tmp_path / "master"
    master = subprocess.Popen(
        load_cmd(scenario, server.url, master_out, "--master", "--expect-workers", "2",
                 "--master-host", "127.0.0.1", "--master-port", str(master_port),
                 "--metrics-port", str(metrics_port), "--metrics-linger", "4s"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers, worker_outs = [], [tmp_path / "worker-a", tmp_path / "worker-b"]
    try:
        time.sleep(1.0)
        for out in worker_outs:
            workers.append(subprocess.Popen(
                load_cmd(scenario, server.url, out, "--worker", "--master-host", "127.0.0.1",
                         "--master-port", str(master_port)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        last: dict[str, float] = {}
        deadline = time.monotonic() + 50
        while master.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
            with contextlib.suppress(OSError):
                last = scrape(metrics_port)
        master_stderr = master.communicate(timeout=10)[1]
        for worker in workers:
            worker.wait(timeout=15)
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert master.returncode in (0, 1), master_stderr[-2000:]
    assert all(w.returncode == 0 for w in workers), [w.stderr.read()[-1000:]
                                                     for w in workers if w.stderr]
    # the workers keep their parts unmerged in their own folders ...
    copied = [copy_worker_parts(out, master_out) for out in worker_outs]
    assert all(copied), copied
    # ... the master merges them and judges the thresholds again on every record
    merge_parts(master_out)
    table = read_records(master_out)
    assert len(set(table["worker"].to_pylist())) == 2
    locust = json.loads((master_out / "locust-summary.json").read_text())
    assert table.num_rows == locust["requests"] > 0
    counted = sum(v for k, v in last.items() if k.startswith("secton_requests_total{"))
    assert counted == table.num_rows
    assert sum(v for k, v in last.items()
               if k.startswith("secton_request_duration_seconds_count{")) == table.num_rows
    chat = table.filter(pc.equal(table["endpoint"], "/v1/chat/completions"))
    assert measure("rps", chat) == pytest.approx(40, rel=0.15)  # two workers' shares sum up
    results = load_scenario(scenario).threshold_set().evaluate(table)
    assert [r.describe() for r in results if not r.passed] == []
    # the master alone saw no records: its own verdict cannot stand for a multi-machine run
    master_info = json.loads((master_out / "run.json").read_text())
    assert master_info["records"] == 0
