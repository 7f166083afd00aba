"""Measurement truth: the harness's figures against the reference server's ground truth.

1. Counts and latency: a 6 s load run (Poisson, 20/s models + 10/s chat, 5 keys over 2
   orgs, key b2 limited to 3/s so 429s happen) against a server with the admin endpoint
   on and a seeded latency model (40 ms + exponential jitter, mean 20 ms). Counts per
   (key, org, endpoint, status) vs ``GET /_admin/stats``; p50/p95/p99 of the records' 2xx
   latency vs the injected latencies; client overhead = recorded - injected (median of
   the quantile-by-quantile differences); the round-trip floor (same run, 0 ms injected).
2. Stall: 50/s even, 2 users, server frozen 1 s with SIGSTOP/SIGCONT: plain vs corrected p99.
3. Burstiness at 100 req/s: CV of per-10 ms arrival counts for the harness (even and
   Poisson; from records' ``ts`` = actual send and ``intended_ts`` = schedule), a
   theoretical Poisson process (1/sqrt(rate x 0.01)), and a bare Locust locustfile with
   ``constant_throughput`` (20 users x 5/s, spawn rate 20/s; request start times).

Timing-based figures are the median of 3 runs. Writes (replaces) the
``## Measurement truth`` section of benchmarks/RESULTS.md.
Run: ``.venv/bin/python benchmarks/bench_truth.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import truth  # noqa: E402
from loadtests.thresholds import measure  # noqa: E402
from secton_harness.endpoints import MODELS  # noqa: E402
from secton_harness.records import read_records  # noqa: E402
from simulator.launcher import ReferenceServer  # noqa: E402

KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Measurement truth"
REPEATS = 3
DEMO_KEYS = truth.demo_keys()
TRUTH_SERVER = truth.TRUTH_SERVER
ZERO_SERVER = {**TRUTH_SERVER, "latency": {"base_ms": 0, "per_token_ms": 0, "jitter_ms": 0}}
TRUTH_SCENARIO = {"name": "truth", "duration": "6s", "arrival": "poisson", "seed": 3,
                  "drain": "3s", "validate_sample": 0.0,
                  "endpoints": {"models": {"rate": "20/s", "users": 5},
                                "chat": {"rate": "10/s", "users": 5}}}
STALL_SERVER = {"limits": {"algorithm": "none"}, "admin": {"enabled": True},
                "latency": {"base_ms": 5, "per_token_ms": 0, "jitter_ms": 0},
                "keys": DEMO_KEYS}
STALL_SCENARIO = {"name": "stall", "duration": "6s", "arrival": "even", "drain": "5s",
                  "validate_sample": 0.0, "endpoints": {"models": {"rate": "50/s", "users": 2}}}
BURST_RATE, BURST_USERS, BURST_S = 100.0, 20, 8
BURST_SERVER = {"limits": {"algorithm": "none"},
                "latency": {"base_ms": 5, "per_token_ms": 0, "jitter_ms": 0},
                "keys": DEMO_KEYS}
BARE_LOCUSTFILE = '''
import json, os
from locust import FastHttpUser, constant_throughput, events, task
SENT = []
@events.request.add_listener
def _sent(start_time, **_):
    SENT.append(start_time)
@events.quit.add_listener
def _done(**_):
    with open(os.environ["BARE_OUT"], "w") as out:
        json.dump(SENT, out)
class Bare(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["BARE_USER_RATE"]))
    @task
    def models(self):
        self.client.get("/v1/models", headers={"Authorization": "Bearer sk-demo-alpha-1"})
'''


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def load_cmd(scenario: Path, url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
            "--target", url, "--keys", str(KEYS), "--out", str(out)]


def run_load(scenario: dict[str, Any], url: str, work: Path, name: str) -> Path:
    out = work / name
    subprocess.run(load_cmd(write(work / f"{name}.toml", scenario), url, out),
                   capture_output=True, text=True, timeout=120, check=True)
    return out


# ------------------------------------------------------------------ 1. counts + latency

def counts_round(work: Path, i: int) -> dict[str, Any]:
    with ReferenceServer(write(work / f"sim-{i}.toml", TRUTH_SERVER)) as server:
        out = run_load(TRUTH_SCENARIO, server.url, work, f"truth-{i}")
        stats = truth.fetch_stats(server.url)
    table = read_records(out)
    recorded, served = truth.record_counts(table), truth.server_counts(stats)
    latency = {}
    for path, name in truth.SERVER_ENDPOINT.items():
        latency[name] = truth.compare_latency(truth.ok_latencies(table, path),
                                              np.array(stats["injected_latency_s"][name]))
    with ReferenceServer(write(work / f"zero-{i}.toml", ZERO_SERVER)) as server:
        zero = read_records(run_load(TRUTH_SCENARIO, server.url, work, f"zero-{i}"))
    floor = float(np.median(truth.ok_latencies(zero, MODELS.path)))
    return {"records": table.num_rows, "server": stats["requests_total"],
            "exact": recorded == served, "keys": len(truth.by_alias(served)),
            "cells": len(served), "r429": truth.by_status(recorded)[429],
            "s429": truth.by_status(served)[429], "latency": latency, "floor_s": floor}


# ------------------------------------------------------------------ 2. stall

def stall_round(work: Path, i: int) -> dict[str, float]:
    scenario = write(work / f"stall-{i}.toml", STALL_SCENARIO)
    out = work / f"stall-{i}"
    with ReferenceServer(write(work / f"stall-sim-{i}.toml", STALL_SERVER)) as server:
        load = subprocess.Popen(load_cmd(scenario, server.url, out),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while truth.fetch_stats(server.url)["requests_total"] < 25:
            time.sleep(0.05)
        time.sleep(0.5)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(server.process.pid, signal.SIGCONT)
        load.wait(timeout=60)
    table = read_records(out)
    return {"plain": measure("p99_latency_s", table),
            "corrected": measure("p99_corrected_latency_s", table),
            "max": measure("max_latency_s", table), "n": table.num_rows}


# ------------------------------------------------------------------ 3. burstiness

def harness_times(url: str, work: Path, arrival: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    scenario = {"duration": f"{BURST_S}s", "arrival": arrival, "seed": i + 1, "drain": "2s",
                "validate_sample": 0.0,
                "endpoints": {"models": {"rate": BURST_RATE, "users": BURST_USERS}}}
    table = read_records(run_load(scenario, url, work, f"burst-{arrival}-{i}"))
    return table["ts"].to_numpy(), table["intended_ts"].to_numpy()


def locust_times(url: str, work: Path, i: int) -> np.ndarray:
    locustfile = work / "bare_ct.py"
    locustfile.write_text(BARE_LOCUSTFILE)
    result = work / f"bare-{i}.json"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--host", url,
                    "--headless", "-u", str(BURST_USERS), "-r", str(BURST_USERS),
                    "-t", f"{BURST_S + 1}s", "--only-summary", "--loglevel", "ERROR"],
                   capture_output=True, text=True, timeout=120,
                   env={**os.environ, "BARE_OUT": str(result),
                        "BARE_USER_RATE": str(BURST_RATE / BURST_USERS)})
    times = np.sort(np.array(json.loads(result.read_text())))
    return times[times >= times[0] + 1.0]  # after the 1 s spawn


def burst_round(url: str, work: Path, i: int) -> dict[str, float]:
    even_ts, even_int = harness_times(url, work, "even", i)
    pois_ts, pois_int = harness_times(url, work, "poisson", i)
    rng = np.random.default_rng(i)
    theory = np.cumsum(rng.exponential(1 / BURST_RATE, int(BURST_RATE * BURST_S)))
    bare = locust_times(url, work, i)
    return {"even_ts": truth.burstiness(even_ts), "even_int": truth.burstiness(even_int),
            "pois_ts": truth.burstiness(pois_ts), "pois_int": truth.burstiness(pois_int),
            "theory_sim": truth.burstiness(theory),
            "locust": truth.burstiness(bare),
            "locust_rate": (bare.size - 1) / (bare[-1] - bare[0])}


# ------------------------------------------------------------------ output

def med(values: list[float]) -> float:
    return float(statistics.median(values))


def replace_section(text: str, body: str) -> str:
    block = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block + "\n", text).rstrip() + "\n"
    return (text.rstrip() + "\n\n" if text.strip() else "# Benchmark results\n\n") + block


def render(counts: list[dict[str, Any]], stalls: list[dict[str, float]],
           bursts: list[dict[str, float]]) -> str:
    count_rows = "\n".join(
        f"| {i + 1} | {c['records']} | {c['server']} | {c['cells']} ({c['keys']} keys) | "
        f"{c['r429']} / {c['s429']} | {'yes' if c['exact'] else 'NO'} |"
        for i, c in enumerate(counts))
    lat_rows = []
    for name in ("models", "chat"):
        for k, q in enumerate(truth.PERCENTILES):
            rows = [c["latency"][name]["percentiles"][k] for c in counts]
            lat_rows.append(
                f"| {name} | p{q:g} | {med([r['injected_s'] for r in rows]) * 1e3:.2f} | "
                f"{med([r['recorded_s'] for r in rows]) * 1e3:.2f} | "
                f"{med([r['error_s'] for r in rows]) * 1e3:+.2f} "
                f"({med([r['error_rel'] for r in rows]) * 100:+.1f} %) | "
                f"{med([r['allowed_s'] for r in rows]) * 1e3:.2f} | "
                f"{sum(r['within'] for r in rows)}/{len(rows)} |")
    overhead = {name: med([c["latency"][name]["overhead_median_s"] for c in counts])
                for name in ("models", "chat")}
    floor = med([c["floor_s"] for c in counts])
    stall_runs = ", ".join(f"{s['plain'] * 1e3:.1f} / {s['corrected'] * 1e3:.0f}"
                           for s in stalls)
    theory = truth.poisson_cv(BURST_RATE)
    locust_label = (f"Locust `constant_throughput` ({BURST_USERS} users x "
                    f"{BURST_RATE / BURST_USERS:g}/s, spawn {BURST_USERS}/s; start times)")

    def cv(key: str) -> str:
        value = med([b[key] for b in bursts])
        return f"{value:.2f} | {value / theory:.2f}x"

    return f"""
