"""``secton-harness demo``: a guided tour against the embedded reference server.

The demo starts everything it needs (reference servers on free loopback ports), runs each
job the way a user would — every step through the real ``secton-harness`` CLI in a child
process, so the demo exercises exactly what users run and never imports a job — and stops
everything it started, even on Ctrl-C. The first step, the probes run once, is the smoke
check of auth and both endpoints against the contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from secton_harness.errors import BadInput
from secton_harness.keys import load_keys
from simulator.launcher import ReferenceServer

INPUTS = Path(__file__).resolve().parent / "demo_inputs"
DEMO_KEYS = INPUTS / "demo-keys.toml"


def run_cli(console: Console, title: str, args: list[str], timeout_s: float) -> int:
    """Run one ``secton-harness`` command as a child process, streaming its output."""
    console.rule(f"[bold]{title}[/bold]")
    console.print(f"$ secton-harness {' '.join(args)}", style="dim")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        completed = subprocess.run([sys.executable, "-m", "secton_harness", *args], env=env,
                                   timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        console.print(f"[red]{title}: did not finish within {timeout_s:.0f}s[/red]")
        return 1
    return completed.returncode


@dataclass(frozen=True)
class TourStep:
    """One later step of the tour: a ``secton-harness`` command run as a child process."""

    title: str
    args: Callable[[str, Path], list[str]]  # (target url, demo folder) -> CLI arguments
    timeout_s: float
    run_dir: str | None = None         # sub-folder the step writes, fed to the report
    server_config: Path | None = None  # its own reference-server config (None: the default)


TOUR: list[TourStep] = [
    TourStep("Synthetic probes, once",
             lambda url, out: ["probe", "--once", "--target", url, "--label", "reference",
                               "--keys", str(DEMO_KEYS), "--out", str(out / "probe")],
             120, "probe"),
    TourStep("Capacity ramp with thresholds",
             lambda url, out: ["load", "--scenario", str(INPUTS / "demo-capacity.toml"),
                               "--target", url, "--keys", str(DEMO_KEYS),
                               "--out", str(out / "load")],
             120, "load"),
    TourStep("Rate-limit mapping and verification",
             lambda url, out: ["ratelimit", "--target", url, "--keys", str(DEMO_KEYS),
                               "--out", str(out / "ratelimit"),
                               "--expect", str(INPUTS / "demo-ratelimit-policy.toml"),
                               "--max-duration", "90s"],
             180, "ratelimit", INPUTS / "demo-ratelimit-server.toml"),
]


def run_demo(out: Path | None) -> int:
    """Run the tour; 0 when every step passed."""
    console = Console()
    if not DEMO_KEYS.exists():
        raise BadInput(f"{DEMO_KEYS}: demo keys file missing; reinstall secton-harness")
    keys = load_keys(DEMO_KEYS)
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%dT%H%M%S')}"
    failures = 0
    with ReferenceServer() as server:
        console.print(f"reference server: [bold]{server.url}[/bold] "
                      f"(keys: {', '.join(str(k) for k in keys)})")
        run_dirs: list[Path] = []
        for step in TOUR:
            if step.server_config is not None:
                with ReferenceServer(step.server_config) as own_server:
                    console.print(f"{step.title}: its own reference server "
                                  f"[bold]{own_server.url}[/bold] ({step.server_config.name})")
                    code = run_cli(console, step.title, step.args(own_server.url, out),
                                   step.timeout_s)
            else:
                code = run_cli(console, step.title, step.args(server.url, out), step.timeout_s)
            if step.run_dir:
                run_dirs.append(out / step.run_dir)
            if code != 0:
                console.print(f"[red]{step.title}: exit code {code}[/red]")
                failures += 1
    if run_dirs:
        code = run_cli(console, "Report of the tour", [
            "report", *map(str, run_dirs), "--out", str(out / "report")], 300)
        failures += code != 0
        if code == 0:
            console.print(f"report: [bold]{out / 'report' / 'report.html'}[/bold]")
    verdict = "[green]all checks passed[/green]" if not failures else \
        f"[red]{failures} check(s) failed[/red]"
    console.print(f"demo finished: {verdict}")
    return 0 if not failures else 1
