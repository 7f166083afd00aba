"""Cost of sending records to the master: a shipping worker vs a local-only worker, same run.

One ``secton-harness load --master --expect-workers 2`` and two workers of the same run,
side by side on this machine against the headroom target (``headroom_server.py``): both
workers run the Locust command the CLI builds for ``--worker``; worker S keeps
``--secton-ship-records`` (it sends every part to the master and keeps its copy), worker L
drops it (parts only in its own folder, as before record shipping). Beside the achieved rates, each
worker process's CPU seconds give requests per CPU second. The scenario's rate is far
above what the workers reach, so both are saturated and compete for the same cores under
the same scheduler;
each worker's achieved rate is ``(requests - 1) / (last send - first send)`` over its own
records, and the cost is ``1 - S / L``. The roles swap every round (worker index and
start order), median of the rounds. Target: cost <= 5 %.

The master waits its bound (20 s) for worker L's final batch that never comes and calls
the run incomplete; the bench reads the workers' own folders, not that verdict.

    .venv/bin/python benchmarks/bench_shipping.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_processes import cpu_seconds, start_headroom  # noqa: E402
from benchmarks.common import (  # noqa: E402
    add_common_args,
    figure,
    machine,
    median,
    replace_section,
    write_figures,
)
from loadtests.locust_process import LoadOptions, locust_command  # noqa: E402
from loadtests.scenario import load_scenario  # noqa: E402
from loadtests.thresholds import measure  # noqa: E402
from secton_harness.records import read_records  # noqa: E402

SECTION = "## Records shipped to the master vs local-only parts"
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
USERS = 40
RATE = 30000  # far above what two workers reach here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(scenario: Path, url: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "secton_harness", "load", "--scenario", str(scenario),
            "--target", url, "--keys", str(KEYS), "--out", str(out), *extra]


def worker_cmd(scenario: Path, url: str, out: Path, port: int, ship: bool) -> list[str]:
    """The worker's Locust command exactly as the CLI builds it; without ``ship``, minus
    the shipping flag (the one difference between the two workers)."""
    options = LoadOptions(scenario=scenario, target=url, keys=KEYS, out=out, worker=True,
                          master_port=port)
    out.mkdir(parents=True)
    command = locust_command(options, load_scenario(scenario), url, out)
    return [arg for arg in command if ship or arg != "--secton-ship-records"]


def one_round(url: str, work: Path, duration: float, name: str, local_first: bool
              ) -> dict[str, float]:
    scenario = work / f"{name}.toml"
    scenario.write_bytes(tomli_w.dumps({
        "duration": f"{duration}s", "validate_sample": 0.0, "drain": "1s",
        "min_rate_ratio": 0, "endpoints": {"models": {"rate": RATE, "users": USERS}}}
    ).encode())
    port = free_port()
    master = subprocess.Popen(
        cli(scenario, url, work / f"{name}-master", "--master", "--expect-workers", "2",
            "--master-port", str(port)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    shipping_out, local_out = work / f"{name}-ship", work / f"{name}-local"
    starts = [lambda: subprocess.Popen(worker_cmd(scenario, url, local_out, port, False),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
              lambda: subprocess.Popen(worker_cmd(scenario, url, shipping_out, port, True),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    if not local_first:
        starts.reverse()
    workers = [start() for start in starts]
    local_proc = workers[0] if local_first else workers[1]
    ship_proc = workers[1] if local_first else workers[0]
    cpu = {"local": 0.0, "ship": 0.0}
    try:
        deadline = time.monotonic() + duration + 120
        while master.poll() is None and time.monotonic() < deadline:
            # the last reading before each Locust worker exits is its CPU time
            for role, pid in (("local", local_proc.pid), ("ship", ship_proc.pid)):
                if pid:
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        cpu[role] = cpu_seconds(pid)
            time.sleep(0.2)
        master.wait(timeout=30)
        for worker in workers:
            worker.wait(timeout=60)
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    ship, local = read_records(shipping_out), read_records(local_out)
    master_records = read_records(work / f"{name}-master")
    # the worker's own copy of each part is the bytes it sent (its Locust process is run
    # directly, so nothing merges its parts)
    parts = list((shipping_out / "records.parts").glob("*.parquet"))
    sent_bytes = sum(part.stat().st_size for part in parts)
    return {"bytes_per_record": sent_bytes / ship.num_rows if ship.num_rows else 0.0,
            "parts": len(parts), "ship_rps": measure("rps", ship) or 0.0,
            "local_rps": measure("rps", local) or 0.0,
            "ship_per_cpu": ship.num_rows / cpu["ship"] if cpu["ship"] else 0.0,
            "local_per_cpu": local.num_rows / cpu["local"] if cpu["local"] else 0.0,
            "ship_requests": ship.num_rows, "local_requests": local.num_rows,
            "at_master": master_records.num_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 4)
    duration = args.duration or (4.0 if args.quick else 8.0)
    rounds: list[dict[str, float]] = []
    server, url = start_headroom()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                rounds.append(one_round(url, Path(tmp), duration, f"r{i}", i % 2 == 0))
                r = rounds[-1]
                print(f"round {i + 1}: shipping {r['ship_rps']:.0f} req/s, local-only "
                      f"{r['local_rps']:.0f} req/s; at the master {r['at_master']:.0f} "
                      f"(shipping worker {r['ship_requests']:.0f})", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    costs = [1 - r["ship_rps"] / r["local_rps"] for r in rounds if r["local_rps"]]
    cpu_costs = [1 - r["ship_per_cpu"] / r["local_per_cpu"] for r in rounds
                 if r["local_per_cpu"] and r["ship_per_cpu"]]
    cost, cpu_cost = median(costs), median(cpu_costs)
    # rounds with the local-only worker started first are the even ones (i % 2 == 0)
    by_order = {"local-only first": median(costs[0::2]),
                "shipping first": median(costs[1::2])}
    complete = all(r["at_master"] == r["ship_requests"] for r in rounds)
    verdict = "met" if cost <= 0.05 else "NOT met"
    body = (
        f"`benchmarks/bench_shipping.py` ({machine()}, {runs} rounds of {duration:g} s, "
        f"roles swapped every round). Two saturated workers of one run "
        "(`GET /v1/models`, 40 users, headroom target), one sending its parts to the master, "
        "one keeping them local only.\n\n"
        "| round | shipping req/s | local-only req/s | cost (rps) | shipping req/CPU-s | "
        "local-only req/CPU-s | cost (per CPU-s) | at the master = shipped | "
        "bytes sent per record (parts) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        + "".join(f"| {i + 1} | {r['ship_rps']:,.0f} | {r['local_rps']:,.0f} | "
                  f"{1 - r['ship_rps'] / r['local_rps']:+.1%} | {r['ship_per_cpu']:,.0f} | "
                  f"{r['local_per_cpu']:,.0f} | "
                  f"{1 - r['ship_per_cpu'] / max(r['local_per_cpu'], 1e-9):+.1%} | "
                  f"{'yes' if r['at_master'] == r['ship_requests'] else 'NO'} | "
                  f"{r['bytes_per_record']:.1f} ({r['parts']:.0f}) |\n"
                  for i, r in enumerate(rounds))
        + f"\nMedian cost of shipping: **{cost:+.1%}** of a worker's throughput (target "
        f"<= 5 %: {verdict}); per CPU second of the worker process: **{cpu_cost:+.1%}**. "
        "By start order (median cost, rps): "
        + ", ".join(f"{k} {v:+.1%}" for k, v in by_order.items()) + ". "
        f"Wire cost: {median([r['bytes_per_record'] for r in rounds]):.1f} bytes per record "
        "(median; zstd Parquet parts of about a second of records each, the Locust message "
        "adds a few bytes). Every shipped record at the master: "
        f"{'yes' if complete else 'NO'}. Two saturated workers, the master and the target "
        "share this machine's cores (and other test runs share the machine), so single "
        "rounds vary widely; the median over swapped roles is the figure.\n")
    replace_section(args.results, SECTION, body)
    write_figures(args.figures, [figure("shipping cost", cost, "<= 0.05",
                                        runs=costs, note="1 - shipping / local-only rps"),
                                 figure("shipping cost per CPU second", cpu_cost, "<= 0.05",
                                        runs=cpu_costs,
                                        note="1 - shipping / local-only requests per CPU s")])


if __name__ == "__main__":
    main()
