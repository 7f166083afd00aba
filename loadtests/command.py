"""``secton-harness load``: run a load scenario against a target and judge its thresholds.

Registered by ``secton_cli/app.py``. Nothing heavy is imported at module level: the
command runs Locust in a child process (see ``loadtests/locust_process.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from loadtests.scenario import DEFAULT_MAX_REQUESTS
from secton_harness.config import parse_duration
from secton_harness.errors import BadInput
from secton_harness.limits import max_body_bytes


def register(app: typer.Typer) -> None:
    app.command(name="load")(load)


def load(
    scenario: Annotated[Path, typer.Option("--scenario", "-s", help="Scenario TOML "
                                           "(see docs/load.md), e.g. examples/capacity.toml.")],
    target: Annotated[str, typer.Option(help="Base URL of the API under load.")] =
        "http://127.0.0.1:8080",
    keys: Annotated[Path | None, typer.Option(help="Keys TOML; default: env "
                                              "SECTON_API_KEY.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder. Default: "
                                             "runs/<time>-load.")] = None,
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
    max_duration: Annotated[str, typer.Option(help="Hard cap on the run time; a longer "
                                              "scenario is refused.")] = "1h",
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback "
                                               "--target.")] = False,
) -> None:
    """Load the target at the scenario's rates with Locust; judge its thresholds.

    Sends GET /v1/models and POST /v1/chat/completions at the scenario's open-model rates
    (evenly spaced or Poisson arrivals, steady/step/spike/soak shapes), each user bound to
    a key. Writes a run folder (run.json + records.parquet), serves live Prometheus metrics
    with --metrics-port, prints a threshold table. Exit 0 all thresholds pass, 1 any fails,
    2 bad input, 130 interrupted (records kept).

    Example: [cyan]secton-harness load --scenario examples/capacity.toml --target
    http://127.0.0.1:8080 --keys secton_cli/demo_inputs/demo-keys.toml[/cyan]
    """
    from rich.console import Console

    from loadtests.locust_process import LoadOptions, run_load

    try:
        max_duration_s = parse_duration(max_duration)
        linger_s = parse_duration(metrics_linger)
    except ValueError as error:
        raise BadInput(f"--max-duration/--metrics-linger: {error}") from None
    max_body_bytes()  # a bad SECTON_MAX_BODY_BYTES is one line here, not in the Locust child
    options = LoadOptions(
        scenario=scenario, target=target, keys=keys, out=out, processes=processes,
        master=master, worker=worker, master_host=master_host, master_port=master_port,
        expect_workers=expect_workers, ui=ui, web_port=web_port, metrics_port=metrics_port,
        metrics_host=metrics_host, metrics_linger_s=linger_s, max_requests=max_requests,
        max_duration_s=max_duration_s,
        allow_remote=allow_remote)
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    if ui:
        console.print(f"Locust web UI: http://127.0.0.1:{web_port} (press Start there)")
    if metrics_port:
        console.print(f"metrics: http://{metrics_host}:{metrics_port}/metrics")
    with _progress(console) as tick:
        result = run_load(options, progress=tick)
    print_result(console, result)
    raise typer.Exit(result.exit_code)


class _progress:
    """A one-line rich progress bar over the scenario's duration."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("load"), BarColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[note]}"), console=console,
                            transient=True, disable=not console.is_terminal)
        self.task = self.bar.add_task("load", total=1.0, note="")

    def __enter__(self) -> Any:
        self.bar.start()
        return self.tick

    def tick(self, elapsed: float, total: float) -> None:
        note = "draining" if elapsed > total else f"{elapsed:.0f}/{total:.0f}s"
        self.bar.update(self.task, completed=min(1.0, elapsed / total), note=note)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def print_result(console: Any, result: Any) -> None:
    from rich.table import Table

    from loadtests.thresholds import format_value

    figures = Table(title=f"load: {result.run_dir}")
    for column in ("endpoint", "requests", "rps", "target rps", "p50 ms", "p95 ms",
                   "p99 ms", "p99 corr. ms", "errors", "error %", "429"):
        figures.add_column(column, justify="left" if column == "endpoint" else "right")

    def show(value: Any) -> str:
        return "-" if value is None else format_value(value)

    def ms(value: Any) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    def pct(value: Any) -> str:
        return "-" if value is None else f"{value * 100:.2f}"

    for endpoint, f in result.summary.items():
        figures.add_row(endpoint, show(f["requests"]), show(f["rps"]),
                        show(f.get("target_rps")), ms(f["p50_latency_s"]),
                        ms(f["p95_latency_s"]), ms(f["p99_latency_s"]),
                        ms(f["p99_corrected_latency_s"]), show(f["errors"]),
                        pct(f.get("error_rate")), show(f["ratelimited"]))
    if result.summary:
        console.print(figures)
    if result.results:
        table = Table(title="thresholds")
        for column in ("scope", "threshold", "resolved", "margin", "result"):
            table.add_column(column)
        for r in result.results:
            table.add_row(r.threshold.scope, r.threshold.text, r.describe(), r.margin(),
                          "[green]pass[/green]" if r.passed else "[red]FAIL[/red]")
        console.print(table)
    if result.aborted:
        console.print(f"aborted early (abort_on_fail): {'; '.join(result.aborted)}")
    console.print(f"outcome: {result.outcome}; run folder: {result.run_dir}")
