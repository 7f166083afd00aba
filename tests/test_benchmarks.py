"""Smoke tests of the benchmark plumbing (never of speed): a bench script's quick mode
writes a well-formed section and figures file into a copy of RESULTS.md, and the
orchestrator's summary goes on top while every script's section is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of the repository, not installed

from benchmarks.__main__ import summary, write_summary
from benchmarks.common import figure, meets, replace_section


def test_report_bench_quick_writes_section_and_figures(tmp_path: Path) -> None:
    results, figures = tmp_path / "RESULTS.md", tmp_path / "f.json"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_report.py"),
                           "--quick", "--records", "20000", "--results", str(results),
                           "--figures", str(figures)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = results.read_text()
    assert "## Other\n\nkept" in text and "## Report on 1,000,000 records" in text
    assert "20,000 synthetic records" in text and "| **ratio report / load** |" in text
    [fig] = json.loads(figures.read_text())
    assert fig["target"] == "<= 5" and fig["value"] > 0 and len(fig["runs"]) == 1


def test_summary_on_top_sections_kept(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Summary\n\nold\n\n## A\n\na\n")
    replace_section(results, "## B", "b")
    rows = [("x", [figure("ratio", 0.8, ">= 0.85"), figure("rate", 1.02, "0.9..1.1")], "3 s"),
            ("y", [], "timed out after 5 s")]
    write_summary(results, summary(rows, True, "2026-01-01", 60))
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Summary\n")
    assert "\nold\n" not in text and "## A\n\na" in text and "## B\n\nb" in text
    assert "| ratio | >= 0.85 | 0.800 | **MISS** |" in text
    assert "| rate | 0.9 to 1.1 | 1.020 | pass |" in text
    assert "y: no figure" in text and text.index("## Summary") < text.index("## A")


def test_targets() -> None:
    assert meets(2.0, ">= 2.0") and not meets(1.99, ">= 2.0")
    assert meets(3, "<= 3") and not meets(None, "<= 3") and not meets(1.11, "0.9..1.1")


def test_only_run_keeps_the_other_benches_rows(tmp_path: Path) -> None:
    """`--only server` refreshes the server rows and keeps every other bench's last rows."""
    from benchmarks.__main__ import merge_figures

    store = tmp_path / "figures.json"
    merge_figures([("server", [figure("a", 1.0, ">= 2")], "9 s"),
                   ("load", [figure("b", 0.9, ">= 0.85")], "8 s")], "run-1", store)
    rows = merge_figures([("server", [figure("a", 3.0, ">= 2")], "7 s")], "run-2", store)
    assert [(name, figs[0]["value"], status) for name, figs, status in rows] == [
        ("server", 3.0, "7 s"), ("load", 0.9, "8 s, run run-1")]
