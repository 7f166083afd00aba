"""Benchmark: the report's charts drawn by a chart library (Vega-Lite through altair, made
offline SVG by vl-convert) against the hand-made inline SVG the report ships.

Why: the report must stay self-contained (no network, no script) and cheap on 1,000,000
records (report / pandas-load <= 5x). A well-kept library would draw better charts for
free, so its cost is measured on the same 1M-record summary, chart for chart: the same
aggregated series (every chart draws at most a few hundred points), each chart made SVG.
Not part of ``python -m benchmarks``: altair and vl-convert-python are not dependencies.

Usage::

    pip install altair vl-convert-python   # in a scratch environment
    .venv/bin/python benchmarks/bench_chart_library.py [--records 1000000] [--repeat 3]

Prints JSON: seconds per full chart set (hand-made; library cold = first set in a fresh
process incl. imports and the engine's start, warm = median of the next ones), the SVG
bytes of each, and the charts drawn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_report import generate
from reports.build import analyse
from reports.render import _charts


def _line_frames(run: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The line charts of one run section as long-form rows (title, rows)."""
    charts: list[tuple[str, dict[str, Any]]] = []
    cap = run["capacity"]
    if cap.get("available"):
        series = cap["series"]
        charts += [("Throughput by endpoint", series["throughput_by_endpoint"]),
                   ("Throughput by status", series["throughput_by_status"]),
                   ("Errors and 429s over time",
                    {k: v for k, v in series["throughput_by_status"].items()
                     if k not in ("2xx", "3xx")}),
                   ("Latency percentiles over time", series["latency"]),
                   ("Latency CDF", {"CDF": cap["cdf"]})]
        if "tokens_per_s" in series:
            charts.append(("Tokens per second", series["tokens_per_s"]))
        if len(cap.get("stages") or []) >= 2:
            stages = cap["stages"]
            charts.append(("Latency by offered rate",
                           {"p95": [[s["offered_rps"], s["p95"]] for s in stages],
                            "p50": [[s["offered_rps"], s["p50"]] for s in stages]}))
    return [(title, [{"series": name, "x": x, "y": y} for name, points in data.items()
                     for x, y in points if x is not None and y is not None])
            for title, data in charts]


def _library_svgs(run: dict[str, Any]) -> list[str]:
    """Every chart of the run section as Vega-Lite, converted to SVG offline."""
    import altair as alt
    import pandas as pd
    import vl_convert as vlc

    specs = []
    for title, rows in _line_frames(run):
        frame = pd.DataFrame(rows)
        specs.append(alt.Chart(frame, title=title).mark_line().encode(
            x="x:Q", y="y:Q", color="series:N").properties(width=620, height=180))
    timeline = (run["ratelimits"] or {}).get("timeline")
    if timeline:
        rows = [{"key": key, "t": p[0], "kind": kind, "n": n}
                for key, points in timeline["lanes"].items() for p in points
                for kind, n in zip(("ok", "429", "other"), p[1:], strict=False) if n]
        specs.append(alt.Chart(pd.DataFrame(rows), title="Requests per key by status")
                     .mark_bar().encode(x="t:Q", y="n:Q", color="kind:N", row="key:N")
                     .properties(width=620, height=26))
    strips = (run["uptime"] or {}).get("strips")
    if strips:
        rows = [{"lane": lane, "t": p[0], "ok": p[1]}
                for lane, points in strips["lanes"].items() for p in points]
        specs.append(alt.Chart(pd.DataFrame(rows), title="Availability over time")
                     .mark_rect().encode(x="t:O", y="lane:N", color="ok:Q")
                     .properties(width=620))
    return [vlc.vegalite_to_svg(spec.to_dict()) for spec in specs]


def _timed(draw: Any, runs: list[dict[str, Any]]) -> tuple[float, int]:
    start = time.perf_counter()
    size = sum(len(str(svg)) for run in runs for svg in draw(run))
    return time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        generate(run_dir, args.records)
        start = time.perf_counter()
        summary = analyse([run_dir], slo=0.995)
        analysis_s = time.perf_counter() - start
    runs = summary["runs"]

    def hand_made(run: dict[str, Any]) -> list[str]:
        return list(_charts(run).values())

    cold_start = time.perf_counter()
    library_cold, library_size = _timed(_library_svgs, runs)  # imports + engine start
    library_cold = time.perf_counter() - cold_start
    library_warm = statistics.median(_timed(_library_svgs, runs)[0]
                                     for _ in range(args.repeat))
    hand = [_timed(hand_made, runs) for _ in range(args.repeat)]
    print(json.dumps({
        "records": args.records, "analysis_s": round(analysis_s, 3),
        "charts": len(_library_svgs(runs[0])),
        "hand_made_s": round(statistics.median(t for t, _ in hand), 4),
        "hand_made_svg_bytes": hand[0][1],
        "library_cold_s": round(library_cold, 3), "library_warm_s": round(library_warm, 3),
        "library_svg_bytes": library_size}, indent=1))


if __name__ == "__main__":
    main()