Measured by `benchmarks/bench_truth.py` ({os.cpu_count()} CPUs, generator and server
unpinned; timing-based figures are the median of {REPEATS} runs). Ground truth is the
reference server's `GET /_admin/stats` (`[admin] enabled`): counts by key alias, org,
endpoint and status, and every latency it injected.

**Counts** (6 s, Poisson 20/s models + 10/s chat, 5 keys / 2 orgs, key b2 limited to 3/s):

| run | records | server | (key, org, endpoint, status) cells | 429 records / server | exact |
|---|---:|---:|---:|---:|---|
{count_rows}

**Latency** of the 2xx records vs the injected latency of the same requests (40 ms +
exponential jitter, mean 20 ms; tolerance 5 % + 1 ms; ms, median of {REPEATS}):

| endpoint | percentile | injected | recorded | error | allowed | runs within |
|---|---|---:|---:|---:|---:|---|
{chr(10).join(lat_rows)}

Client-side overhead (recorded - injected, median of the 1..99 % quantile differences;
distribution level, because the server's list carries no request id): models
{overhead['models'] * 1e3:.2f} ms, chat {overhead['chat'] * 1e3:.2f} ms. The round-trip
floor (same run with 0 ms injected, median `/v1/models` latency) is {floor * 1e3:.2f} ms;
the rest of the overhead is the server's timer overshooting the injected sleep (event-loop
timers have 1 ms granularity).

