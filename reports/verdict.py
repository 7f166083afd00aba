"""Verdicts a release manager signs: one per run, one for the report, reasons named.

A run **passed** only when it did what was asked and met every criterion it carries; it
**failed** when a threshold, a default check or a documented limit failed; it **stopped
early** when it ended before its plan (aborted on a failing threshold, a target that went
down, a signal, an error, or still "running" because it was killed) — a run that did not
do what was asked never passes. The report passes when every run passed and the baseline
(if any) shows no regression.

Default checks, besides the thresholds a load scenario states:

* load: its thresholds and its own default checks (e.g. requests recorded, ok answers,
  harness errors, each endpoint's rate; results from run.json ``checks``);
* probe: every check ran without a failure, and availability meets the SLO;
* ratelimit: every check against a documented policy (``--expect``) passed, a documented
  scope that was not measured included, and the target kept answering;
* any run: it recorded something (a run with no records measured nothing).
"""

from __future__ import annotations

from typing import Any

from reports.expectations import EXPECT
from reports.ratelimits import stop_words

PASSED, FAILED, STOPPED = "passed", "failed", "stopped early"
STOPPED_OUTCOMES = {"interrupted": "interrupted by a signal",
                    "error": "ended with an error",
                    "running": "never finished (the process was killed)",
                    "incomplete": "a bound stopped it before it finished: a lost worker's "
                                  "records are missing, or the rate-limit mapping hit "
                                  "--max-duration / --max-requests (partial figures)"}
MAX_NAMED = 8
#: A run's own stop reason is shown up to this many characters.
MAX_REASON = 300


def run_verdict(run: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """``{"status": passed|failed|stopped early, "reasons": [...]}`` for one run."""
    stopped: list[str] = []
    failed: list[str] = []
    outcome = info.get("outcome")
    if outcome in STOPPED_OUTCOMES:
        # the run's own words when it left some (load: "the load command ... was killed;
        # the Locust process stopped itself ..."), else what the outcome means
        said = info.get("reason")
        said = said[:MAX_REASON] if isinstance(said, str) and said.strip() else None
        stop = (run.get("ratelimits") or {}).get("stop")
        if said is None and stop:  # the mapper's own stop reason (ratelimit.json)
            said = stop_words(stop)
        stopped.append(f"outcome {outcome}: {said or STOPPED_OUTCOMES[outcome]}")
    aborted = info.get("aborted_on") or []
    if aborted:
        stopped += [f"stopped early: {reason}" for reason in aborted]
    capacity = run.get("capacity") or {}
    for row in capacity.get("thresholds") or []:
        if row.get("passed") is False:
            failed.append(f"threshold {row.get('expression') or row.get('name')}")
    uptime = run.get("uptime") or {}
    if uptime.get("available"):
        failing = [f"{t['check']}@{t['target']}: {t['failures']} failure(s)"
                   for t in uptime.get("per_target", []) if t.get("failures")]
        failed += [f"check {text}" for text in failing]
        if uptime.get("meets_slo") is False:
            failed.append(f"availability {uptime['availability']:.3%} below the SLO "
                          f"{uptime['slo']:.3%}")
    checks = run.get("checks") or []
    failed += [f"{row['source']}: FAIL {row['line']}" for row in checks
               if row.get("passed") is False]
    limits = run.get("ratelimits") or {}
    expected = any(row.get("source") == EXPECT for row in checks)
    for card in limits.get("cards", []):
        if card.get("passed") is False and not expected:  # else named by its checks
            names = [f["name"] for f in card.get("figures", []) if f.get("passed") is False]
            failed.append(f"rate limit scope {card['scope']}: {', '.join(names)} outside the "
                          "documented policy")
    if not run.get("records") and not limits.get("cards"):
        failed.append("recorded nothing: no request was measured")
    if outcome == "failed" and not failed and not stopped:
        failed.append("the run itself reported failure (run.json outcome failed)")
    status = STOPPED if stopped else (FAILED if failed else PASSED)
    reasons = stopped + failed
    if len(reasons) > MAX_NAMED:
        reasons = [*reasons[:MAX_NAMED], f"… and {len(reasons) - MAX_NAMED} more"]
    return {"status": status, "passed": status == PASSED, "reasons": reasons}


def report_verdict(runs: list[dict[str, Any]], baseline: dict[str, Any]) -> dict[str, Any]:
    """The overall verdict: passed only if every run passed and nothing regressed."""
    reasons = [f"{run['dir']}: {run['verdict']['status']}" for run in runs
               if not run["verdict"]["passed"]]
    if baseline.get("regressions"):
        reasons.append(f"regression against the baseline: {', '.join(baseline['regressions'])}")
    status = PASSED if not reasons else FAILED
    return {"status": status, "passed": status == PASSED, "reasons": reasons}
