"""``secton-harness probe``: synthetic checks once (cron/CI) or continuously (a service).

Only light imports at module level (the CLI imports this module for ``--help``).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from secton_harness.config import duration_flag
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
        "--port", "--metrics-port",
        help="Port of the Prometheus /metrics endpoint in continuous mode; 0: none "
        "(--metrics-port: the same flag name as load).")] = 9464,
    address: Annotated[str, typer.Option(
        "--address", "--metrics-host",
        help="Address the /metrics endpoint binds (0.0.0.0 for a remote Prometheus; "
        "--metrics-host: the same flag name as load).")] = "127.0.0.1",
    out: Annotated[Path | None, typer.Option(
        help="Run folder for run.json + records.parquet. Default: runs/<time>-probe.")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", "--max-duration",
        help="Stop continuous mode after this long (e.g. '10m'); default: until "
        "SIGINT/SIGTERM.")] = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", metavar="FILE", help="With --once: write the verdict as JSON to FILE "
        "('-' = stdout).")] = None,
    junit: Annotated[str | None, typer.Option(
        metavar="FILE", help="With --once: write a JUnit XML report to FILE, one test case "
        "per check and target.")] = None,
    ratelimit_file: Annotated[list[str] | None, typer.Option(
        "--ratelimit-file", metavar="PATH", help="Continuous mode: also export this "
        "rate-limit mapper result (ratelimit.json, its run folder, or a glob such as "
        "'runs/*/ratelimit.json') as secton_ratelimit_observed; repeatable; re-read at every "
        "scrape. Replaces the config's probes.ratelimit_files.")] = None,
) -> None:
    """Probe the Secton API: auth, JSON contract, org isolation, latency, rate-limit headers.

    Checks: auth_valid, auth_missing, auth_invalid, auth_malformed, models_list,
    chat_completion, org_isolation (needs keys of two orgs), ratelimit_headers. A failed
    check has one reason: status, schema, invariant, latency, content_type, ratelimited,
    or the answer's transport error class (timeout, connect, reset, too_large, protocol).
    Checks never retry.

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
        seconds = duration_flag(duration, "--duration")
        if seconds <= 0:
            raise BadInput("--duration: must be > 0, e.g. '10m'")
    if not 0 <= port <= 65535:
        raise BadInput(f"--port: {port} is not a port number (0-65535)")
    max_body_bytes()  # a bad SECTON_MAX_BODY_BYTES: one line and exit 2 before any request
    if (json_out or junit) and not once:
        raise BadInput("--json/--junit: only with --once (continuous mode exports metrics)")
    from secton_harness.ci import check_writable

    check_writable(json_out, "--json")
    check_writable(junit, "--junit")
    console = None
    if json_out == "-":  # stdout carries the JSON alone; the table goes to stderr
        from rich.console import Console

        console = Console(log_path=False, stderr=True)
    run = ProbeRun.prepare(config, target, label, keys, out, argv=sys.argv[1:],
                           console=console)
    if ratelimit_file:
        probes = run.config.probes.model_copy(update={"ratelimit_files": list(ratelimit_file)})
        run.config = run.config.model_copy(update={"probes": probes})
    if once:
        started = time.monotonic()
        code = asyncio.run(run.once())
        _ci_outputs(run, code, json_out, junit, time.monotonic() - started)
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


def _ci_outputs(run: Any, code: int, json_out: str | None, junit: str | None,
                elapsed_s: float) -> None:
    """``--json``/``--junit`` of ``probe --once``: one case per check and target.

    Only the result, the reason class and the status go out (never response text).
    """
    if json_out is None and junit is None:
        return
    from secton_harness.ci import Case, write_json, write_junit

    results = getattr(run, "results", [])
    cases = [Case(f"{r.target}: {r.check}", "probe", r.result != "failure",
                  f"{r.result}" + (f": {r.reason}" if r.reason else "")
                  + (f" (status {r.status})" if r.status else "")) for r in results]
    if json_out is not None:
        write_json(json_out, {
            "command": "probe", "outcome": "failed" if code else "passed", "exit_code": code,
            "run_dir": str(getattr(run, "run_dir", "")),
            "checks": [{"target": r.target, "check": r.check, "result": r.result,
                        "reason": r.reason, "status": r.status,
                        "duration_s": r.duration_s} for r in results]})
    if junit is not None:
        write_junit(junit, "secton-harness probe", cases, elapsed_s)
