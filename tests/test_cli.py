"""The CLI as users run it: help texts, exit codes, one-line errors, the demo, import rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from secton_cli.app import app

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT)


def command_names() -> list[str]:
    group = typer.main.get_group(app)
    return sorted(group.commands)


def command_paths() -> list[tuple[str, ...]]:
    """The root, every command and every subcommand (``dashboards export``, ...)."""
    def walk(command: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found += walk(sub, (*path, name))
        return found
    return walk(typer.main.get_group(app), ())


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_group(app)
    for name in path:
        command = command.commands[name]
    return command


def test_core_commands_are_listed() -> None:
    assert {"serve", "demo"} <= set(command_names())
    assert ("dashboards", "push") in command_paths()


@pytest.mark.parametrize("command", command_names())
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    if command != "dashboards":  # a group: its subcommands carry the examples
        assert "Example" in result.stdout, f"{command} --help shows no example"


#: What Python (or typer) words look like in a help text: type names beside options
#: (``<bool>`` suggests ``--once false``), a required argument as a set (``{RUN_DIR}``),
#: an ellipsis where rich cut a word at 80 columns.
PYTHON_LEAKS = re.compile(r"<(bool|str|int|float|path|list\[.*?\]|Path)>|list\[|\{[A-Z_]+\}"
                          r"|Optional\[|NoneType|…")


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "root")
def test_help_fits_80_columns_in_clicks_words(path: tuple[str, ...]) -> None:
    """Every command and subcommand at 80 columns: no line wider, no Python type names, a
    boolean as ``--flag`` (off by default) or ``--flag`` over ``--no-flag``, each
    environment variable named once among the options."""
    done = subprocess.run([sys.executable, "-m", "secton_harness", *path, "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    wide = [line for line in lines if len(line.rstrip()) > 80]
    assert not wide, wide
    leaks = [line for line in lines if PYTHON_LEAKS.search(line)]
    assert not leaks, leaks
    panels = next((i for i, line in enumerate(lines) if line.startswith("╭─")), len(lines))
    flat = " ".join(line.strip(" │") for line in lines[panels:])  # examples may name it
    for param in _command(path).params:
        if param.param_type_name != "option":  # typer vendors its own click
            continue
        if param.envvar:
            envvar = str(param.envvar)
            assert flat.count(envvar) == 1, f"{param.opts[0]}: {envvar} named " \
                f"{flat.count(envvar)} times in:\n{done.stdout}"
        if param.is_bool_flag and param.secondary_opts:
            own, negative = param.opts[-1], param.secondary_opts[-1]
            at = next(i for i, line in enumerate(lines) if f" {own} " in line)
            assert negative in lines[at + 1], (own, negative, lines[at:at + 2])
        elif param.is_bool_flag:
            assert param.default in (False, None) or param.opts == ["--help"], param.opts


def test_long_words_in_help_are_not_broken_mid_word() -> None:
    """``examples/capacity.toml`` was cut (``examples/capacity.tom…``), then folded
    (``examples/capacity.tom`` / ``l.``) when --no-flag forms took a column of their own."""
    done = run("load", "--help", timeout=60)
    assert "examples/capacity.toml" in done.stdout.replace("│", " ")
    assert "runs/<time>-ratelimit" in run("ratelimit", "--help", timeout=60).stdout


def test_readme_and_docs_mention_every_command() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing = [c for c in command_names() if f"secton-harness {c}" not in docs]
    assert not missing, f"commands not documented: {missing}"


#: What a clone of the repository does not have: the design notes and issue tracker of
#: the project's own history, or a path beside the checkout.
OUTSIDE = re.compile(r"DESIGN\.md|\bthe issue\b|\bissues? #?\d+|\bissue-\d+|\.\./shared|"
                     r"shared/seed", re.IGNORECASE)
SHIPPED = ("secton_harness", "secton_cli", "probes", "loadtests", "reports", "dashboards",
           "simulator", "benchmarks", "docs", "examples")


def test_docs_and_code_cite_nothing_outside_the_repository() -> None:
    files = [ROOT / "README.md", *(p for folder in SHIPPED for p in (ROOT / folder).rglob("*")
                                   if p.suffix in (".md", ".py", ".toml", ".txt", ".j2",
                                                   ".yml"))]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def test_readme_links_stay_inside_the_repository() -> None:
    """The API quick start ships under docs/ (the README once linked ../shared/...)."""
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    assert "docs/secton-api-quickstart.txt" in local
    for link in local:
        target = (ROOT / link).resolve()
        assert target.is_relative_to(ROOT) and target.exists(), link


def test_version() -> None:
    result = run("--version", timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("secton-harness ")


def test_unknown_command_is_usage_error() -> None:
    result = run("frobnicate", timeout=60)
    assert result.returncode == 2


def test_bad_server_config_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text('[limits]\nalgorithm = "lottery"\n')
    result = run("serve", "--config", str(config), "--port", "0", timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "sim.toml" in lines[0] and "limits.algorithm" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_server_config_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "nope.toml"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nope.toml" in result.stderr


def test_light_modules_import_without_locust_or_gevent() -> None:
    """Only loadtests/ may import locust/gevent (they monkey-patch the whole process)."""
    code = (
        "import sys\n"
        "import secton_harness, secton_cli.app, secton_harness.client, "
        "secton_harness.contract, secton_harness.records, simulator.app, probes.service, "
        "reports.build, reports.command, probes.command\n"
        "bad = [m for m in ('locust', 'gevent') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def test_demo_runs_the_tour_and_exits_0(tmp_path: Path) -> None:
    result = run("demo", "--out", str(tmp_path / "demo"), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for check in ("models_list", "chat_completion", "org_isolation", "auth_missing",
                  "auth_invalid", "auth_malformed"):
        assert check in result.stdout
    assert "FAIL" not in result.stdout
    assert "sk-demo" not in result.stdout + result.stderr  # aliases only, never keys
    # the tour's report: three real runs of three kinds, each its own section and verdict
    summary = json.loads((tmp_path / "demo" / "report" / "summary.json").read_text())
    assert summary["verdict"]["status"] == "passed"
    kinds = {run["command"]: run for run in summary["runs"]}
    assert set(kinds) == {"probe", "load", "ratelimit"}
    assert all(run["verdict"]["status"] == "passed" for run in summary["runs"])
    assert kinds["load"]["capacity"]["available"] and not kinds["probe"]["capacity"][
        "available"]
    assert kinds["probe"]["uptime"]["available"] and kinds["ratelimit"]["ratelimits"]["cards"]
    assert "capacity" not in summary  # several runs: never merged into one
    html = (tmp_path / "demo" / "report" / "report.html").read_text()
    assert html.index('class="banner passed"') < html.index('<section id="run-1">')


def test_help_paragraphs_are_reflowed_but_marked_blocks_kept() -> None:
    from secton_cli.app import reflow_help

    text = "First line\ncontinues.\n\nSecond para\nwraps here.\n\n\b\nkeep\n  this layout"
    assert reflow_help(text) == ("First line continues.\n\nSecond para wraps here.\n\n"
                                 "keep\n  this layout")
