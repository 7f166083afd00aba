"""Every check a run judged itself by is in the report, failed and unmeasured ones too,
in the command's own words (reports/expectations.py).

The rate-limit result is built with the mapper's own policy check
(``loadtests.ratelimit.policy.check_policy``, what ``ratelimit --expect`` writes into
ratelimit.json) and validated by the result file's model, so the report reads the shape
the command writes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from report_data import load_rows, make_run, ratelimit_rows

from loadtests.ratelimit.policy import check_policy, load_policy
from reports.build import build_report
from secton_harness.ratelimit_model import parse_result

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "secton_cli" / "demo_inputs" / "demo-ratelimit-policy.toml"
NOT_MEASURED = "org scope documented but not measured (needs two or more keys of one org)"
#: The key scope as the mapper measured it against the demo rate-limit server.
KEY_SCOPE = {"burst": 10, "sustained_per_min": 308.92, "cooldown_s": 1.831,
             "full_recovery_s": 1.831, "algorithm": "fixed_window", "penalty_extends": False,
             "refusals_count": False, "shared_across_endpoints": True, "confidence": "high",
             "retry_after": {"present": True, "mean_error_s": 0.53, "max_error_s": 1.04},
             "key_alias": "a1", "org": "org_alpha"}


def ratelimit_result(policy_path: Path = POLICY) -> dict[str, Any]:
    """ratelimit.json of a run with one key per org and a policy documenting [key] and
    [org]: the key scope measured and passing, the org scope documented but unmeasured."""
    scopes: dict[str, Any] = {"key": dict(KEY_SCOPE)}
    expect = check_policy(load_policy(policy_path), scopes)
    scopes["key"]["checks"] = expect["scopes"]["key"]
    result = {"target": "http://127.0.0.1:9", "requests_sent": 119, "duration_s": 21.3,
              "scopes": scopes, "expect": expect, "stopped_by": None}
    parse_result(result)  # the shape the command's writer validates against
    return result


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secton_harness", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_an_unmeasured_documented_scope_is_shown_and_fails_the_run(tmp_path: Path) -> None:
    """`ratelimit --expect` printed "FAIL org scope documented but not measured" and exited
    1; the report showed only "Scope key: PASS" and "the run itself reported failure"."""
    result = ratelimit_result()
    assert not result["expect"]["passed"]  # the command's own verdict
    run = make_run(tmp_path / "rl", ratelimit=ratelimit_rows(), ratelimit_result=result,
                   command="ratelimit", outcome="failed")
    done = _cli(run)
    assert done.returncode == 1, done.stderr
    md = (run / "report.md").read_text()
    html = (run / "report.html").read_text()
    # every check, in the words the command printed (FAIL <line>), passed ones included
    assert f"FAIL {NOT_MEASURED}" in md
    assert "PASS key.burst (10) == 10 ± 1" in md
    assert "PASS key.sustained_per_min (308.92) == 300 ± 30" in md
    assert NOT_MEASURED in html and "key.algorithm (fixed_window) in" in html
    reasons = (md.split("\n\n")[1])  # the verdict line of the run, first in report.md
    assert f"ratelimit --expect: FAIL {NOT_MEASURED}" in reasons
    assert "the run itself reported failure" not in md


def test_a_failed_check_without_a_card_row_fails_the_scope(tmp_path: Path) -> None:
    """retry_after_max_error_s has no figure row on the card; the card said PASS."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[key]\nburst = 10\nretry_after_max_error_s = 0.5\n")
    result = ratelimit_result(policy)
    run = make_run(tmp_path / "rl", ratelimit=ratelimit_rows(), ratelimit_result=result,
                   command="ratelimit", outcome="failed")
    summary = build_report([run], out=None).summary
    card = summary["runs"][0]["ratelimits"]["cards"][0]
    assert card["passed"] is False
    assert summary["runs"][0]["verdict"]["reasons"] == [
        "ratelimit --expect: FAIL key.retry_after.max_error_s (1.04) <= 0.5"]


def test_a_failed_default_check_of_a_load_run_is_named(tmp_path: Path) -> None:
    """run.json ``checks`` as ``load`` writes them; a failed rate check was shown nowhere."""
    checks = [{"check": "requests", "passed": True, "detail": "160 requests recorded"},
              {"check": "rate:models", "passed": False,
               "detail": "models: 3.1 of 16 req/s (12 of 64 scheduled, 52 dropped)"}]
    run = make_run(tmp_path / "load", load=load_rows(stage_rates=(16,)), command="load",
                   outcome="failed", checks=checks)
    summary = build_report([run], out=None).summary
    assert summary["runs"][0]["verdict"]["reasons"] == [
        "load check: FAIL rate:models: models: 3.1 of 16 req/s (12 of 64 scheduled, "
        "52 dropped)"]
    md = (run / "report.md").read_text()
    assert "PASS requests: 160 requests recorded" in md
    assert "FAIL rate:models: models: 3.1 of 16 req/s" in md


def test_a_mapping_abandoned_on_a_dead_target_says_so(tmp_path: Path) -> None:
    result = {**ratelimit_result(), "stopped_by": "target_down"}
    del result["expect"]
    result["scopes"]["key"].pop("checks")
    run = make_run(tmp_path / "rl", ratelimit_result=result, command="ratelimit",
                   outcome="failed")
    reasons = build_report([run], out=None).summary["runs"][0]["verdict"]["reasons"]
    assert reasons == ["ratelimit: FAIL the target stopped answering (20 failures in a row): "
                       "mapping abandoned rather than hammering it"]
