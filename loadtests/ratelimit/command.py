"""``secton-harness ratelimit``: map a target's per-key and per-org rate limits.

No Locust, gevent or pandas import at module level (cli.py loads this for ``--help``).
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from secton_harness.config import require_loopback
from secton_harness.errors import BadInput
from secton_harness.limits import max_body_bytes
from secton_harness.ratelimit_model import RESULT_FILE


def ratelimit(
    target: Annotated[str | None, typer.Option(
        envvar="SECTON_BASE_URL", show_envvar=True,
        help="Base URL of the API, e.g. http://127.0.0.1:8080.")] = None,
    keys: Annotated[Path | None, typer.Option(
        help="Keys file (TOML). Two or more keys of one org also map the org's limit. "
             "Default: SECTON_API_KEY.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run folder for run.json, records.parquet, ratelimit.json. "
             "Default: runs/<time>-ratelimit.")] = None,
    expect: Annotated[Path | None, typer.Option(
        help="Documented policy (TOML) to verify; exit 1 when a figure is off.")] = None,
    max_requests: Annotated[int, typer.Option(
        min=10, help="Hard bound on requests sent (cost control).")] = 2000,
    budget: Annotated[int, typer.Option(
        min=10, help="Bounds the verification runs only: one is started only when the "
                     "requests sent so far plus its own stay within it, else its figure is "
                     "reported unverified. Measuring is not stopped by it: --max-requests "
                     "and --max-duration bound the whole run.")] = 1000,
    max_duration: Annotated[str, typer.Option(help="Hard bound on run time, e.g. 5m.")] = "5m",
    max_rps: Annotated[float, typer.Option(
        min=0.1, help="Never send faster than this (requests per second).")] = 100.0,
    allow_remote: Annotated[bool, typer.Option(
        help="Confirm that a non-loopback target may be sent bursts until it refuses.")] = False,
    endpoint: Annotated[str, typer.Option(
        help="Endpoint to measure on: models (free) or chat (spends tokens).")] = "models",
    json_out: Annotated[str | None, typer.Option(
        "--json", metavar="FILE", help="Write the result with the verdict as JSON to FILE "
        "('-' = stdout).")] = None,
    junit: Annotated[str | None, typer.Option(
        metavar="FILE", help="With --expect: write a JUnit XML report to FILE, one test "
        "case per documented figure.")] = None,
) -> None:
    """Map the rate limits of a target: burst, sustained rate, cooldown, full recovery,
    algorithm, shared endpoint budget and Retry-After accuracy, per key and per org.

    Each phase stops as soon as its answer is known; the steady verification runs cost
    the most (--budget bounds them). The whole run is bounded by --max-requests and
    --max-duration, and the card shows what it cost. Loopback targets run freely; others need
    --allow-remote. With --expect, every figure is checked against the documented policy
    (exit 1 on any fail). See docs/ratelimit.md.

    Example: [cyan]secton-harness ratelimit --target http://127.0.0.1:8080 --keys
    keys.toml --out runs/rl --expect examples/ratelimit-policy.toml[/cyan]
    """
    from loadtests.ratelimit.policy import load_policy
    from secton_harness.config import duration_flag, parse_http_url
    from secton_harness.endpoints import BY_NAME
    from secton_harness.keys import resolve_keys

    if not target:
        raise BadInput("no target: pass --target URL or set SECTON_BASE_URL")
    try:
        url = parse_http_url(target)
    except ValueError as error:
        raise BadInput(f"--target: {error}") from None
    duration = duration_flag(max_duration, "--max-duration")
    if not math.isfinite(max_rps):  # inf passed the flag's minimum and sent unpaced
        raise BadInput(f"--max-rps: {max_rps} is not a finite rate; use e.g. 100")
    if endpoint not in BY_NAME:
        raise BadInput(f"--endpoint: {endpoint!r} is not one of {', '.join(BY_NAME)}")
    require_loopback(url, allow_remote, "mapping sends bursts until the API refuses")
    max_body_bytes()  # a bad SECTON_MAX_BODY_BYTES: one line and exit 2 before any request
    pool = resolve_keys(keys)
    policy = load_policy(expect) if expect is not None else None
    from secton_harness.ci import check_writable

    if junit is not None and expect is None:
        raise BadInput("--junit: needs --expect (the documented figures are the test cases)")
    check_writable(json_out, "--json")
    check_writable(junit, "--junit")
    raise typer.Exit(_run(url, pool, out, policy, min(budget, max_requests), max_requests,
                          duration, max_rps, endpoint, json_out, junit))


def _ci_outputs(result: dict, code: int, json_out: str | None, junit: str | None,
                elapsed_s: float) -> None:
    """``--json``: the mapper's result with the verdict; ``--junit``: one case per figure."""
    from secton_harness.ci import Case, write_json, write_junit

    if json_out is not None:
        write_json(json_out, {"command": "ratelimit", "outcome": "failed" if code else "passed",
                              "exit_code": code, **result})
    if junit is not None:
        cases = [Case(f"{scope}.{figure}", "expect", bool(check["pass"]), check["line"])
                 for scope, checks in (result.get("expect") or {}).get("scopes", {}).items()
                 for figure, check in checks.items()]
        if result.get("stopped_by") == "target_down":
            cases.append(Case("run", "expect", False, "the target stopped answering"))
        write_junit(junit, "secton-harness ratelimit", cases, elapsed_s)


