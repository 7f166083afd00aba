"""The scale-out deployment (dashboards/load-cluster.compose.yml), checked without Docker.

Docker cannot run in the project's test environment, so the file is parsed (pyyaml) and
checked for what breaks a deployment silently: the services are there, every
``secton-harness`` command line parses with the CLI's own parser (a renamed or misspelt
flag fails here), the keys arrive as a mounted secret or environment variables and no key
appears in the file, and Prometheus scrapes both the master and the Pushgateway.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import typer.main
import yaml
from conftest import ROOT

from secton_cli.app import app

COMPOSE = ROOT / "dashboards" / "load-cluster.compose.yml"
PROMETHEUS = ROOT / "dashboards" / "prometheus-load.yml"
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
#: what the shell inside the container substitutes, for parsing the command lines
SHELL_VALUES = {"SECTON_BASE_URL": "http://api:8080", "HOSTNAME": "abc123",
                "{WORKERS:-2}": "2", "INSTALL": "true"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


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
