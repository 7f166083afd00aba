"""The probe alert rules: promtool-valid, unit-tested, documented, and runbook-linked."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from conftest import ROOT

RULES_DIR = ROOT / "probes" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def alerts() -> list[dict]:
    found = []
    for file in RULE_FILES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            found += [r for r in group["rules"] if "alert" in r]
    return found


def test_promtool_check_rules(promtool_binary: str) -> None:
    assert RULE_FILES
    done = subprocess.run([promtool_binary, "check", "rules", *map(str, RULE_FILES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules(promtool_binary: str) -> None:
    assert TEST_FILES
    done = subprocess.run([promtool_binary, "test", "rules", *map(str, TEST_FILES)],
                          capture_output=True, text=True, timeout=120, cwd=RULES_DIR / "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = [case for file in TEST_FILES
             for case in yaml.safe_load(file.read_text())["tests"]]
    for alert in alerts():
        evals = [e for case in tests for e in case.get("alert_rule_test", [])
                 if e["alertname"] == alert["alert"]]
        assert any(e.get("exp_alerts") for e in evals), f"{alert['alert']} never fires"
        assert any(not e.get("exp_alerts") for e in evals), f"{alert['alert']} always fires"


def test_every_alert_has_severity_summary_description_and_a_real_runbook() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), re.M)}
    names = [a["alert"] for a in alerts()]
    assert {"SectonProbeTargetDown", "SectonAuthOpen", "SectonProbeSchemaBroken",
            "SectonProbeLatencyDegraded", "SectonProbeErrorBudgetBurnFast"} <= set(names)
    for alert in alerts():
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], alert["alert"]
        anchor = notes["runbook_url"].rsplit("#", 1)[1]
        assert notes["runbook_url"].split("#")[0].endswith("docs/runbooks.md")
        assert anchor in headings, f"{alert['alert']}: no section #{anchor} in runbooks.md"


def test_example_prometheus_config(promtool_binary: str) -> None:
    done = subprocess.run([promtool_binary, "check", "config",
                           str(ROOT / "probes" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_docs_mention_every_check_metric_and_field() -> None:
    from probes.config import CHECK_NAMES, ProbesConfig, TargetConfig
    from secton_harness.metrics import (
        PROBE_CHECKS,
        PROBE_DEGRADED,
        PROBE_DURATION,
        PROBE_FAILURES,
        PROBE_HTTP_STATUS,
        PROBE_LAST_SUCCESS,
        PROBE_SUCCESS,
    )

    doc = (ROOT / "docs" / "probes.md").read_text()
    for name in (*CHECK_NAMES, PROBE_CHECKS, PROBE_DEGRADED, PROBE_DURATION, PROBE_FAILURES,
                 PROBE_HTTP_STATUS, PROBE_LAST_SUCCESS, PROBE_SUCCESS,
                 *ProbesConfig.model_fields, *TargetConfig.model_fields):
        assert name in doc, name
    assert Path(ROOT / "examples" / "harness.toml").exists()


def test_burn_rate_alerts_use_the_one_slo_default() -> None:
    """One SLO default everywhere: the burn-rate factors are the error budget of
    measures.DEFAULT_SLO (the report's --slo, the probe board's slo variable), and the
    descriptions name that SLO."""
    from secton_harness.measures import DEFAULT_SLO

    budgets = []
    for alert in alerts():
        budgets += [float(b) for b in re.findall(r"\*\s*([0-9.]+)\s*\)", alert["expr"])]
        for text in alert.get("annotations", {}).values():
            for named in re.findall(r"SLO ([0-9.]+) %", text):
                assert float(named) / 100 == DEFAULT_SLO, (alert["alert"], text)
    assert budgets and all(b == round(1 - DEFAULT_SLO, 6) for b in budgets), budgets