def _run(url, pool, out, policy, budget, max_requests, duration, max_rps, endpoint,
         json_out=None, junit=None) -> int:
    import gevent
    from rich.console import Console

    from loadtests.ratelimit.driver import MapperSettings, run_mapper
    from loadtests.ratelimit.output import build_result, limit_card
    from secton_harness.runfolder import RunFolder

    # Ctrl-C / SIGTERM become a KeyboardInterrupt thrown into *this* (the main) greenlet
    # from gevent's signal watcher. Python's own handler raises it in whatever runs at
    # that instant: in a helper greenlet (rich's status refresher is a monkey-patched
    # thread) it was swallowed and the mapping ran on to exit 0. It is an expected way to
    # stop (records are flushed, run.json says "interrupted"), so the hub is told not to
    # report it as an error; it reaches the `except KeyboardInterrupt` below.
    hub = gevent.get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
    main = gevent.getcurrent()
    watchers = [gevent.signal_handler(signum, main.throw, KeyboardInterrupt)
                for signum in (signal.SIGINT, signal.SIGTERM)]

    console = Console(stderr=json_out == "-")  # stdout carries the JSON alone
    started = time.monotonic()
    settings = MapperSettings(target=url, endpoint=endpoint, max_requests=max_requests,
                              budget=budget, max_duration_s=duration, max_rps=max_rps)
    run = RunFolder.start(out, command="ratelimit", target=url, config={
        "endpoint": endpoint, "max_requests": max_requests, "budget": budget,
        "max_duration_s": duration,
        "max_rps": max_rps, "keys": pool.aliases,
        "expect": policy.model_dump() if policy is not None else None})
    outcome = "error"
    try:
        with console.status("mapping rate limits…") as status:
            def progress(message: str) -> None:
                status.update(message)
                console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

            observations, facts = run_mapper(settings, pool, run.path, progress)
        result = build_result(run.path, url, observations, facts, policy)
        limit_card(result, console)
        target_down = result.get("stopped_by") == "target_down"
        if target_down:
            console.print("[red]the target stopped answering (20 failures in a row): "
                          "mapping abandoned rather than hammering it[/red]")
        # a bound (--max-duration, --max-requests, --budget) stopped the mapping: its
        # figures are partial, so the run is incomplete, never passed
        stopped = result.get("stopped_by") if not target_down else None
        if stopped:
            console.print(f"[red]mapping stopped by {stopped} before it finished: the "
                          "figures are partial; raise the bound to map every scope[/red]")
        failed = bool(target_down or stopped
                      or (policy is not None and not result["expect"]["passed"]))
        outcome = "incomplete" if stopped else ("failed" if failed else "passed")
        console.print(f"wrote {run.path / RESULT_FILE}")
        code = 1 if failed else 0
        _ci_outputs(result, code, json_out, junit, time.monotonic() - started)
        return code
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        for watcher in watchers:
            watcher.cancel()
        run.finish(outcome)


def register(app: typer.Typer) -> None:
    app.command("ratelimit")(ratelimit)
