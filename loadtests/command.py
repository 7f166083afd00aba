"""``secton-harness load``: run a load scenario against a target and judge its thresholds.

Registered by ``secton_cli/app.py``. Nothing heavy is imported at module level: the
command runs Locust in a child process (see ``loadtests/locust_process.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from loadtests.scenario import DEFAULT_MAX_REQUESTS
from secton_harness.config import duration_flag
from secton_harness.errors import BadInput
from secton_harness.limits import max_body_bytes


def register(app: typer.Typer) -> None:
    app.command(name="load")(load)


def load(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="Scenario TOML "
                                           "(see docs/load.md), e.g. examples/capacity.toml.")],
    target: Annotated[str | None, typer.Option(
        envvar="SECTON_BASE_URL", show_envvar=True,
        help="Base URL of the API under load; required.")] = None,
    keys: Annotated[Path | None, typer.Option(help="Keys TOML; default: env "
                                              "SECTON_API_KEY (+ SECTON_ORG).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (new or empty). Default: "
                                             "runs/<time>-load.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the run folder --out if it holds "
                                            "an earlier run.")] = False,
    json_out: Annotated[str | None, typer.Option(
        "--json", metavar="FILE", help="Write the summary with the verdict as JSON to FILE "
        "('-' = stdout).")] = None,
    junit: Annotated[str | None, typer.Option(
        metavar="FILE", help="Write a JUnit XML report to FILE: one test case per default "
        "check and per threshold.")] = None,
    processes: Annotated[int, typer.Option(help="Locust worker processes on this machine "
                                           "(0 = one process).")] = 0,
    master: Annotated[bool, typer.Option(help="Run as Locust master for remote "
                                         "workers.")] = False,
    worker: Annotated[bool, typer.Option(help="Run as a Locust worker of a "
                                         "--master.")] = False,
    master_host: Annotated[str, typer.Option(help="Master address (bind or "
                                             "connect).")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Master port.")] = 5557,
    expect_workers: Annotated[int, typer.Option(help="With --master: workers to wait "
                                                "for.")] = 1,
    ui: Annotated[bool, typer.Option(help="Keep Locust's web UI (press start "
                                     "there).")] = False,
    web_port: Annotated[int, typer.Option(help="Web UI port with --ui.")] = 8089,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus metrics on this port "
                                              "(0 = off).")] = 0,
    metrics_host: Annotated[str, typer.Option(help="Interface for the metrics "
                                              "endpoint.")] = "127.0.0.1",
    metrics_linger: Annotated[str, typer.Option(help="Keep serving metrics this long after "
                                                "the run, for a last scrape.")] = "0s",
    max_requests: Annotated[int, typer.Option(help="Hard cap on requests sent (all "
                                              "processes).")] = DEFAULT_MAX_REQUESTS,
    max_duration: Annotated[str, typer.Option(help="Hard cap on the run time: a longer "
                                              "scenario is refused, the drain is cut to "
                                              "end by it.")] = "1h",
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback "
                                               "--target.")] = False,
    push_gateway: Annotated[str | None, typer.Option(
        metavar="URL", help="Push the final metrics to this Prometheus Pushgateway at the "
        "end of the run (job secton_load, grouped by run).")] = None,
    keep_parts: Annotated[bool, typer.Option(help="With --worker: keep a copy of every "
                                             "record part in --out after sending it to "
                                             "the master.")] = True,
) -> None:
    """Load the target at the scenario's rates with Locust; judge its thresholds.

    Sends GET /v1/models and POST /v1/chat/completions at the scenario's open-model rates
    (evenly spaced or Poisson arrivals, steady/step/spike/soak shapes), each user bound to
    a key. Writes a run folder (run.json + records.parquet), serves live Prometheus metrics
    with --metrics-port, prints a threshold table. Exit 0 all thresholds and default
    checks pass (every endpoint sent >= 95 % of its schedule, requests recorded, few
    harness errors), 1 any fails (one line says why), 2 bad input, 130 interrupted
    (records kept). The user pool grows from `users` to `max_users` to hold the rate.

    Example: [cyan]secton-harness load --scenario examples/capacity.toml --target
    http://127.0.0.1:8080 --keys secton_cli/demo_inputs/demo-keys.toml[/cyan]
    """
    from rich.console import Console

    from loadtests.locust_process import LoadOptions, run_load, validate
    from secton_harness.ci import check_writable

    if not target:
        raise BadInput("no target: pass --target URL or set SECTON_BASE_URL")
    max_duration_s = duration_flag(max_duration, "--max-duration")
    linger_s = duration_flag(metrics_linger, "--metrics-linger")
    max_body_bytes()  # a bad SECTON_MAX_BODY_BYTES is one line here, not in the Locust child
    check_writable(json_out, "--json")
    check_writable(junit, "--junit")
    options = LoadOptions(
        scenario=scenario, target=target, keys=keys, out=out, overwrite=overwrite,
        processes=processes,
        master=master, worker=worker, master_host=master_host, master_port=master_port,
        expect_workers=expect_workers, ui=ui, web_port=web_port, metrics_port=metrics_port,
        metrics_host=metrics_host, metrics_linger_s=linger_s, max_requests=max_requests,
        max_duration_s=max_duration_s,
        allow_remote=allow_remote, push_gateway=push_gateway, keep_parts=keep_parts)
    checked = validate(options)  # every bad input is one line before anything is printed
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    if ui:
        console.print(f"Locust web UI: http://127.0.0.1:{web_port} (press Start there)")
    if metrics_port:
        console.print(f"metrics: http://{metrics_host}:{metrics_port}/metrics")
    started = time.monotonic()
    with _progress(console) as tick:
        result = run_load(options, progress=tick, checked=checked)
    print_result(console, result)
    elapsed = time.monotonic() - started
    if json_out is not None:
        from secton_harness.ci import write_json

        write_json(json_out, verdict_json(result))
    if junit is not None:
        from secton_harness.ci import write_junit

        write_junit(junit, "secton-harness load", verdict_cases(result), elapsed)
    raise typer.Exit(result.exit_code)


#: Off a terminal (CI logs), one progress line this often.
PROGRESS_EVERY_S = 5.0


class _progress:
    """Live figures of the run, read from the Locust child's ``progress.json``.

    On a terminal: a rich progress bar whose note carries the figures. Off a terminal: one
    plain line every :data:`PROGRESS_EVERY_S` seconds, so a CI log shows the run is alive
    and on rate (elapsed, rps vs asked per endpoint, in flight, errors, 429s, the p95
    bucket bound, dropped).
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.terminal = console.is_terminal
        self.bar = Progress(TextColumn("load"), BarColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[note]}"), console=console,
                            transient=True, disable=not self.terminal)
        self.task = self.bar.add_task("load", total=1.0, note="")
        self.last_print = 0.0
        self.previous: tuple[float, dict[str, int]] | None = None
        self.rps: dict[str, float] = {}

    def __enter__(self) -> Any:
        self.bar.start()
        return self.tick

    def tick(self, elapsed: float, total: float, run_dir: Path | None = None) -> None:
        figures = self.figures(run_dir) if run_dir is not None else ""
        clock = "draining" if elapsed > total else f"{elapsed:.0f}/{total:.0f}s"
        if self.terminal:
            self.bar.update(self.task, completed=min(1.0, elapsed / total),
                            note=f"{clock} {figures}")
        elif elapsed - self.last_print >= PROGRESS_EVERY_S:
            self.last_print = elapsed
            self.console.print(f"load {clock}" + (f" | {figures}" if figures else ""),
                               highlight=False, soft_wrap=True)

    def figures(self, run_dir: Path) -> str:
        import json

        from loadtests.run_files import PROGRESS_FILE

        try:
            data = json.loads((run_dir / PROGRESS_FILE).read_text())
        except (OSError, ValueError):
            return ""
        endpoints = data.get("endpoints") or {}
        at = float(data.get("at") or 0.0)
        counts = {name: int(e.get("requests") or 0) for name, e in endpoints.items()}
        if self.previous is not None and at > self.previous[0]:
            span = at - self.previous[0]
            self.rps = {name: (n - self.previous[1].get(name, 0)) / span
                        for name, n in counts.items()}
        if self.previous is None or at > self.previous[0]:
            self.previous = (at, counts)
        parts = []
        for name, e in endpoints.items():
            p95 = e.get("p95_bound_s")
            parts.append(
                f"{name} {self.rps.get(name, 0.0):.1f}/{float(e.get('asked_rps') or 0):.3g} "
                f"rps, {e.get('inflight', 0)} in flight ({e.get('users', 0)} users), "
                f"{e.get('errors', 0)} errors, {e.get('ratelimited', 0)} 429, "
                f"p95<={'-' if p95 is None else f'{p95:g}s'}, {e.get('dropped', 0)} dropped")
        return " | ".join(parts)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def verdict_cases(result: Any) -> list[Any]:
    """The run's verdict as CI cases: default checks, thresholds, an early stop."""
    from secton_harness.ci import Case

    cases = [Case(c.name, "checks", c.passed, c.detail) for c in result.checks]
    cases += [Case(f"{r.threshold.scope}: {r.threshold.text}", "thresholds", r.passed,
                   r.describe()) for r in result.results]
    cases += [Case("stopped_early", "checks", False, text) for text in result.aborted]
    if result.outcome in ("interrupted", "error"):
        cases.append(Case("run", "checks", False, result.reason))
    return cases


