"""``python -m benchmarks [--quick] [--only NAME ...]``: every benchmark, one summary.

Runs each ``bench_*.py`` script as a child process (one at a time: they pin cores and
must not compete), each with a hard timeout, and each writing its own ``## ...`` section
of RESULTS.md and its headline figures as JSON. Then the summary table at the top of
RESULTS.md is rewritten: figure, target, measured median, pass/miss, the machine (cores,
CPU model, Python) and the date. A script that fails or times out shows up as a missing
figure in the table (and a non-zero exit), never as a stale number.

Full run: about 30-35 minutes on 2 cores (the rate-limit accuracy matrix alone ~17);
``--quick``: about 7 minutes (rougher figures).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, can_pin, machine  # noqa: E402

#: name -> (script, timeout of a full run s, timeout of a quick run s)
BENCHES: dict[str, tuple[str, int, int]] = {
    "server": ("bench_server.py", 300, 90),
    "load": ("bench_load.py", 420, 150),
    "processes": ("bench_processes.py", 240, 90),
    "inflight": ("bench_inflight.py", 300, 150),
    "ratelimit": ("bench_ratelimit.py", 1800, 600),   # 32 limiter configurations
    "report": ("bench_report.py", 300, 120),
    "shipping": ("bench_shipping.py", 300, 150),
}
SUMMARY = "## Summary"
#: Each bench's latest figures, kept so that ``--only NAME`` refreshes its rows and keeps
#: the others (each row says which run it comes from) instead of dropping them.
FIGURES = ROOT / "benchmarks" / "figures.json"


def run_bench(name: str, quick: bool, results: Path, work: Path) -> tuple[list[dict], str]:
    script, full_s, quick_s = BENCHES[name]
    figures_file = work / f"{name}.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--results", str(results),
           "--figures", str(figures_file), *(["--quick"] if quick else [])]
    started = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])}", file=sys.stderr,
          flush=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, timeout=quick_s if quick else full_s,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return [], f"timed out after {quick_s if quick else full_s} s"
    elapsed = time.monotonic() - started
    print(f"  ... {elapsed:.0f} s, exit {done.returncode}", file=sys.stderr, flush=True)
    if done.returncode != 0 or not figures_file.exists():
        tail = " | ".join(done.stdout.strip().splitlines()[-3:])
        return [], f"failed (exit {done.returncode}): {tail[-300:]}"
    return json.loads(figures_file.read_text()), f"{elapsed:.0f} s"


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def merge_figures(rows: list[tuple[str, list[dict], str]], started: str,
                  store: Path = FIGURES) -> list[tuple[str, list[dict], str]]:
    """This run's rows plus the stored rows of benches not run now (marked with their run)."""
    stored: dict[str, dict] = json.loads(store.read_text()) if store.exists() else {}
    for name, figures, status in rows:
        stored[name] = {"figures": figures, "status": status, "run": started}
    tmp = store.with_name(f".{store.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, store)
    ran = {name for name, _, _ in rows}
    merged = []
    for name in BENCHES:
        if name in stored:
            entry = stored[name]
            status = entry["status"] if name in ran else f"{entry['status']}, run {entry['run']}"
            merged.append((name, entry["figures"], status))
    return merged


def summary(rows: list[tuple[str, list[dict], str]], quick: bool, started: str,
            wall_s: float) -> str:
    lines = [SUMMARY, "",
             f"`make bench` (`python -m benchmarks{' --quick' if quick else ''}`), "
             f"{started}, {wall_s / 60:.1f} min. Machine: {machine()}. Load average at "
             f"start: {os.getloadavg()[0]:.2f} (anything else running competes for the same "
             f"cores). Pinning: "
             + ("server on core 0/1 and generator on the other core with `taskset`, except "
                "`--processes 2` (unpinned: its two workers need both cores)."
                if can_pin() else "not available (no taskset or one core)."),
             "Each figure is the median of the runs listed in its section; a row from an "
             "earlier `--only` run names that run.", "",
             "| figure | target | measured (median) | result | bench | note |",
             "|---|---|---|---|---|---|"]
    for name, figures, status in rows:
        if not figures:
            lines.append(f"| {name}: no figure | — | — | **MISS** | {name} | {status} |")
        for f in figures:
            result = "pass" if f["passed"] else "**MISS**"
            lines.append(f"| {f['name']} | {f['target'].replace('..', ' to ')} | "
                         f"{fmt(f['value'])} | {result} | {name} ({status}) | "
                         f"{f.get('note', '')} |")
    return "\n".join(lines) + "\n"


def write_summary(results: Path, text: str) -> None:
    """Summary right after the title; every other section kept as the scripts wrote it."""
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    old = re.sub(rf"^{re.escape(SUMMARY)}\n.*?(?=^## |\Z)", "", old, flags=re.S | re.M)
    title, _, rest = old.partition("\n")
    notes = ""
    findings = ROOT / "benchmarks" / "FINDINGS.md"
    if findings.exists():
        notes = "\n" + findings.read_text(encoding="utf-8").strip() + "\n"
    new = re.sub(r"^## Findings and gaps\n.*?(?=^## |\Z)", "", rest.lstrip(), flags=re.S | re.M)
    new = f"{title}\n\n{text}{notes}\n{new}"
    tmp = results.with_name(f".{results.name}.tmp")
    tmp.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, results)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short pass (~3 min)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, t0 = time.strftime("%Y-%m-%d %H:%M %Z"), time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            figures, status = run_bench(name, args.quick, args.results, Path(tmp))
            rows.append((name, figures, status))
    merged = merge_figures(rows, started) if args.results == RESULTS else rows
    text = summary(merged, args.quick, started, time.monotonic() - t0)
    write_summary(args.results, text)
    print(text)
    failed = [name for name, figures, _ in rows if not figures]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
