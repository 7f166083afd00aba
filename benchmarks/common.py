"""What every benchmark script shares: CPU pinning, the machine line, RESULTS.md sections
and the figures file the orchestrator (``python -m benchmarks``) reads.

A script replaces only its own ``## ...`` section of RESULTS.md (``replace_section``) and,
with ``--figures FILE``, writes its headline figures as JSON, so ``python -m benchmarks``
can put every figure, its target and pass/miss into the summary table at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secton_harness.atomicfile import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def can_pin() -> bool:
    """taskset exists and there are at least two cores to separate server and generator."""
    return bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


def pinned(cpu: int | str) -> list[str]:
    """``taskset -c CPU`` prefix when pinning is possible, else nothing."""
    return ["taskset", "-c", str(cpu)] if can_pin() else []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return (f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a short pass (fewer, shorter "
                        "runs; figures are rougher)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="markdown file whose section is replaced (default: "
                        "benchmarks/RESULTS.md)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="write the headline figures as JSON here (for python -m "
                        "benchmarks)")


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the ``heading`` section of ``path`` (to the next ``## ``), atomically; append
    it when missing."""
    block = f"{heading}\n\n{body.strip()}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = (pattern.sub(lambda _: block + "\n", old).rstrip("\n") + "\n"
           if pattern.search(old) else old.rstrip("\n") + "\n\n" + block)
    write_text_atomic(path, new)


def figure(name: str, value: float | None, target: str, runs: Sequence[float] = (),
           unit: str = "", note: str = "") -> dict[str, Any]:
    """One headline figure. ``target`` is ``>= x``, ``<= x`` or ``a..b``."""
    return {"name": name, "value": value, "target": target, "runs": list(runs),
            "unit": unit, "note": note, "passed": meets(value, target)}


def meets(value: float | None, target: str) -> bool:
    if value is None:
        return False
    if ".." in target:
        low, high = (float(v) for v in target.split(".."))
        return low <= value <= high
    op, limit = target.split()
    return value >= float(limit) if op == ">=" else value <= float(limit)


def write_figures(path: Path | None, figures: list[dict[str, Any]]) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2) + "\n")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
