"""``secton-harness probe``: synthetic checks once (cron/CI) or continuously (a service).

Only light imports at module level (the CLI imports this module for ``--help``).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from secton_harness.config import parse_duration
from secton_harness.errors import BadInput
from secton_harness.limits import max_body_bytes


def register(app: typer.Typer) -> None:
    """Add the ``probe`` command to the harness CLI."""
    app.command(name="probe")(probe)


def probe(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Harness config (TOML): \\[\\[targets]] and \\[probes]; see "
        "examples/harness.toml. Default: built-in intervals and thresholds.")] = None,
    target: Annotated[str | None, typer.Option(
        help="Probe this URL instead of the config's targets (env: SECTON_BASE_URL).")] = None,
    label: Annotated[str | None, typer.Option(
        help="Target label for --target (default 'default').")] = None,
    keys: Annotated[Path | None, typer.Option(
        help="Keys file (TOML). Default: a target's own keys, else env SECTON_API_KEY "
        "(+ SECTON_ORG).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Run every check once, print a table, exit 0 (all pass) or 1.")] = False,
    port: Annotated[int, typer.Option(
        help="Port of the Prometheus /metrics endpoint in continuous mode; 0: none.")] = 9464,
    address: Annotated[str, typer.Option(
        help="Address the /metrics endpoint binds (0.0.0.0 for a remote Prometheus).")
    ] = "127.0.0.1",
    out: Annotated[Path | None, typer.Option(
        help="Run folder for run.json + records.parquet. Default: runs/<time>-probe.")] = None,
    duration: Annotated[str | None, typer.Option(
        help="Stop continuous mode after this long (e.g. '10m'); default: until "
        "SIGINT/SIGTERM.")] = None,
    ratelimit_file: Annotated[list[str] | None, typer.Option(
        "--ratelimit-file", metavar="PATH", help="Continuous mode: also export this "
        "rate-limit mapper result (ratelimit.json, its run folder, or a glob such as "
        "'runs/*/ratelimit.json') as secton_ratelimit_observed; repeatable; re-read at every "
        "scrape. Replaces the config's probes.ratelimit_files.")] = None,
) -> None:
    """Probe the Secton API: auth, JSON contract, org isolation, latency, rate-limit headers.

    Checks: auth_valid, auth_missing, auth_invalid, auth_malformed, models_list,
    chat_completion, org_isolation (needs keys of two orgs), ratelimit_headers. A failed
    check has one reason: status, schema, invariant, timeout, connect, latency,
    content_type or ratelimited. Checks never retry.

    [bold]--once[/bold] prints a table and exits 0 when every check passed, 1 otherwise.
    Without it the probes run on their intervals, serve Prometheus metrics on --port and
    stop cleanly on SIGINT/SIGTERM or after --duration (exit 0 on a signal; after
    --duration, 1 if any check failed). Every result is written to the run folder.

    Example: [cyan]secton-harness probe --once --target http://127.0.0.1:8080 --keys
    secton_cli/demo_inputs/demo-keys.toml[/cyan]

    Example: [cyan]secton-harness probe --config examples/harness.toml --port 9464[/cyan]

    Example: [cyan]secton-harness probe --target http://127.0.0.1:8080 --keys
    secton_cli/demo_inputs/demo-keys.toml --ratelimit-file runs/rl/ratelimit.json[/cyan]
    """
    from probes.service import ProbeRun

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as error:
            raise BadInput(f"--duration: {error}") from None
        if seconds <= 0:
            raise BadInput("--duration: must be > 0, e.g. '10m'")
    if not 0 <= port <= 65535:
        raise BadInput(f"--port: {port} is not a port number (0-65535)")
    max_body_bytes()  # a bad SECTON_MAX_BODY_BYTES: one line and exit 2 before any request
    run = ProbeRun.prepare(config, target, label, keys, out, argv=sys.argv[1:])
    if ratelimit_file:
        probes = run.config.probes.model_copy(update={"ratelimit_files": list(ratelimit_file)})
        run.config = run.config.model_copy(update={"probes": probes})
    if once:
        code = asyncio.run(run.once())
    else:
        code = asyncio.run(run.continuous(port, address, seconds, _signals))
    raise typer.Exit(code)


def _signals(stop: asyncio.Event, stopped_by: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        def handler(sig: signal.Signals = sig) -> None:
            stopped_by.append(sig.name)
            stop.set()
        loop.add_signal_handler(sig, handler)
