"""Benchmark: the full report on 1,000,000 records vs pandas merely loading the same file.

Generates one run folder with 1,000,000 synthetic records (700k load in a 5-stage step
ramp, 250k probe results, 50k rate-limit requests; through the records SCHEMA), then runs,
each in a fresh child process so peak memory (ru_maxrss via os.wait4) is per task:

* ``load``:   ``pyarrow.parquet.read_table(records.parquet).to_pandas()`` (all columns);
* ``report``: ``reports.build.build_report`` (HTML + Markdown + JSON).

Times are measured inside the child (imports excluded), median of 3. The result replaces
the ``## Report on 1,000,000 records`` section of benchmarks/RESULTS.md.

Usage: ``.venv/bin/python benchmarks/bench_report.py [--records N] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import add_common_args, figure, machine, write_figures
from secton_harness.records import SCHEMA
from secton_harness.runfolder import RunFolder

HEADING = "## Report on 1,000,000 records"
RESULTS = Path(__file__).with_name("RESULTS.md")


def generate(run_dir: Path, total: int, seed: int = 7) -> None:
    """Write a run folder with ``total`` records, vectorised (no per-row Python)."""
    rng = np.random.default_rng(seed)
    n_load, n_probe = int(total * 0.70), int(total * 0.25)
    n_rl = total - n_load - n_probe
    t0 = 1_700_000_000.0
    # load: 5 stages, equal counts, rising rate; latency grows in the last stage
    stage = np.repeat(np.arange(5), -(-n_load // 5))[:n_load]
    rates = np.array([500.0, 1000.0, 1500.0, 2000.0, 2500.0])
    counts = np.bincount(stage, minlength=5)
    starts = np.concatenate([[0.0], np.cumsum(counts / rates)[:-1]])
    offset = np.concatenate([np.arange(c) for c in counts]) / rates[stage]
    due = t0 + starts[stage] + offset
    latency = 0.01 + rng.exponential(0.01, n_load) * np.where(stage == 4, 6, 1)
    status = np.where(rng.random(n_load) < np.where(stage == 4, 0.15, 0.002), 429, 200)
    status[rng.random(n_load) < 0.001] = 500
    chat = rng.random(n_load) < 0.7
    load = {
        "ts": due + 0.0005, "intended_ts": due, "source": np.full(n_load, "load"),
        "phase": np.array([f"stage-{i + 1}" for i in range(5)])[stage],
        "endpoint": np.where(chat, "/v1/chat/completions", "/v1/models"),
        "method": np.where(chat, "POST", "GET"),
        "key_alias": np.array(["a1", "a2", "a3", "b1", "b2"])[rng.integers(0, 5, n_load)],
        "org": np.where(rng.random(n_load) < 0.6, "org_alpha", "org_beta"),
        "status": status.astype(np.int32), "latency_s": latency,
        "error": np.where(status >= 400, "http", ""),
        "prompt_tokens": pa.array(np.where(chat, 12, 0), mask=~chat),
        "completion_tokens": pa.array(rng.integers(5, 60, n_load), mask=~chat),
    }
    # probe: 4 checks x 5 targets every 10 s, a few outages
    k = np.arange(n_probe)
    checks = np.array(["models", "chat", "auth", "errors"])[k % 4]
    targets = np.array([f"t{i}" for i in range(5)])[(k // 4) % 5]
    ok = rng.random(n_probe) > 0.001
    ok[(k // 20) % 5000 < 7] = False
    probe = {"ts": t0 + (k // 20) * 10.0, "source": np.full(n_probe, "probe"),
             "check": checks, "target": targets, "endpoint": np.full(n_probe, "/v1/models"),
             "status": np.where(ok, 200, 503).astype(np.int32), "success": ok,
             "reason": np.where(ok, "", "status"),
             "latency_s": 0.005 + rng.exponential(0.004, n_probe)}
    # rate limit: 5 keys, 429 in bursts
    j = np.arange(n_rl)
    limited = (j // 5) % 100 >= 80
    rl = {"ts": t0 + j * 0.01, "source": np.full(n_rl, "ratelimit"),
          "key_alias": np.array(["a1", "a2", "a3", "b1", "b2"])[j % 5],
          "endpoint": np.full(n_rl, "/v1/models"),
          "status": np.where(limited, 429, 200).astype(np.int32),
          "retry_after_s": pa.array(np.ones(n_rl), mask=~limited),
          "latency_s": 0.002 + rng.exponential(0.001, n_rl)}
    tables = []
    for part in (load, probe, rl):
        n = len(part["ts"])
        columns = [pa.array(part[name], type=field.type) if name in part
                   else pa.nulls(n, field.type) for name, field in
                   zip(SCHEMA.names, SCHEMA, strict=True)]  # loop over columns, not rows
        tables.append(pa.Table.from_arrays(columns, schema=SCHEMA))
    run = RunFolder.start(run_dir, command="bench", config={}, target="bench")
    pq.write_table(pa.concat_tables(tables).sort_by("ts"), run_dir / "records.parquet",
                   compression="zstd")
    run.finish("passed")


def child(task: str, run_dir: str) -> None:
    """Runs in a fresh process; prints the elapsed seconds as JSON."""
    if task == "generate":
        total = int(os.environ["BENCH_RECORDS"])
        start = time.perf_counter()
        generate(Path(run_dir), total)
        elapsed = time.perf_counter() - start
    elif task == "load":
        start = time.perf_counter()
        frame = pq.read_table(Path(run_dir) / "records.parquet").to_pandas()
        elapsed = time.perf_counter() - start
        assert len(frame)
    else:
        from reports.build import build_report

        start = time.perf_counter()
        build_report([run_dir], out=Path(run_dir) / "report")
        elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed_s": elapsed}))


def measure(task: str, run_dir: Path, records: int = 0) -> tuple[float, float]:
    """(elapsed seconds, peak RSS MiB) of one child run. Generation runs in a child too:
    Linux children inherit the parent's peak RSS, so the parent must stay small."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", task, str(run_dir)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "BENCH_RECORDS": str(records)})
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{task} child failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])["elapsed_s"], usage.ru_maxrss / 1024


