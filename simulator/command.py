"""``secton-harness serve``: run the reference Secton API server from the command line.

Registered by ``secton_cli/app.py``; the server itself is imported only when the command
runs, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)


def serve(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Reference-server config (TOML). Default: the built-in demo "
        "config (two orgs, five keys, fixed-window limits, small seeded latency).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535,
                                      help="Port to bind; 0 picks a free one.")] = 8080,
    stats_file: Annotated[Path | None, typer.Option(
        help="Write the ground-truth request counts (JSON) here at shutdown.")] = None,
) -> None:
    r"""Run the reference Secton API server (the embedded default target).

    It serves [bold]GET /v1/models[/bold] and [bold]POST /v1/chat/completions[/bold]
    as the quick start documents them, with per-key and per-org rate limits, a
    seeded latency model and fault injection, all set in one TOML config:

    \b
    [dim]seed = 42
    \[limits]  algorithm = fixed_window | sliding_window | token_bucket |
              leaky_bucket | penalty_cooldown | none
              endpoints = shared | per_endpoint; headers, retry_after = true
    \[limits.key]  limit = 60, window_s = "60s", penalty_s, penalty_extends
    \[limits.org]  limit = 120, window_s = "60s"
    \[latency]  base_ms = 5, per_token_ms = 0.5, jitter_ms = 5, jitter
    \[faults]  error_500, error_503, slow + slow_s, malformed_json,
              wrong_content_type, drop_connection, schema_break (0..1),
              auth_open = false
    \[admin]  enabled = false (ground truth at /_admin/stats, loopback)
    \[\[keys]]  alias, key, org, limit?, window_s?
    \[\[orgs]]  id, limit?, window_s?[/dim]

    docs/reference-server.md describes every field.

    Example: [cyan]secton-harness serve --port 8080
    --config secton_cli/demo_inputs/demo-ratelimit-server.toml[/cyan]
    """
    from simulator.server import serve as run_server

    run_server(str(config) if config else None, host, port,
               str(stats_file) if stats_file else None)
