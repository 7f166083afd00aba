"""``secton-harness dashboards export|push``: write the Grafana JSON, or upload it.

Only light imports at module level (the CLI imports this module for ``--help``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from secton_harness.errors import BadInput

dashboards_app = typer.Typer(
    name="dashboards", no_args_is_help=True, rich_markup_mode="rich",
    help="Grafana dashboards for probes, load tests and rate limits: export the JSON or "
    "push it to a Grafana instance.\n\n"
    "Example: [cyan]secton-harness dashboards export[/cyan]\n\n"
    "Example: [cyan]secton-harness dashboards push --url http://localhost:3000 "
    "--token $GRAFANA_TOKEN[/cyan]")


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` command group to the harness CLI."""
    app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command()
def export(
    out: Annotated[Path | None, typer.Option(
        help="Folder for the <uid>.json files (default: the current folder). To refresh "
        "the copies committed in the repository: --out dashboards/generated, or make "
        "dashboards.")] = None,
) -> None:
    """Write every dashboard as Grafana JSON (classic model), one file per uid, into the
    current folder (never into the installed package).

    Files are written atomically with sorted keys and a trailing newline, so the committed
    JSON changes only when the generator does.

    Example: [cyan]secton-harness dashboards export --out /tmp/dashboards[/cyan]
    """
    from .export import export as write_all

    folder = out if out is not None else Path.cwd()
    try:
        written = write_all(folder)
    except OSError as error:  # a folder that cannot be made or written: one line, exit 2
        raise BadInput(f"--out {folder}: cannot write the dashboards: "
                       f"{error.strerror or error}") from None
    for path in written:
        typer.echo(str(path))


@dashboards_app.command()
def push(
    url: Annotated[str | None, typer.Option(
        envvar="GRAFANA_URL", help="Grafana base URL, e.g. http://localhost:3000.")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="GRAFANA_TOKEN", help="Service-account token with Editor rights.",
        show_default=False)] = None,
    folder: Annotated[str, typer.Option(
        help="Folder title; created (uid from the title) when missing.")] = "Secton",
) -> None:
    """Create or update every dashboard in a Grafana folder (idempotent).

    Fixed uids and overwrite=true: pushing again updates in place. Exit 2 with one line on
    bad credentials (401/403) or an unreachable host.

    Example: [cyan]GRAFANA_TOKEN=glsa_... secton-harness dashboards push --url
    http://localhost:3000 --folder Secton[/cyan]
    """
    from .export import build_all
    from .push import push as upload

    if not url:
        raise BadInput("--url (or env GRAFANA_URL) is required, e.g. http://localhost:3000")
    if not token:
        raise BadInput("--token (or env GRAFANA_TOKEN) is required: a Grafana "
                       "service-account token")
    result = upload(url.rstrip("/"), token, build_all(), folder)
    state = "created" if result.folder_created else "found"
    typer.echo(f"folder {folder!r} (uid {result.folder_uid}) {state}")
    for board in result.dashboards:
        typer.echo(f"{board.uid}: {board.title} -> version {board.version} "
                   f"{board.url or ''}".rstrip())
