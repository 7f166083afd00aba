"""``secton-harness load --processes 2`` vs one process, against a target with headroom.

On a 2-core machine the two worker processes need both cores, so the target must cost
almost nothing: ``headroom_server.py`` answers every GET with a canned ``/v1/models`` body
(about 100k req/s on one core under wrk, so ~5-8 % of a core at the rates here). Nothing is
pinned in this benchmark (pinning one process to one core and two to two would measure
the pinning); the target's CPU share and the generator's CPU seconds (all descendants of
the CLI: the CLI, Locust's master and its workers) are measured and reported beside the
rates, so the gap to 2.0 can be read: what the second process adds is limited by the
cores left after the target, the master and the CLI.

Both runs use the same scenario: ``GET /v1/models``, even arrivals at a rate far above
what the generator reaches (so it is saturated), 40 users, ``validate_sample = 0``.
Achieved = (requests - 1) / (last send - first send) over the merged records.
Median of N alternating runs; ratio = two processes / one (target >= 1.6).

    .venv/bin/python benchmarks/bench_processes.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    add_common_args,
    figure,
    machine,
    median,
    replace_section,
    write_figures,
)
from loadtests.thresholds import measure  # noqa: E402
from secton_harness.records import read_records  # noqa: E402

SECTION = "## Processes: --processes 2 vs one process"
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
USERS = 40
RATE = 30000  # far above what two generator processes reach here


def start_headroom() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "headroom_server.py")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("serving on"):
        proc.kill()
        raise SystemExit("headroom server did not start")
    return proc, line.split()[-1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cores_s() -> float:
    """CPU seconds spent busy on the whole machine so far (every process, every core)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run(url: str, work: Path, processes: int, duration: float, name: str,
        server_pid: int) -> dict[str, float]:
    scenario = work / f"{name}.toml"
    scenario.write_bytes(tomli_w.dumps({
        "duration": f"{duration}s", "validate_sample": 0.0, "drain": "1s",
        "endpoints": {"models": {"rate": RATE, "users": USERS}}}).encode())
    out = work / name
    extra = ["--processes", str(processes)] if processes > 1 else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, wall = cpu_seconds(server_pid), time.monotonic()
    busy_before = busy_cores_s()
    done = subprocess.run([sys.executable, "-m", "secton_harness", "load", "--scenario",
                           str(scenario), "--target", url, "--keys", str(KEYS), "--out",
                           str(out), *extra], capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cores_s() - busy_before
    if done.returncode not in (0, 1):
        raise SystemExit(f"load run failed ({done.returncode}): {done.stderr[-1500:]}")
    table = read_records(out)
    return {"rps": measure("rps", table) or 0.0, "requests": table.num_rows,
            "workers": len(set(table["worker"].to_pylist())),
            "generator_cpu_s": (after.ru_utime + after.ru_stime)
            - (before.ru_utime + before.ru_stime),
            "server_cpu_s": cpu_seconds(server_pid) - server_before, "wall_s": wall,
            "busy_s": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (4.0 if args.quick else 8.0)
    one: list[dict[str, float]] = []
    two: list[dict[str, float]] = []
    server, url = start_headroom()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(runs):
                one.append(run(url, Path(tmp), 1, duration, f"one-{i}", server.pid))
                two.append(run(url, Path(tmp), 2, duration, f"two-{i}", server.pid))
                print(f"round {i + 1}: 1 process {one[-1]['rps']:.0f} req/s, 2 processes "
                      f"{two[-1]['rps']:.0f} req/s", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    r1, r2 = median([r["rps"] for r in one]), median([r["rps"] for r in two])
    ratio = r2 / r1 if r1 else None

    def row(label: str, results: list[dict[str, float]]) -> str:
        rps = median([r["rps"] for r in results])
        gen = median([r["generator_cpu_s"] / r["wall_s"] for r in results])
        srv = median([r["server_cpu_s"] / r["wall_s"] for r in results])
        other = median([max(0.0, r["busy_s"] - r["generator_cpu_s"] - r["server_cpu_s"])
                        / r["wall_s"] for r in results])
        per_cpu = median([r["requests"] / r["generator_cpu_s"] for r in results])
        listed = ", ".join(f"{r['rps']:.0f}" for r in results)
        return (f"| {label} | {rps:,.0f} | {listed} "
                f"| {gen:.2f} | {srv:.2f} | {other:.2f} | {per_cpu:,.0f} | "
                f"{max(int(r['workers']) for r in results)} |")

    verdict = "met" if ratio and ratio >= 1.6 else "NOT met"
    body = f"""
`benchmarks/bench_processes.py`: `secton-harness load` with `GET /v1/models`, even
arrivals at {RATE:,}/s (far above what the generator reaches, so it is saturated),
{USERS} users, `validate_sample = 0`, {duration:g} s per run, median of {runs}
alternating runs, against `benchmarks/headroom_server.py` (a canned-response uvloop server,
~100k req/s per core under wrk). **Not pinned**: two workers need both cores. CPU columns
are cores used on average over the run's wall time (generator = the CLI + Locust master +
workers, from `RUSAGE_CHILDREN`; target from /proc); `other cores` is
the rest of the machine's busy time (/proc/stat) — anything else running competes with the
second worker; `req/gen. CPU-s` shows the cost per request. Machine: {machine()}.

| generator | req/s | runs | gen. cores | target cores | other cores | req/gen. CPU-s | workers |
|---|---:|---|---:|---:|---:|---:|---:|
{row("one process", one)}
{row("`--processes 2` (master + 2 workers)", two)}

**Ratio two / one: {f"{ratio:.2f}" if ratio else "n/a"}** (target >= 1.6: {verdict}).
"""
    print(body)
    replace_section(args.results, SECTION, body)
    write_figures(args.figures, [figure(
        "`--processes 2` / one process (headroom target)", ratio, ">= 1.6",
        [b["rps"] / a["rps"] for a, b in zip(one, two, strict=True) if a["rps"]],
        note="unpinned; see generator/target cores in its section")])


if __name__ == "__main__":
    main()
