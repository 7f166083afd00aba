"""Scale-out in one command: a Locust master and two workers started as separate
``secton-harness load`` processes, each worker with its own ``--out`` as if it ran on
another machine. The workers ship their record parts to the master over Locust's message
channel; the master merges and judges them.

Each worker runs on its own test host: a network namespace with its own address on a
bridge the test creates (tests/netns_hosts.py), reaching the master and the target at the
bridge's gateway address over a real network path, as from another machine. Where
namespaces cannot be made (no root), the workers fall back to loopback processes and the
test prints (and warns) so. The target is the
reference server, whose ``/_admin/stats`` is the ground truth; the Pushgateway is the
real ``prometheus-pushgateway`` binary on a free loopback port. Asserts on counts only,
never on speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from conftest import ROOT, free_port, write_toml
from netns_hosts import Hosts, network_hosts

from benchmarks import truth
from loadtests.record_shipping import WINDOW
from secton_harness.records import read_records

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
SERVER = {"limits": {"algorithm": "none"}, "admin": {"enabled": True},
          "latency": {"base_ms": 1, "per_token_ms": 0, "jitter_ms": 0},
          "keys": truth.demo_keys()}
#: The master's whole run is bounded well below this (test deadline).
RUN_BOUND_S = 60


def load_cmd(scenario: Path, target: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
            "--target", target, "--keys", str(KEYS), "--out", str(out), *extra]


@pytest.fixture
def pushgateway() -> Iterator[str]:
    """The real Pushgateway (Debian package prometheus-pushgateway) on a free port."""
    binary = shutil.which("prometheus-pushgateway")
    assert binary is not None, (
        "prometheus-pushgateway is not installed (.ci/install-deps installs it); "
        "a required part fails the run, never skips")
    port = free_port()
    process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def pushed_series(url: str, run: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines()
             if line.startswith("secton_") and f'run="{run}"' in line)}


def locust_processes(cli: subprocess.Popen) -> list[int]:
    """The Locust process(es) a ``secton-harness load`` command started."""
    pids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(cli.pid)],
                          capture_output=True, text=True).stdout.split()
    assert pids, "the CLI has no Locust process"
    return [int(pid) for pid in pids]


def ground_truth(server: Any, stats: Path) -> Counter[Any]:
    """The server's own counts, written when it stops: its ``/_admin/stats`` answers
    loopback clients only, and with namespaces the server listens on their gateway."""
    server.stop()
    return truth.server_counts(json.loads(stats.read_text()))


def net_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def part_count(out: Path) -> int:
    return len(list((out / "records.parts").glob("*.parquet")))


def wait_for(condition: Callable[[], bool], what: str, bound_s: float = 40) -> None:
    """Until ``condition`` holds; a bound (never a timing assertion) against a hang."""
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {bound_s:.0f}s: {what}"
        time.sleep(0.2)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Two worker hosts: network namespaces with their own addresses where they can be
    made, else loopback processes; the test's output says which."""
    with network_hosts(2) as made:
        print(made.describe(), file=sys.stderr)
        if made.why_not:
            warnings.warn(made.describe(), stacklevel=1)
        yield made


