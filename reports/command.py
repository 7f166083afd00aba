"""``secton-harness report``: turn run folders into report.html, report.md and summary.json.

pandas and the analysis modules are imported inside the command, so ``--help`` and the
other commands never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from secton_harness.measures import DEFAULT_SLO


def report(
    run_dirs: Annotated[list[Path], typer.Argument(
        metavar="RUN_DIR",
        help="Run folders (load, probe, ratelimit runs); each gets its own section and "
        "verdict (records are never merged across runs).",
        show_default=False)],
    baseline: Annotated[Path | None, typer.Option(
        help="A previous run folder to compare against; exit 1 on a regression past the "
        "bounds.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for report.html, report.md and summary.json. Default: the first "
        "run folder.")] = None,
    slo: Annotated[float, typer.Option(
        help="Availability objective for the uptime error budget (0..1); the same "
        "default as the probe dashboard and alert rules.")] = DEFAULT_SLO,
    bounds: Annotated[str | None, typer.Option(
        help="Regression bounds over the defaults (p50=25%,p95=20%,p99=30%,"
        "error_rate=0.01,ok_rps=10%,availability=0.001); % is relative to the baseline, "
        "a bare number an absolute change.")] = None,
    knee_latency: Annotated[float, typer.Option(
        help="A ramp stage is degraded when its p95 exceeds this multiple (at least 1) of "
        "the first stage's p95.")] = 1.5,
    knee_errors: Annotated[float, typer.Option(
        help="A ramp stage is degraded when its share of errors plus 429s rises this much "
        "(a fraction, 0..1) above the first stage's.")] = 0.05,
) -> None:
    """Report on one or more run folders: capacity, rate limits, uptime, baseline.

    Reads only files (run.json, records.parquet or leftover records.parts/, ratelimit.json)
    and writes a self-contained report.html (inline SVG charts, no network needed,
    printable), report.md for a pull-request comment and summary.json with every figure.
    Exit 0 when the verdict is PASSED; 1 when it is FAILED (a run failed a threshold,
    check or expectation, stopped early or recorded nothing, or --baseline shows a
    regression past --bounds); 2 on bad input or an incomparable baseline.

    Example: [cyan]secton-harness report runs/load-1 runs/probe-1 --baseline runs/load-0[/cyan]
    """
    from rich.console import Console

    from reports.build import build_report

    console = Console(stderr=True)
    with console.status("analysing records…"):
        result = build_report(run_dirs, out=out, slo=slo, baseline=baseline, bounds=bounds,
                              knee_latency_ratio=knee_latency, knee_error_rise=knee_errors)
    verdict = result.summary["verdict"]
    colour = "green" if verdict["passed"] else "red"
    console.print(f"[{colour}]verdict: {verdict['status'].upper()}[/{colour}]"
                  + (f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else ""),
                  highlight=False)
    for run in result.summary["runs"]:  # why, in the CI log, not only in report.md
        if not run["verdict"]["passed"]:
            console.print(f"  {run['dir']}: {run['verdict']['status'].upper()}: "
                          f"{'; '.join(run['verdict']['reasons'])}",
                          markup=False, highlight=False, soft_wrap=True)
    base = result.summary["baseline"]
    if base.get("rows"):
        if result.regressed:
            console.print(f"[red]regression against {baseline}: "
                          f"{', '.join(base['regressions'])}[/red]")
        else:
            console.print(f"[green]no regression against {baseline}[/green]")
    typer.echo(str(result.html))
    if not result.passed:  # a CI gate on `report` must not pass a FAILED verdict
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the harness CLI."""
    app.command(name="report")(report)