**Stall** (50/s even, 2 users, server frozen 1 s with SIGSTOP/SIGCONT):
plain p99 {med([s['plain'] for s in stalls]) * 1e3:.1f} ms, corrected p99 (from
`intended_ts`) {med([s['corrected'] for s in stalls]) * 1e3:.0f} ms, max plain latency
{med([s['max'] for s in stalls]) * 1e3:.0f} ms (runs, plain / corrected ms: {stall_runs}).
The plain figure hides the stall (only the 2 requests in flight saw it); the corrected
one shows it.

**Burstiness** at {BURST_RATE:g} req/s: coefficient of variation of per-10 ms arrival
counts ({BURST_S} s runs, 0.5 s trimmed at each end; ratio to a Poisson process of the
same rate, 1/sqrt(rate x 0.01) = {theory:.2f}):

| arrivals | CV | / Poisson |
|---|---:|---:|
| harness `even`, actual send times (`ts`) | {cv('even_ts')} |
| harness `even`, schedule (`intended_ts`) | {cv('even_int')} |
| harness `poisson`, actual send times (`ts`) | {cv('pois_ts')} |
| harness `poisson`, schedule (`intended_ts`) | {cv('pois_int')} |
| Poisson process, theory | {theory:.2f} | 1.00x |
| Poisson process, simulated sample | {cv('theory_sim')} |
| {locust_label} | {cv('locust')} |

Locust's achieved rate in those runs: {med([b['locust_rate'] for b in bursts]):.1f} req/s.
"""


def main() -> None:
    counts, stalls, bursts = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(REPEATS):
            counts.append(counts_round(work, i))
            c = counts[-1]
            print(f"counts {i + 1}: exact={c['exact']} records={c['records']} "
                  f"overhead models {c['latency']['models']['overhead_median_s'] * 1e3:.2f} ms",
                  file=sys.stderr)
        for i in range(REPEATS):
            stalls.append(stall_round(work, i))
            print(f"stall {i + 1}: {stalls[-1]}", file=sys.stderr)
        with ReferenceServer(write(work / "burst.toml", BURST_SERVER)) as server:
            for i in range(REPEATS):
                bursts.append(burst_round(server.url, work, i))
                print(f"burst {i + 1}: {bursts[-1]}", file=sys.stderr)
    body = render(counts, stalls, bursts)
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    RESULTS.write_text(replace_section(existing, body))
    print(body)


if __name__ == "__main__":
    main()