def report(run_dir: Path, out: Path) -> tuple[int, dict[str, Any]]:
    """``secton-harness report`` on a run folder: its exit code and its one run's figures."""
    done = subprocess.run([sys.executable, "-m", "secton_harness", "report", str(run_dir),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.returncode, json.loads((out / "summary.json").read_text())["runs"][0]


#: every CLI a test started; the ones still running when it ends are killed (a failed
#: assertion must not leave a run loading the server; their Locust children follow)
STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test(hosts: Hosts) -> Iterator[None]:
    """Torn down before ``hosts`` (it asks for them): processes first, then namespaces."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Cluster:
    """A master and two workers of one scenario, started as three CLI commands; the
    master (with the target) on the hosts' gateway, each worker on its own host."""

    def __init__(self, tmp_path: Path, scenario: Path, url: str, hosts: Hosts,
                 *master_extra: str,
                 worker_extra: tuple[tuple[str, ...], ...] = ((), ())) -> None:
        self.master_out = tmp_path / "master"
        self.worker_outs = [tmp_path / "worker-a", tmp_path / "worker-b"]
        port = free_port()
        # a namespace's gateway is not loopback: allowed, it exists only on this machine
        remote = ("--allow-remote",) if hosts.namespaces else ()
        self.master = subprocess.Popen(
            load_cmd(scenario, url, self.master_out, "--master", "--expect-workers", "2",
                     "--master-host", hosts.gateway, "--master-port", str(port),
                     *remote, *master_extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        self.workers = [subprocess.Popen(hosts.on(index, load_cmd(
            scenario, url, out, "--worker", "--master-host", hosts.gateway,
            "--master-port", str(port), *remote, *extra)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for index, (out, extra) in enumerate(zip(self.worker_outs, worker_extra,
                                                     strict=True))]
        STARTED.extend([self.master, *self.workers])

    def wait(self) -> str:
        started = time.monotonic()
        try:
            stderr = self.master.communicate(timeout=RUN_BOUND_S)[1]
            for worker in self.workers:
                worker.wait(timeout=20)
        finally:
            for process in (self.master, *self.workers):
                if process.poll() is None:
                    process.kill()
                    process.wait()
        self.elapsed = time.monotonic() - started
        return stderr


def test_workers_records_reach_the_master_which_judges_every_record(
        reference_server: Any, pushgateway: str, hosts: Hosts, tmp_path: Path) -> None:
    server = reference_server(SERVER, host=hosts.gateway, stats_file=tmp_path / "stats.json")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "4s", "arrival": "even", "drain": "2s", "validate_sample": 0.0,
        "endpoints": {"models": {"rate": "10/s", "users": 4},
                      "chat": {"rate": "30/s", "users": 8}},
        # fails on purpose: the master's exit code must follow it
        "thresholds": {"all": ["error_rate == 0", "requests < 20"]}})
    verdict, junit = tmp_path / "verdict.json", tmp_path / "junit.xml"
    cluster = Cluster(tmp_path, scenario, server.url, hosts, "--push-gateway", pushgateway,
                      "--json", str(verdict), "--junit", str(junit),
                      worker_extra=((), ("--no-keep-parts",)))
    if hosts.namespaces:  # each worker really runs in its own network namespace
        wait_for(lambda: len({net_namespace(os.getpid())} | {
            net_namespace(w.pid) for w in cluster.workers}) == 3, "workers in namespaces")
    stderr = cluster.wait()
    assert cluster.master.returncode == 1, stderr[-3000:]
    assert all(w.returncode == 0 for w in cluster.workers)
    info = json.loads((cluster.master_out / "run.json").read_text())
    assert info["outcome"] == "failed", stderr[-3000:]
    failing = [t["threshold"] for t in info["thresholds"] if not t["passed"]]
    assert failing == ["requests < 20"]
    assert all(c["passed"] for c in info["checks"]), info["checks"]
    # every request the server saw is one record at the master, and nothing else
    table = read_records(cluster.master_out)
    served = ground_truth(server, tmp_path / "stats.json")
    assert sum(served.values()) > 50
    assert truth.record_counts(table) == served
    assert info["records"] == table.num_rows
    # the master's --json, --junit and table are the same verdict over the same records
    summary = json.loads(verdict.read_text())
    assert (summary["outcome"], summary["exit_code"]) == ("failed", 1)
    assert summary["summary"]["all"]["requests"] == table.num_rows
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and "requests < 20" in failed[0], failed
    # the table (on stderr, as in a single run): every request, the failing threshold
    assert "outcome: failed" in stderr and "requests < 20" in stderr
    assert "│ all " in stderr and f" {table.num_rows} " in stderr
    code, figures = report(cluster.master_out, tmp_path / "report")
    assert (code, figures["outcome"], figures["records"]) == (1, "failed", table.num_rows)
    # both workers' records, both accounted complete
    assert len(set(table["worker"].to_pylist())) == 2
    workers = info["workers"]
    assert len(workers) == 2 and all(w["complete"] for w in workers), workers
    assert sum(w["received_records"] for w in workers) == table.num_rows
    # worker a kept a copy of its parts; worker b (--no-keep-parts) deleted each once sent
    kept = read_records(cluster.worker_outs[0])
    assert kept.num_rows == next(w["received_records"] for w in workers
                                 if w["worker"] == kept["worker"][0].as_py())
    assert not list((cluster.worker_outs[1] / "records.parts").glob("*.parquet"))
    # the Pushgateway holds the final counts of this run
    assert info["pushgateway"]["pushed"] is True
    series = pushed_series(pushgateway, cluster.master_out.name)
    # with the labels the dashboards select on, as on /metrics (either source works)
    pushed = [name for name in series if name.startswith("secton_requests_total{")]
    assert pushed and all(all(f'{label}="' in name for label in
                              ("source", "endpoint", "status", "org", "outcome"))
                          for name in pushed), pushed
    assert sum(v for k, v in series.items()
               if k.startswith("secton_requests_total{")) == table.num_rows
    assert sum(v for k, v in series.items()
               if k.startswith("secton_request_duration_seconds_count{")) == table.num_rows


def test_a_killed_worker_makes_the_run_incomplete_and_nothing_hangs(
        reference_server: Any, hosts: Hosts, tmp_path: Path) -> None:
    server = reference_server(SERVER, host=hosts.gateway, stats_file=tmp_path / "stats.json")
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "6s", "arrival": "even", "drain": "1s", "validate_sample": 0.0,
        "endpoints": {"chat": {"rate": "20/s", "users": 6}}})
    verdict = tmp_path / "verdict.json"
    cluster = Cluster(tmp_path, scenario, server.url, hosts, "--json", str(verdict))
    victim, survivor = cluster.workers
    deadline = time.monotonic() + 30
    parts = cluster.worker_outs[0] / "records.parts"
    while time.monotonic() < deadline and not list(parts.glob("*.parquet")):
        time.sleep(0.2)  # killed once it has sent something ...
    time.sleep(3.5)  # ... and reported its counts (Locust reports every 3 s)
    # the worker's Locust process dies outright (as with a lost machine): no final batch
    for pid in locust_processes(victim):
        os.kill(pid, signal.SIGKILL)
    victim.send_signal(signal.SIGKILL)
    stderr = cluster.wait()
    assert cluster.elapsed < RUN_BOUND_S
    assert cluster.master.returncode == 1, stderr[-3000:]
    assert survivor.returncode == 0
    info = json.loads((cluster.master_out / "run.json").read_text())
    assert info["outcome"] == "incomplete"
    assert "incomplete run" in info["reason"]
    assert json.loads(verdict.read_text())["outcome"] == "incomplete"
    code, figures = report(cluster.master_out, tmp_path / "report")
    assert (code, figures["outcome"]) == (1, "incomplete")
    lost = [w for w in info["workers"] if not w["complete"]]
    assert len(lost) == 1 and lost[0]["final_batch"] is False
    assert lost[0]["last_known_records"] is not None and "lost" in lost[0]["problem"]
    # every record of the surviving worker is at the master
    table = read_records(cluster.master_out)
    kept = read_records(cluster.worker_outs[1])
    name = kept["worker"][0].as_py()
    assert kept.num_rows > 0
    assert table["worker"].to_pylist().count(name) == kept.num_rows


def test_a_stalled_master_then_a_stop_mid_traffic_loses_no_record(
        reference_server: Any, hosts: Hosts, tmp_path: Path) -> None:
    """Back-pressure, then the end of a run with parts in hand.

    The master's Locust process is stopped (SIGSTOP: it reads and acknowledges nothing)
    while both workers keep writing parts: each sends at most WINDOW parts
    unacknowledged, the rest wait on its disk. Then the master runs again and is told to
    stop at once (SIGTERM) while the workers still send: they stop with waiting and
    unacknowledged parts and a last part in hand, which go without acknowledgements
    (Locust runs a worker's test_stop on the greenlet that receives them). Every record
    each worker wrote (its own copy) must be at the master, and nothing may hang."""
    server = reference_server(SERVER, host=hosts.gateway)
    scenario = write_toml(tmp_path / "s.toml", {
        "duration": "40s", "arrival": "even", "drain": "1s", "validate_sample": 0.0,
        "endpoints": {"chat": {"rate": "40/s", "users": 6}}})
    cluster = Cluster(tmp_path, scenario, server.url, hosts)
    wait_for(lambda: part_count(cluster.master_out) > 0, "the first part at the master")
    master = locust_processes(cluster.master)
    for pid in master:
        os.kill(pid, signal.SIGSTOP)
    try:
        before = [part_count(out) for out in cluster.worker_outs]
        # each worker writes WINDOW + 3 more parts while the master acknowledges none:
        # at least 2 of them cannot be sent and wait on the worker's disk
        wait_for(lambda: all(part_count(out) >= n + WINDOW + 3
                             for out, n in zip(cluster.worker_outs, before, strict=True)),
                 f"{WINDOW + 3} more parts at each worker while the master is stopped")
    finally:
        for pid in master:
            os.kill(pid, signal.SIGCONT)
    cluster.master.send_signal(signal.SIGTERM)
    stderr = cluster.wait()
    assert cluster.elapsed < 40, stderr[-3000:]  # a hang bound: the end takes ~5-10 s
    assert cluster.master.returncode == 130, stderr[-3000:]
    info = json.loads((cluster.master_out / "run.json").read_text())
    workers = info["workers"]
    assert len(workers) == 2 and all(w["complete"] for w in workers), workers
    assert all(w["max_waiting_parts"] >= 2 for w in workers), workers
    # every record each worker wrote is at the master; requests cut off by the stop are
    # records too (status 0), so the server's counts are no measure here (the first test
    # compares with them)
    table = read_records(cluster.master_out)
    for out in cluster.worker_outs:
        kept = read_records(out)
        name = kept["worker"][0].as_py()
        assert table["worker"].to_pylist().count(name) == kept.num_rows > 0
        assert next(w for w in workers if w["worker"] == name)["reported_records"] == \
            kept.num_rows
