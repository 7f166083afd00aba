"""The exporter as Prometheus sees it: promtool lint, OpenMetrics, and a real Prometheus
scraping continuous-mode probes (with the alert rules loaded) answering queries."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, free_port, write_toml
from prometheus_client import CollectorRegistry
from prometheus_helper import api, query, start_prometheus, stop_prometheus, wait_for

from probes.config import CHECK_NAMES
from probes.exporter import ProbeMetrics
from probes.runner import CheckResult
from secton_harness import metrics

RULES = ROOT / "probes" / "rules" / "secton-probes.yml"


def test_pre_initialised_series_and_no_key_material() -> None:
    registry = CollectorRegistry()
    exporter = ProbeMetrics(registry, ["auth_valid", "models_list"], ["prod", "staging"])
    text = exporter.exposition().decode()
    for reason in metrics.PROBE_REASONS:
        assert (f'secton_probe_failures_total{{check="models_list",reason="{reason}",'
                f'target="staging"}} 0.0') in text
    for result in ("success", "degraded", "failure"):
        assert (f'secton_probe_checks_total{{check="auth_valid",result="{result}",'
                f'target="prod"}} 0.0') in text
    assert 'secton_probe_duration_seconds_bucket{check="auth_valid",le="312.0",target="prod"}' \
        in text
    assert "secton_probe_success{" not in text  # gauges wait for a real result
    exporter.observe(CheckResult("auth_valid", "prod", time.time(), 0.2, False,
                                 reason="status", status=500, key_alias="a1"))
    text = exporter.exposition().decode()
    assert 'secton_probe_success{check="auth_valid",target="prod"} 0.0' in text
    assert ('secton_probe_failures_total{check="auth_valid",reason="status",target="prod"} '
            '1.0') in text
    assert 'secton_probe_http_status_code{check="auth_valid",target="prod"} 500.0' in text
    assert "a1" not in text and "sk-" not in text


@pytest.fixture(scope="module")
def probing(tmp_path_factory: pytest.TempPathFactory, default_server: Any,
            prometheus_binary: str) -> Iterator[dict[str, Any]]:
    """Continuous-mode probes (CLI process) scraped every 1 s by a real Prometheus."""
    tmp = tmp_path_factory.mktemp("probing")
    config = write_toml(tmp / "harness.toml", {
        "targets": [{"label": "ref", "url": default_server.url}],
        "probes": {"interval": "0.5s", "jitter": 0.1},
    })
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "secton_harness", "probe", "--config", str(config), "--keys",
         str(ROOT / "secton_cli" / "demo_inputs" / "demo-keys.toml"), "--port", str(port), "--out",
         str(tmp / "run"), "--duration", "15m"],   # ended at teardown; xdist may spread the
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # module's tests over minutes
    url, prometheus = start_prometheus(tmp, [f"127.0.0.1:{port}"], rule_files=[RULES],
                                       binary=prometheus_binary)
    exporter = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60   # every test may read the exporter first
        while True:
            try:
                with urllib.request.urlopen(exporter, timeout=5):
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the probe exporter never answered"
                time.sleep(0.2)
        yield {"prometheus": url, "exporter": exporter}
    finally:
        stop_prometheus(prometheus)
        process.terminate()
        process.wait(timeout=20)


def test_promtool_check_metrics_on_the_exporter(probing: dict[str, Any],
                                                promtool_binary: str) -> None:
    wait_for(probing["prometheus"], 'up{job="secton-probes"} == 1')
    with urllib.request.urlopen(probing["exporter"]) as reply:
        exposition = reply.read()
    assert b"secton_probe_success" in exposition
    done = subprocess.run([promtool_binary, "check", "metrics"], input=exposition,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"sk-demo" not in exposition


def test_openmetrics_when_the_scraper_asks(probing: dict[str, Any]) -> None:
    request = urllib.request.Request(probing["exporter"], headers={
        "Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request) as reply:
        assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
        assert reply.read().rstrip().endswith(b"# EOF")


def test_prometheus_scrapes_the_expected_series(probing: dict[str, Any]) -> None:
    url = probing["prometheus"]
    success = wait_for(url, 'secton_probe_success{target="ref"}',
                       lambda r: len(r) == len(CHECK_NAMES))
    assert {s["metric"]["check"] for s in success} == set(CHECK_NAMES)
    assert all(s["value"][1] == "1" for s in success), success
    checks = wait_for(url, 'secton_probe_checks_total{result="success",target="ref"} > 1',
                      lambda r: len(r) == len(CHECK_NAMES))
    assert len(checks) == len(CHECK_NAMES)
    failures = query(url, 'secton_probe_failures_total{target="ref"}')
    assert len(failures) == len(CHECK_NAMES) * len(metrics.PROBE_REASONS)
    assert all(float(s["value"][1]) == 0 for s in failures)
    p95 = wait_for(url, 'histogram_quantile(0.95, sum by (le, check) '
                        '(rate(secton_probe_duration_seconds_bucket[1m])))',
                   lambda r: len(r) == len(CHECK_NAMES))
    assert {s["metric"]["check"] for s in p95} == set(CHECK_NAMES)
    assert query(url, f"{metrics.BUILD_INFO}_info")
    last = query(url, "time() - secton_probe_last_success_timestamp_seconds < 60")
    assert len(last) == len(CHECK_NAMES)
    degraded = query(url, "secton_probe_degraded")
    assert len(degraded) == len(CHECK_NAMES)


def test_alert_rules_load_and_use_only_exported_names(probing: dict[str, Any]) -> None:
    url = probing["prometheus"]
    wait_for(url, "secton_probe_success", lambda r: len(r) == len(CHECK_NAMES))
    deadline = time.monotonic() + 30
    groups: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        groups = api(url, "rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("2") and
                         not r["lastEvaluation"].startswith("0001") for r in rules):
            break
        time.sleep(0.5)
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 11 and all(r["health"] == "ok" for r in rules), rules
    names = set(api(url, "label/__name__/values"))
    # metric names in the rules, not recording-rule names (level:metric:operation)
    used = set(re.findall(r"(?<![:\w])(secton_probe_\w+)(?![:\w])", RULES.read_text()))
    series_names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}
    assert used <= names | series_names, used - names
    # a healthy target fires nothing
    alerts = api(url, "alerts")["alerts"]
    assert not [a for a in alerts if a["labels"].get("alertname") != "SectonProbeExporterDown"]
