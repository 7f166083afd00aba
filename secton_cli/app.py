"""The ``secton-harness`` command line: one typer app, errors handled in one place.

This is the entry layer: it sits above the jobs and imports each job's ``command`` module
by name; nothing imports it (the core, ``secton_harness``, imports no job). Each job
registers its command here, but the job's heavy imports (Locust and gevent above
all) happen inside the command function, so ``secton-harness --help`` and the commands of
other jobs never load them. User-facing errors (:class:`HarnessError`) become one line on
stderr and exit code 2 (bad input) or 1 (a check, threshold or expectation failed).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
import typer.rich_utils
from rich.columns import Columns
from rich.table import Table
from rich.text import Text

try:  # typer >= 0.20 vendors its own click; its exceptions are not click's
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

import dashboards.command
import loadtests.command
import loadtests.ratelimit.command
import probes.command
import reports.command
import simulator.command
from secton_harness import __version__
from secton_harness.errors import HarnessError

app = typer.Typer(
    name="secton-harness",
    help=(
        "Monitoring and load-testing harness for the Secton API: synthetic probes, Locust "
        "load tests, rate-limit mapping, Prometheus metrics, Grafana dashboards and reports.\n\n"
        "Exit codes: 0 pass, 1 thresholds or expectations failed, 2 bad usage or input."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"secton-harness {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Monitoring and load-testing harness for the Secton API."""


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(
        help="Folder for the demo's run folders. Default: runs/demo-<time>.")] = None,
) -> None:
    """Tour the harness against the embedded reference server.

    Starts the reference server on a free loopback port with demo keys (two orgs, several
    keys), then runs each job through the real CLI: the probes once (auth, the contract of
    both endpoints, org isolation), a capacity ramp with thresholds, the rate-limit mapping
    checked against the demo policy, and one report over all of them. Prints what each
    found and stops everything it started. Exit code 0 when every step passed.

    Example: [cyan]secton-harness demo[/cyan]
    """
    from secton_cli.demo import run_demo

    raise typer.Exit(run_demo(out))


#: The commands' modules, in the order ``--help`` lists them; each has ``register(app)``
#: and imports its heavy dependencies (Locust, gevent, pandas) inside the command only.
COMMAND_MODULES = (simulator.command, probes.command, loadtests.command,
                   loadtests.ratelimit.command, reports.command, dashboards.command)

for _module in COMMAND_MODULES:
    _module.register(app)


def reflow_help(text: str) -> str:
    """Join the lines of each paragraph so rich wraps them to the terminal's width.

    typer (rich mode) keeps a docstring's single line breaks, so text wrapped for the
    source file comes out ragged in a terminal. A paragraph whose first line is ``\\b``
    (click's "do not rewrap" marker) keeps its lines, without the marker.
    """
    paragraphs = []
    for paragraph in text.strip().split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() in ("\b", "\\b"):  # click's marker, or typed as text
            paragraphs.append("\n".join(lines[1:]))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _reflow_all(typer_app: typer.Typer) -> None:
    import inspect

    for info in typer_app.registered_commands:
        text = info.help or (inspect.getdoc(info.callback) if info.callback else None)
        if text:
            info.help = reflow_help(text)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            if group.typer_instance.info.help:
                group.typer_instance.info.help = reflow_help(group.typer_instance.info.help)
            _reflow_all(group.typer_instance)


_reflow_all(app)


def _value_kind(param: typer.core.TyperOption | typer.core.TyperArgument,
                ctx: object) -> str | None:
    """What ``--help`` shows beside an option: click's word for the value (``PATH``,
    ``INTEGER``, ``TEXT``; ``PATH...`` for several), nothing for an on/off flag.

    typer 0.29 shows Python type names instead (``<bool>`` beside a flag, which suggests
    ``--once false`` works; ``<list[Path]>``); users read click's words in every other
    click-based tool.
    """
    if param.metavar is not None:  # an argument's metavar is its name: shown beside already
        return None if isinstance(param, typer.core.TyperArgument) else param.metavar
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        return _TYPER_DISPLAY_TYPE(param, ctx)  # the choices themselves, e.g. <csv|json>
    bare = param.bare_type()
    element = bare[5:-1] if bare.startswith("list[") else bare
    kind = _CLICK_WORDS.get(element, element.upper())
    return f"{kind}..." if bare.startswith("list[") or param.nargs != 1 else kind


_TYPER_DISPLAY_TYPE = typer.core.TyperOption.display_type_rich
#: Python type name -> the word click-based tools print for it.
_CLICK_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH",
                "bool": "BOOLEAN"}


def _help_folded(**kwargs: Any) -> Columns:
    """An option's help with long words (URLs, paths, defaults) folded onto the next line
    instead of cut with an ellipsis (``examples/capacity.tom…``) in an 80-column help."""
    columns: Columns = _TYPER_PARAMETER_HELP(**kwargs)
    for item in columns.renderables:
        if isinstance(item, Text):
            item.overflow = "fold"
    return columns


class _OptionsTable(Table):
    """typer's options table with a flag's ``--no-`` form under its ``--flag``.

    typer gives the negative forms two columns of their own; with ``--no-allow-remote``
    in one of them the help text of every option shrank to ~22 of 80 columns and long
    words broke mid-word (``examples/capacity.tom`` / ``l.``). Stacked, the option column
    is as wide as its longest name. Rows of other tables (the commands list) pass as they
    are: an options row is the only one with six cells (seven with the required marker).
    """

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        if len(cells) in (6, 7):
            first = len(cells) - 6
            merged = list(cells[:first])
            for own, negative in ((cells[first], cells[first + 2]),
                                  (cells[first + 1], cells[first + 3])):
                if isinstance(own, Text) and isinstance(negative, Text) and negative.plain:
                    own = Text.assemble(own, "\n", negative)
                merged.append(own)
            cells = (*merged, *cells[first + 4:])
        super().add_row(*cells, **kwargs)


def _usage_name(self: typer.core.TyperArgument) -> str:
    """An argument in the usage line as click writes it: ``RUN_DIR...`` when required,
    ``[RUN_DIR]...`` when not (typer 0.29 writes ``{RUN_DIR}...``, a set in Python)."""
    name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
    return f"{name}..." if self.nargs != 1 else name


_TYPER_PARAMETER_HELP = typer.rich_utils._get_parameter_help
typer.core.TyperOption.display_type_rich = _value_kind  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _value_kind  # type: ignore[method-assign]
typer.core.TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
typer.rich_utils._get_parameter_help = _help_folded
typer.rich_utils.Table = _OptionsTable  # type: ignore[misc]


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning HarnessError into one line + exit.

    SIGTERM is handled like Ctrl-C (``KeyboardInterrupt``) unless a command installs its
    own handler, so ``finally`` blocks flush records and mark run.json ``interrupted``
    instead of the process dying mid-write. An interrupted command exits 130 (click would
    say 1, which means "a check failed" here).
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        code = app(args=argv, prog_name="secton-harness", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as error:
        error.show()  # the help text, as click would print it
        sys.exit(2)
    except click_exceptions.ClickException as error:
        # Usage errors (bad option value, unknown option, missing argument): one line,
        # like every other bad input, instead of click's multi-line box.
        message = " ".join(error.format_message().split())
        print(f"secton-harness: error: {message}", file=sys.stderr)
        sys.exit(2 if isinstance(error, click_exceptions.UsageError) else error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("secton-harness: interrupted", file=sys.stderr)
        sys.exit(130)
    except HarnessError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"secton-harness: error: {message}", file=sys.stderr)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
