"""Every query of every dashboard returns data from a real Prometheus scraping real exporters.

One module-scoped setup: the reference server (with small limits so 429s happen), a
continuous probe exporter (`secton-harness probe --port P --duration --ratelimit-file F`), a
short Locust run with live metrics (`secton-harness load --metrics-port P2`, lingering so
the last scrape sees it), a real rate-limit mapping (`secton-harness ratelimit --expect`)
of a second, tight-limits reference server writing F while the exporter already runs (so
the exporter must pick it up at scrape time), and Prometheus scraping both exporters every
second (tests/prometheus_helper.py). Then each
panel expression, variables substituted, must return at least one finite sample, and each
metric it names must exist in Prometheus on its own (so an ``or``/``vector()`` can never
hide a metric the code does not export). Variable queries (label_values) must list values.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port, write_toml
from prometheus_helper import api, query, start_prometheus, stop_prometheus, wait_for

from dashboards.export import build_all
from simulator.launcher import ReferenceServer

pytestmark = pytest.mark.slow
KEYS = ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"
PROBE_LABEL = "dash"
METRIC_RE = re.compile(r"\bsecton_[a-z0-9_]+\b")
#: Grafana's built-ins as a 1 s scrape interval and a 5-minute view would give them.
BUILTINS = {"$__rate_interval": "30s", "$__range": "5m", "$__interval": "5s"}
#: Series that must be in Prometheus before the queries run (one per exporter feature).
READY = ("min(count_over_time(up[5m])) >= 8",   # enough scrapes of both for rate()
         'secton_probe_duration_seconds_count{check="models_list"} > 2',
         'secton_probe_duration_seconds_count{check="chat_completion"} > 0',
         "secton_ratelimited_total", 'secton_requests_total{status="200"}',
         "secton_tokens_total", "secton_load_users", "secton_load_target_rate",
         'secton_ratelimit_observed{scope="key", org="org_alpha", quantity="burst"}',
         'secton_ratelimit_observed{scope="org", org="org_alpha", quantity="cooldown_s"}',
         'secton_ratelimit_verified{scope="org", figure="burst"}')
#: Limits of the server the mapper maps: small and 1 s windows, so mapping takes seconds.
TIGHT_LIMITS = {"key": {"limit": 10, "window_s": "1s"}, "org": {"limit": 25, "window_s": "1s"}}


def _server_config() -> dict[str, Any]:
    """The default demo config with a per-key limit the load run is sure to exceed."""
    config = tomllib.loads((ROOT / "simulator" / "default.toml").read_text(encoding="utf-8"))
    config["limits"]["key"] = {"limit": 20, "window_s": "5s"}
    config["admin"] = {"enabled": False}
    return config


def _tight_config() -> dict[str, Any]:
    """The demo keys and orgs with :data:`TIGHT_LIMITS` (orgs without their own limits)."""
    config = _server_config()
    config["limits"].update(TIGHT_LIMITS)
    config["orgs"] = [{"id": org["id"]} for org in config.get("orgs", [])]
    return config


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, with any child it made (Locust)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "secton_harness", *args], cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory,
               prometheus_binary: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dash-prom")
    server = ReferenceServer(write_toml(tmp / "sim.toml", _server_config())).start()
    tight = ReferenceServer(write_toml(tmp / "tight.toml", _tight_config())).start()
    policy = write_toml(tmp / "policy.toml", {"key": {"burst": 10}, "org": {"burst": 25}})
    mapped = tmp / "ratelimit-run"
    probe_config = write_toml(tmp / "probe.toml", {"probes": {
        "interval": "1s", "jitter": 0.0,
        "checks": {name: {"interval": "2s"} for name in
                   ("chat_completion", "org_isolation", "ratelimit_headers")}}})
    scenario = write_toml(tmp / "load.toml", {
        "name": "dashboards", "shape": "steady", "duration": "20s", "arrival": "even",
        "endpoints": {"models": {"rate": "15/s", "users": 3},
                      "chat": {"rate": "10/s", "users": 3}}})
    probe_port, load_port = free_port(), free_port()
    processes = [
        _start(["probe", "--config", str(probe_config), "--target", server.url, "--label",
                PROBE_LABEL, "--keys", str(KEYS), "--port", str(probe_port), "--duration",
                "90s", "--out", str(tmp / "probe-run"), "--ratelimit-file",
                str(mapped / "ratelimit.json")], tmp / "probe.log"),
        _start(["ratelimit", "--target", tight.url, "--keys", str(KEYS), "--out",
                str(mapped), "--expect", str(policy), "--max-duration", "60s"],
               tmp / "ratelimit.log"),
        _start(["load", "--scenario", str(scenario), "--target", server.url, "--keys",
                str(KEYS), "--out", str(tmp / "load-run"), "--metrics-port", str(load_port),
                "--metrics-linger", "90s"], tmp / "load.log"),
    ]
    url, prom = start_prometheus(tmp, [f"127.0.0.1:{probe_port}", f"127.0.0.1:{load_port}"],
                                 job="secton", binary=prometheus_binary)
    try:
        for ready in READY:
            try:
                wait_for(url, ready, timeout_s=60)
            except AssertionError:
                logs = {p.name: p.read_text(errors="replace")[-2000:]
                        for p in tmp.glob("*.log")}
                raise AssertionError(f"{ready} never appeared; logs: {logs}") from None
        yield url
    finally:
        stop_prometheus(prom)
        for process in processes:
            _stop_group(process)
        server.stop()
        tight.stop()


def label_values(url: str, variable: dict[str, Any]) -> list[str]:
    """Evaluate a ``label_values(selector, label)`` variable query as Grafana would."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
    assert match, variable["query"]
    selector, label = match.groups()
    return list(api(url, f"label/{label}/values", **{"match[]": substitute(selector, {})}))


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace dashboard variables: built-ins, then ``$name`` (longest names first)."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def variable_values(url: str, board: dict[str, Any], *, all_values: bool) -> dict[str, str]:
    """``.*`` for every multi-value variable ("All"), or the first value Prometheus lists."""
    values: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        name = variable["name"]
        if variable["type"] == "textbox":
            values[name] = variable["query"]
        elif variable["type"] == "query":
            listed = label_values(url, {**variable, "query": {
                "query": substitute(variable["query"]["query"], {**values, **{
                    k: ".*" for k in ("target", "check", "org", "endpoint")}})}})
            assert listed, f"{board['uid']}: variable ${name} lists nothing"
            values[name] = ".*" if all_values else re.escape(sorted(listed)[0])
    return values