def verdict_json(result: Any) -> dict[str, Any]:
    """The summary with the verdict, for ``--json``."""
    return {"command": "load", "outcome": result.outcome, "exit_code": result.exit_code,
            "reason": result.reason, "run_dir": str(result.run_dir),
            "checks": [{"check": c.name, "passed": c.passed, "detail": c.detail}
                       for c in result.checks],
            "thresholds": [{"scope": r.threshold.scope, "threshold": r.threshold.text,
                            "actual": r.actual, "passed": r.passed,
                            "resolved": r.describe()} for r in result.results],
            "aborted_on": result.aborted, "rates": result.rates, "summary": result.summary}


def print_result(console: Any, result: Any) -> None:
    from rich.table import Table

    from loadtests.thresholds import format_value

    figures = Table(title=f"load: {result.run_dir}")
    for column in ("endpoint", "requests", "rps", "asked rps", "p50 ms", "p95 ms",
                   "p99 ms", "p99 corr. ms", "errors", "error %", "429", "cancelled"):
        figures.add_column(column, justify="left" if column == "endpoint" else "right")

    def show(value: Any) -> str:
        return "-" if value is None else format_value(value)

    def ms(value: Any) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value * 100:.2f}"

    for endpoint, f in result.summary.items():
        figures.add_row(endpoint, show(f["requests"]), show(f["rps"]),
                        show(f.get("asked_rps")), ms(f["p50_latency_s"]),
                        ms(f["p95_latency_s"]), ms(f["p99_latency_s"]),
                        ms(f["p99_corrected_latency_s"]), show(f["errors"]),
                        pct(f.get("error_rate")), show(f["ratelimited"]),
                        show(f.get("cancelled")))
    if result.summary:
        console.print(figures)
    if result.rates:
        console.print(_rate_table(result.rates))
    if result.results:
        table = Table(title="thresholds")
        for column in ("scope", "threshold", "resolved", "margin", "result"):
            table.add_column(column)
        for r in result.results:
            table.add_row(r.threshold.scope, r.threshold.text, r.describe(), r.margin(),
                          "[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
        console.print(table)
    for check in result.checks:
        if not check.passed:
            console.print(f"[red]FAIL[/red] {check.name}: {check.detail}", highlight=False,
                          soft_wrap=True)
    for text in result.aborted:
        console.print(f"stopped early: {text}", highlight=False)
    if result.reason:
        console.print(f"{result.outcome}: {result.reason}", highlight=False, soft_wrap=True)
    console.print(f"outcome: {result.outcome}; run folder: {result.run_dir}")


def _rate_table(rates: dict[str, Any]) -> Any:
    """Asked vs held per endpoint and phase, with drops, slots cut by ``--max-requests``
    (a ``capped`` column, only when there are any) and the user pool."""
    from rich.table import Table

    capped = any(f.get("capped") for f in rates.values())
    table = Table(title="rate: asked vs held (held = asked x sent / scheduled)")
    for column in ("endpoint", "phase", "asked rps", "held rps", "sent", "scheduled",
                   "dropped", *(("capped",) if capped else ()), "users (peak/max)"):
        table.add_column(column, justify="left" if column in ("endpoint", "phase")
                         else "right")

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.3g}"

    for name, f in rates.items():
        pool = f.get("pool") or {}
        users = f"{pool.get('peak_users', '-')}/{pool.get('max_users', '-')}" if pool else "-"
        rows = [("all", f)] + (list(f["phases"].items()) if len(f["phases"]) > 1 else [])
        for phase, g in rows:
            table.add_row(name, phase, num(g["asked_rps"]), num(g["held_rps"]),
                          str(g["sent"]), str(g["scheduled"]),
                          "-" if g["dropped"] is None else str(g["dropped"]),
                          *((str(g.get("capped") or 0),) if capped else ()),
                          users if phase == "all" else "")
    return table
