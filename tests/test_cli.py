"""The CLI as users run it: help texts, exit codes, one-line errors, the demo, import rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_core_commands_are_listed() -> None:
    assert {"serve", "demo"} <= set(command_names())


@pytest.mark.parametrize("command", command_names())
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = run(command, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout, f"{command} --help shows no example"
    # Help in click's words, nothing cut: no Python type names beside options (``<bool>``
    # beside a flag suggests ``--once false``), no ellipsis in an 80-column help.
    for leak in ("<bool>", "<str>", "<path>", "list[", "…"):
        assert leak not in result.stdout, f"{command} --help shows {leak!r}"


def test_readme_and_docs_mention_every_command() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing = [c for c in command_names() if f"secton-harness {c}" not in docs]
    assert not missing, f"commands not documented: {missing}"


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


def test_demo_runs_the_tour_and_exits_0() -> None:
    result = run("demo", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for check in ("models_list", "chat_completion", "org_isolation", "auth_missing",
                  "auth_invalid", "auth_malformed"):
        assert check in result.stdout
    assert "FAIL" not in result.stdout
    assert "sk-demo" not in result.stdout + result.stderr  # aliases only, never keys


def test_help_paragraphs_are_reflowed_but_marked_blocks_kept() -> None:
    from secton_cli.app import reflow_help

    text = "First line\ncontinues.\n\nSecond para\nwraps here.\n\n\b\nkeep\n  this layout"
    assert reflow_help(text) == ("First line continues.\n\nSecond para wraps here.\n\n"
                                 "keep\n  this layout")