def check_expression(url: str, expr: str) -> str | None:
    """None if ``expr`` returns a finite sample and each metric it names exists; else why."""
    for name in sorted(set(METRIC_RE.findall(expr))):
        if not query(url, f"group({name})"):
            return f"metric {name} not exported (no series in Prometheus)"
    result = query(url, expr)
    finite = [s for s in result if math.isfinite(float(s["value"][1]))]
    if not finite:
        return f"no finite data ({len(result)} series)"
    return None


@pytest.mark.parametrize("all_values", [True, False], ids=["all", "one-value"])
def test_every_panel_query_returns_data(prometheus: str, all_values: bool) -> None:
    failures = []
    checked = 0
    for uid, board in build_all().items():
        values = variable_values(prometheus, board, all_values=all_values)
        for panel in board["panels"]:
            for panel_target in panel.get("targets", []):
                expr = substitute(panel_target["expr"], values)
                problem = check_expression(prometheus, expr)
                checked += 1
                if problem:
                    failures.append(f"{uid} / {panel['title']}: {problem}: {expr}")
    assert checked >= 30
    assert not failures, "\n".join(failures)


def test_a_metric_the_code_does_not_export_fails(prometheus: str) -> None:
    """The check itself can fail: a misspelt name, even hidden behind ``or``, is caught."""
    assert check_expression(prometheus, "sum(rate(secton_probe_succes[30s]))")
    assert "not exported" in (check_expression(
        prometheus, "sum(secton_probe_success) or sum(secton_ratelimit_bogus_total)") or "")
    assert check_expression(prometheus, "sum(secton_probe_success)") is None


def test_load_run_annotation_marks_the_run(prometheus: str) -> None:
    """The annotation query returns points while the load run had users (a range query,
    as Grafana evaluates annotations over the dashboard's time range)."""
    import time

    from dashboards.panels import LOAD_RUN_EXPR

    now = time.time()
    data = api(prometheus, "query_range", query=LOAD_RUN_EXPR, start=str(now - 300),
               end=str(now), step="1")
    points = [v for series in data["result"] for v in series["values"]]
    assert points and all(float(v) > 0 for _, v in points)
