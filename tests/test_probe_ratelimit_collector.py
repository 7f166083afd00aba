"""The rate-limit mapper's ``ratelimit.json`` as gauges of the probe exporter, read at scrape
time from real files: figures by scope/quantity/org/target, policy checks, nulls skipped, the
newest file winning, and a missing or corrupt file exporting nothing without breaking the
scrape. The end-to-end proof (real mapper run, real exporter, real Prometheus) is in
test_dashboards_prometheus.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from probes.config import load_harness_config
from probes.exporter import ProbeMetrics
from probes.ratelimit_collector import RatelimitCollector, normalise_url

OBSERVED = "secton_ratelimit_observed"
VERIFIED = "secton_ratelimit_verified"
URL = "http://127.0.0.1:32795"


def mapper_result(target: str = URL, *, key_burst: Any = 10, checks: bool = False,
                  key_org: str | None = None) -> dict[str, Any]:
    """The shape `secton-harness ratelimit` writes (figures from a real tight-limits run)."""
    key: dict[str, Any] = {
        "burst": key_burst, "sustained_per_min": 581.33, "cooldown_s": 0.924,
        "full_recovery_s": 0.924, "algorithm": "fixed_window", "penalty_extends": None,
        "shared_across_endpoints": True, "confidence": "high", "key_alias": "a1",
        "retry_after": {"present": True, "mean_error_s": 0.522, "max_error_s": 0.964},
        "evidence": {"why": "the full budget returns at once"}, "observations": {}}
    if key_org is not None:
        key["org"] = key_org
    org = {"burst": 25, "sustained_per_min": 1480.74, "cooldown_s": 0.743,
           "full_recovery_s": None, "algorithm": "fixed_window", "confidence": "high",
           "org": "org_alpha", "keys": ["a1", "a2", "a3"], "other_org_unaffected": True,
           "observations": {}}
    result: dict[str, Any] = {"target": target, "requests_sent": 161, "duration_s": 10.33,
                              "scopes": {"key": key, "org": org}, "cost": {},
                              "stopped_by": None}
    if checks:
        key["checks"] = {"burst": {"expected": 10.0, "pass": True, "line": "..."},
                         "algorithm": {"expected": ["fixed_window"], "pass": True}}
        org["checks"] = {"cooldown_s": {"expected": 5.0, "pass": False, "line": "..."}}
        result["expect"] = {"passed": False, "scopes": {"key": key["checks"],
                                                        "org": org["checks"]}}
    return result


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def registry_for(*patterns: str | Path, urls: dict[str, str] | None = None
                 ) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(RatelimitCollector(patterns, urls))
    return registry


def observed(registry: CollectorRegistry, scope: str, quantity: str, org: str,
             target: str) -> float | None:
    return registry.get_sample_value(OBSERVED, {"scope": scope, "quantity": quantity,
                                                "org": org, "target": target})


def test_figures_per_scope_with_org_and_target_label(tmp_path: Path) -> None:
    path = write(tmp_path / "rl" / "ratelimit.json", mapper_result(URL + "/v1/"))
    registry = registry_for(path, urls={"staging": URL})
    assert observed(registry, "key", "burst", "org_alpha", "staging") == 10
    assert observed(registry, "key", "sustained_per_min", "org_alpha", "staging") == 581.33
    assert observed(registry, "key", "cooldown_s", "org_alpha", "staging") == 0.924
    assert observed(registry, "key", "full_recovery_s", "org_alpha", "staging") == 0.924
    assert observed(registry, "org", "burst", "org_alpha", "staging") == 25
    assert observed(registry, "org", "cooldown_s", "org_alpha", "staging") == 0.743
    # null figures and non-numeric fields are not exported
    assert observed(registry, "org", "full_recovery_s", "org_alpha", "staging") is None
    text = generate_latest(registry).decode()
    assert text.count(f"{OBSERVED}{{") == 7
    assert "algorithm" not in text and "a1" not in text and "sk-" not in text
    assert VERIFIED not in text  # no --expect, no checks


def test_key_org_unknown_is_empty_and_explicit_org_wins(tmp_path: Path) -> None:
    alone = mapper_result("http://10.0.0.1:8080")
    del alone["scopes"]["org"]
    registry = registry_for(write(tmp_path / "a.json", alone))
    # not a probed target: the URL itself (credentials and /v1 dropped)
    assert observed(registry, "key", "burst", "", "http://10.0.0.1:8080") == 10
    named = write(tmp_path / "b.json", mapper_result(key_org="org_beta"))
    assert observed(registry_for(named), "key", "burst", "org_beta", URL) == 10
    assert normalise_url("https://user:pw@api.example/v1/?x=1") == "https://api.example"


def test_policy_checks_become_verified_gauges(tmp_path: Path) -> None:
    registry = registry_for(write(tmp_path / "rl.json", mapper_result(checks=True)),
                            urls={"ref": URL})
    labels = {"org": "org_alpha", "target": "ref"}
    assert registry.get_sample_value(VERIFIED, {"scope": "key", "figure": "burst",
                                                **labels}) == 1
    assert registry.get_sample_value(VERIFIED, {"scope": "key", "figure": "algorithm",
                                                **labels}) == 1
    assert registry.get_sample_value(VERIFIED, {"scope": "org", "figure": "cooldown_s",
                                                **labels}) == 0


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]", '{"target": "x"}',
                                     '{"scopes": []}'],
                         ids=["broken-json", "empty", "list", "no-scopes", "scopes-list"])
def test_corrupt_file_exports_nothing_and_warns_once(tmp_path: Path, content: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    bad = write(tmp_path / "bad" / "ratelimit.json", content)
    good = write(tmp_path / "good" / "ratelimit.json", mapper_result())
    registry = registry_for(bad, good)
    with caplog.at_level(logging.WARNING, logger="probes.ratelimit_collector"):
        for _scrape in range(3):
            text = generate_latest(registry).decode()  # no exception
    assert observed(registry, "org", "burst", "org_alpha", URL) == 25  # the good file
    assert text.count(f"{OBSERVED}{{") == 7  # only the good file's samples
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(bad) in warnings[0], warnings
    # alone, the corrupt file gives no samples at all
    assert f"{OBSERVED}{{" not in generate_latest(registry_for(bad)).decode()


def test_missing_file_then_written_then_corrupted(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "later" / "ratelimit.json"
    registry = registry_for(path, tmp_path / "nothing-*" / "ratelimit.json")
    with caplog.at_level(logging.WARNING, logger="probes.ratelimit_collector"):
        generate_latest(registry)
        generate_latest(registry)
        assert len(caplog.records) == 2  # the missing file and the empty glob, once each
        write(path, mapper_result())
        assert observed(registry, "key", "burst", "org_alpha", URL) == 10  # next scrape
        write(path, mapper_result(key_burst=12))
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 10**9))  # mtime surely changed
        assert observed(registry, "key", "burst", "org_alpha", URL) == 12  # not cached
        write(path, "{truncated")
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 2 * 10**9))
        assert observed(registry, "key", "burst", "org_alpha", URL) is None
    assert len(caplog.records) == 3


def test_glob_and_run_folder_and_newest_file_wins(tmp_path: Path) -> None:
    old = write(tmp_path / "runs" / "old" / "ratelimit.json", mapper_result(key_burst=9))
    new = write(tmp_path / "runs" / "new" / "ratelimit.json", mapper_result(key_burst=11))
    os.utime(old, ns=(1, 10**18))
    os.utime(new, ns=(1, 2 * 10**18))
    other = write(tmp_path / "other" / "ratelimit.json", mapper_result("http://127.0.0.2:1"))
    registry = registry_for(str(tmp_path / "runs" / "*" / "ratelimit.json"), other.parent)
    assert observed(registry, "key", "burst", "org_alpha", URL) == 11
    assert observed(registry, "key", "burst", "org_alpha", "http://127.0.0.2:1") == 10
    text = generate_latest(registry).decode()
    assert text.count('quantity="burst"') == 4  # 2 targets x 2 scopes, no duplicates


def test_probe_exporter_serves_them_and_promtool_accepts(tmp_path: Path,
                                                         promtool_binary: str) -> None:
    path = write(tmp_path / "ratelimit.json", mapper_result(checks=True))
    exporter = ProbeMetrics(CollectorRegistry(), ["auth_valid"], ["ref"],
                            ratelimit_files=[str(path)], target_urls={"ref": URL})
    text = exporter.exposition().decode()
    assert (f'{OBSERVED}{{org="org_alpha",quantity="burst",scope="org",target="ref"}} 25.0'
            in text)
    assert 'secton_probe_checks_total{check="auth_valid"' in text
    lint = subprocess.run([promtool_binary, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert ProbeMetrics(CollectorRegistry(), ["auth_valid"], ["ref"]).ratelimit is None


def test_config_field_resolves_relative_to_the_config_file(tmp_path: Path) -> None:
    config = write(tmp_path / "conf" / "harness.toml",
                   '[probes]\nratelimit_files = ["rl/ratelimit.json", "/abs/*.json"]\n')
    loaded = load_harness_config(config).probes.ratelimit_files
    assert loaded == [str(tmp_path / "conf" / "rl" / "ratelimit.json"), "/abs/*.json"]
