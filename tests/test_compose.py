"""The scale-out deployment (dashboards/load-cluster.compose.yml), checked without Docker.

Docker cannot run in the project's test environment (the docker CLI here has no compose
plugin and there is no daemon), so the file is parsed (pyyaml) and validated against the
Compose Specification's own JSON schema, as written and with its variables interpolated as
Compose would (``tests/compose_spec.json``: ``schema/compose-spec.json`` of the
compose-spec/compose-spec repository at commit 170098ba07d9, Apache License 2.0, unchanged).
Then it is checked for what breaks a deployment silently: the services are there, every
``secton-harness`` command line parses with the CLI's own parser (a renamed or misspelt
flag fails here), every mounted file or folder exists, the keys arrive as a mounted secret
or environment variables and no key appears in the file, Prometheus's config passes
``promtool check config`` and scrapes both the master and the Pushgateway, and no
dashboard query selects on the labels that differ between the two sources.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from conftest import ROOT

from dashboards.export import build_all
from secton_cli.app import app

COMPOSE = ROOT / "dashboards" / "load-cluster.compose.yml"
#: every compose file of the project (the probes' stack too: the same checks apply)
COMPOSE_FILES = [COMPOSE, ROOT / "dashboards" / "docker-compose.yml"]
SCHEMA = json.loads((ROOT / "tests" / "compose_spec.json").read_text())
#: Compose's interpolation: $$ (an escaped $) or ${NAME}, ${NAME:-default}, ${NAME-default}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}")
PROMETHEUS = ROOT / "dashboards" / "prometheus-load.yml"
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
#: what the shell inside the container substitutes, for parsing the command lines
SHELL_VALUES = {"SECTON_BASE_URL": "http://api:8080", "HOSTNAME": "abc123",
                "{WORKERS:-2}": "2", "INSTALL": "true"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: Any) -> Any:
    """The file as Compose sees it with no variable set: every ``${NAME:-default}`` its
    default, ``${NAME}`` empty, ``$$`` a literal ``$``."""
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: "$" if m.group(0) == "$$" else (m.group(2) or ""),
                            value)
    return value


def schema_errors(data: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(data)]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_is_valid_against_the_compose_spec_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert schema_errors(data) == []
    assert schema_errors(interpolate(data)) == []


def test_the_schema_check_can_fail() -> None:
    """A misspelt service key and a wrong type are refused (the check has teeth)."""
    data = compose()
    data["services"]["worker"]["comand"] = data["services"]["worker"].pop("command")
    data["services"]["master"]["expose"] = "5557"
    errors = schema_errors(data)
    assert any("comand" in error for error in errors), errors
    assert any(error.startswith("$.services.master.expose") for error in errors), errors


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_mounted_file_exists(path: Path) -> None:
    """Bind mounts and secrets are relative to the compose file's folder; a missing
    source would make Docker create an empty folder in its place."""
    data = interpolate(yaml.safe_load(path.read_text()))
    sources = [mount.split(":")[0] for service in data["services"].values()
               for mount in service.get("volumes", []) if mount.startswith((".", "/"))]
    sources += [secret["file"] for secret in (data.get("secrets") or {}).values()]
    assert sources
    missing = [s for s in sources if not (path.parent / s).exists()]
    assert missing == []


def test_prometheus_config_passes_promtool(promtool_binary: str) -> None:
    result = subprocess.run([promtool_binary, "check", "config", str(PROMETHEUS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_dashboard_query_selects_on_the_scrape_source() -> None:
    """Either source: live ``/metrics`` is scraped as job ``secton-load``, the Pushgateway's
    groups keep job ``secton_load`` and carry a ``run`` label (honor_labels). A query that
    named ``job``, ``instance`` or ``run`` would see only one of them."""
    exprs = [target["expr"] for board in build_all().values() for panel in board["panels"]
             for target in panel.get("targets", [])]
    assert len(exprs) >= 30
    assert [e for e in exprs if re.search(r"\b(job|instance|run)\s*(=|!=|=~|!~)", e)] == []


def harness_args(command: str) -> list[str]:
    """The ``secton-harness ...`` arguments of a service's ``sh -c "... && secton-harness
    ..."`` command, with the shell's variables substituted."""
    inner = shlex.split(command)
    assert inner[:2] == ["sh", "-c"], command
    script = inner[2].replace("$$", "$")  # Compose's escape: the shell sees one $
    for name, value in SHELL_VALUES.items():
        script = script.replace(f"${name}", value)
    assert "$" not in script, script
    line = script.split("&&")[-1]
    args = shlex.split(line)
    assert args[0] == "secton-harness"
    return args[1:]


def parse(args: list[str]) -> dict[str, Any]:
    """Parse with the real CLI (click, behind typer): unknown flags raise here."""
    group = typer.main.get_group(app)
    command = group.commands[args[0]]
    context = command.make_context(args[0], args[1:])
    return dict(context.params)


def test_compose_has_master_workers_pushgateway_prometheus_grafana() -> None:
    services = compose()["services"]
    assert {"master", "worker", "pushgateway", "prometheus", "grafana"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] == "${WORKERS:-2}"


def test_master_and_worker_commands_parse_with_the_cli() -> None:
    services = compose()["services"]
    master = parse(harness_args(services["master"]["command"]))
    worker = parse(harness_args(services["worker"]["command"]))
    assert master["master"] and not master["worker"]
    assert worker["worker"] and not worker["master"]
    assert master["push_gateway"] == "http://pushgateway:9091"
    assert worker["master_host"] == "master"
    assert master["master_port"] == worker["master_port"]
    assert master["expect_workers"] == 2
    # the same scenario and keys on both sides, both mounted read-only or as a secret
    assert master["scenario"] == worker["scenario"] == Path("/scenario/scenario.toml")
    assert master["keys"] == worker["keys"] == Path("/run/secrets/secton_keys")
    for name in ("master", "worker"):
        assert services[name]["secrets"] == ["secton_keys"]
        mounts = services[name]["volumes"]
        assert any(m.endswith(":/scenario/scenario.toml:ro") for m in mounts)
    assert parse(harness_args(services["api"]["command"]))  # serve too


def test_no_key_is_written_in_the_deployment() -> None:
    text = COMPOSE.read_text() + PROMETHEUS.read_text()
    demo = [k["key"] for k in tomllib.loads(KEYS.read_text())["keys"]]
    assert demo and not any(key in text for key in demo)
    assert not re.search(r"sk-[A-Za-z0-9_-]{6,}", text)
    data = compose()
    assert data["secrets"]["secton_keys"]["file"].startswith("${SECTON_KEYS_FILE")
    for service in data["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if name.startswith("SECTON_KEY"):
                assert value == f"${{{name}:-}}", (name, value)  # passed through, never set
    for service in data["services"].values():
        assert "build" not in service  # nothing is baked into an image


def test_prometheus_scrapes_the_master_and_the_pushgateway() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["secton-load"]["static_configs"][0]["targets"] == ["master:9646"]
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == ["pushgateway:9091"]