def write_results(section: str, results: Path = RESULTS) -> None:
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = results.with_name(f".{results.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--records", type=int, default=None,
                        help="default 1,000,000 (quick: 100,000)")
    parser.add_argument("--repeat", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "RUN_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    args.records = args.records or (100_000 if args.quick else 1_000_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        gen_s, _ = measure("generate", run_dir, args.records)
        size_mb = (run_dir / "records.parquet").stat().st_size / 1e6
        loads = [measure("load", run_dir) for _ in range(args.repeat)]
        reports = [measure("report", run_dir) for _ in range(args.repeat)]
        html_kb = (run_dir / "report" / "report.html").stat().st_size / 1e3
        json_kb = (run_dir / "report" / "summary.json").stat().st_size / 1e3
    load_s = statistics.median(t for t, _ in loads)
    report_s = statistics.median(t for t, _ in reports)
    load_mb = max(m for _, m in loads)
    report_mb = max(m for _, m in reports)
    section = (
        f"{HEADING}\n\n"
        f"`benchmarks/bench_report.py` — {args.records:,} synthetic records (70 % load in a "
        f"5-stage ramp, 25 % probe, 5 % rate-limit), records.parquet {size_mb:.1f} MB "
        f"(zstd); generated in {gen_s:.1f} s. Each task in a fresh process, time measured "
        f"inside it (imports excluded), median of {args.repeat}; peak RSS from `os.wait4`.\n\n"
        "| task | median time | peak RSS |\n|---|---:|---:|\n"
        f"| pandas loads the file (`read_table().to_pandas()`, all columns) | {load_s:.2f} s "
        f"| {load_mb:.0f} MiB |\n"
        f"| full report (HTML + Markdown + JSON) | {report_s:.2f} s | {report_mb:.0f} MiB |\n"
        f"| **ratio report / load** | **{report_s / load_s:.1f}×** | "
        f"{report_mb / load_mb:.2f}× |\n\n"
        f"report.html {html_kb:.0f} kB, summary.json {json_kb:.0f} kB. "
        f"Machine: {machine()}.\n")
    print(section)
    if not args.no_write:
        write_results(section, args.results)
    ratios = [r / lo for (r, _), (lo, _) in zip(reports, loads, strict=True)]
    write_figures(args.figures, [figure(
        f"report / pandas load, {args.records:,} records", report_s / load_s, "<= 5",
        ratios, note=f"peak RSS report {report_mb:.0f} MiB, pandas {load_mb:.0f} MiB")])


if __name__ == "__main__":
    main()
