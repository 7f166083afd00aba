"""Load at LLM latency: does one generator hold the asked rate with thousands in flight?

The reference server answers every request after a fixed injected latency (2 s, or 1.5 s),
so holding ``rate`` takes ``rate x latency`` requests in flight: the user pool has to grow
from its default starting size (``ceil(rate x 0.5) + 1``) to that many. Each run is
``secton-harness load`` with the shipped defaults except ``max_users`` where the default
cap (1,000) is below what the rate needs, ``validate_sample = 0`` (the contract check is
measured by bench_load.py) and ``--processes`` where named.

Figures per run: achieved / asked (``sent / scheduled`` from the run's own verdict, the
same figure as the default rate check), dropped requests, peak users, and the CPU time of
the whole load (the CLI, Locust and its workers: ``RUSAGE_CHILDREN`` of this script
around the run, the server excluded) per request sent. The zero-latency row at the same
rate is the baseline of the CPU cost.

Run: ``.venv/bin/python benchmarks/bench_inflight.py`` (about 3 min; ``--quick``: 1 min).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    add_common_args,
    figure,
    machine,
    replace_section,
    write_figures,
)
from benchmarks.truth import demo_keys  # noqa: E402
from simulator.launcher import ReferenceServer  # noqa: E402

KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
SECTION = "## Load at LLM latency (in-flight capacity)"
#: (label, rate req/s, latency ms, max_users or None, --processes)
RUNS = [
    ("10 req/s at 1.5 s", 10, 1500, None, 0),
    ("100 req/s at 1.5 s", 100, 1500, None, 0),
    ("1000 req/s at 0 s (baseline)", 1000, 0, None, 0),
    ("1000 req/s at 2 s", 1000, 2000, 2600, 0),
    ("1000 req/s at 2 s, --processes 2", 1000, 2000, 2600, 2),
]


def one_run(label: str, rate: float, latency_ms: int, max_users: int | None,
            processes: int, duration_s: float, work: Path) -> dict[str, Any]:
    config = work / f"sim-{latency_ms}.toml"
    config.write_bytes(tomli_w.dumps({
        "limits": {"algorithm": "none"},
        "latency": {"base_ms": latency_ms, "per_token_ms": 0, "jitter_ms": 0},
        "keys": demo_keys()}).encode())
    endpoint: dict[str, Any] = {"rate": f"{rate}/s"}
    if max_users is not None:
        endpoint["max_users"] = max_users
    scenario = work / f"s-{rate}-{latency_ms}-{processes}.toml"
    scenario.write_bytes(tomli_w.dumps({
        "duration": f"{duration_s}s", "validate_sample": 0.0,
        "endpoints": {"models": endpoint}}).encode())
    out = work / f"run-{rate}-{latency_ms}-{processes}"
    with ReferenceServer(config) as server:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
             "--target", server.url, "--keys", str(KEYS), "--out", str(out), "--json", "-",
             *(["--processes", str(processes)] if processes else [])],
            capture_output=True, text=True, timeout=duration_s + 180)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    verdict = json.loads(done.stdout) if done.stdout.strip() else {}
    rates = (verdict.get("rates") or {}).get("models") or {}
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sent = rates.get("sent") or 0
    return {"label": label, "exit": done.returncode, "ratio": rates.get("ratio"),
            "sent": sent, "scheduled": rates.get("scheduled"),
            "dropped": rates.get("dropped"),
            "peak_users": (rates.get("pool") or {}).get("peak_users"),
            "cpu_ms_per_request": cpu_s * 1000 / sent if sent else None,
            "wall_s": wall, "reason": verdict.get("reason", done.stderr[-300:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    args = parser.parse_args()
    duration = 8.0 if args.quick else 20.0
    load_avg = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, rate, latency, max_users, processes in RUNS:
            row = one_run(label, rate, latency, max_users, processes, duration, Path(tmp))
            print(json.dumps(row), file=sys.stderr, flush=True)
            results.append(row)
    lines = [
        f"`benchmarks/bench_inflight.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f", {duration:g} s per run. Machine: {machine()}. Load average at start: "
        f"{load_avg:.2f} (shared cores: other work competes). Reference server with a fixed "
        "injected latency (no jitter), unpinned; `GET /v1/models`; default scenario except "
        "`max_users` (where the default cap of 1,000 is below rate x latency) and "
        "`validate_sample = 0`. CPU = the whole load (CLI + Locust processes, their "
        "start-up of about 2-3 s CPU included, which dominates the low-rate rows), server "
        "excluded. The pool grows from its default start (`ceil(rate x 0.5) + 1`) to what "
        "the latency needs (rate x latency); `peak users` is where it ended.",
        "",
        "| run | exit | achieved / asked | sent / scheduled | dropped | peak users | "
        "CPU ms / request |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.4f}"
        cpu = "-" if r["cpu_ms_per_request"] is None else f"{r['cpu_ms_per_request']:.3f}"
        lines.append(f"| {r['label']} | {r['exit']} | {ratio} | {r['sent']} / "
                     f"{r['scheduled']} | {r['dropped']} | {r['peak_users']} | {cpu} |")
    failed = [r for r in results if r["exit"] != 0]
    if failed:
        lines += ["", "Runs that did not pass, with their one-line reason:", ""]
        lines += [f"- {r['label']}: {r['reason']}" for r in failed]
    replace_section(args.results, SECTION, "\n".join(lines))
    if args.figures is not None:
        write_figures(args.figures, [
            figure(f"achieved / asked, {r['label']}", r["ratio"], ">= 0.98",
                   note=f"peak users {r['peak_users']}, dropped {r['dropped']}")
            for r in results])


if __name__ == "__main__":
    main()
