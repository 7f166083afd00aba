"""``ratelimit.json`` from the observations, and the limit card printed at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtests.ratelimit.infer import cost_summary, infer_scope
from loadtests.ratelimit.policy import Policy, check_policy
from secton_harness.atomicfile import write_json_atomic
from secton_harness.ratelimit_model import CARD_FIELDS, RESULT_FILE, parse_result
from secton_harness.records import read_records


def _plain(obs: dict[str, Any]) -> dict[str, Any]:
    """Observations without the raw clock values (kept relative in the evidence)."""
    drop = {"t0", "t_first_429", "t_success", "t_recovered", "t_last", "u0"}
    out: dict[str, Any] = {}
    for key, value in obs.items():
        if key in drop:
            continue
        out[key] = _plain(value) if isinstance(value, dict) else value
    return out


def not_measured(observations: dict[str, Any], facts: dict[str, Any]) -> dict[str, str]:
    """Why the org scope has no figures when it is missing from the result: no two keys
    of one org, or the bound that stopped the run before its burst."""
    org = observations.get("org")
    if facts.get("org") is None:
        return {}
    if org is not None and org.get("stopped_by"):
        why = f": {org['stopped_why']}" if org.get("stopped_why") else ""
        return {"org": f"stopped by {org['stopped_by']} before the org burst{why}"}
    key_stop = (observations.get("key") or {}).get("stopped_by") or facts.get("stopped_by")
    if org is None and key_stop:
        return {"org": f"stopped by {key_stop} in the key scope, before the org scope began"}
    return {}


def build_result(run_dir: Path, target: str, observations: dict[str, Any],
                 facts: dict[str, Any], policy: Policy | None) -> dict[str, Any]:
    """Infer every scope, add cost and policy checks, write ``ratelimit.json``."""
    records = read_records(run_dir).to_pandas()
    scopes: dict[str, Any] = {}
    for name, obs in observations.items():
        if name == "org" and not (obs.get("burst_a") or obs.get("burst_stopped")):
            continue
        scope = infer_scope(obs, records)
        if name == "org":
            scope["org"] = facts["org"]
            scope["keys"] = facts["org_keys"]
            if "isolated" in obs:
                scope["other_org_unaffected"] = obs["isolated"]
        else:
            scope["key_alias"] = facts["key_alias"]
            scope["org"] = facts.get("key_org")
        if obs.get("stopped_by"):
            scope["confidence"] = "low"
            scope["stopped_by"] = obs["stopped_by"]
        scope["observations"] = _plain(obs)
        scopes[name] = scope
    cost = cost_summary(records, scopes, facts.get("budget"))
    result: dict[str, Any] = {
        "target": target,
        "requests_sent": int(facts["requests_sent"]),
        "duration_s": facts["duration_s"],
        "scopes": scopes,
        "cost": cost,
        "stopped_by": facts.get("stopped_by"),
    }
    if policy is not None:
        verdict = check_policy(policy, scopes, not_measured(observations, facts))
        result["expect"] = verdict
        for name, checks in verdict["scopes"].items():
            if name in scopes:
                scopes[name]["checks"] = checks
    parse_result(result)   # the file's model (secton_harness/ratelimit_model.py) holds
    write_json_atomic(run_dir / RESULT_FILE, result)
    return result


def _shown(value: Any) -> str:
    """A card cell in words: "n/a" where nothing was measured, "yes"/"no" for a
    property (the card printed Python's None, True and False)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def retry_after_cell(ra: dict[str, Any]) -> str:
    """What the scope's 429s said about Retry-After: present (with its error when it was
    measured), absent (429s came without it) or not seen (no 429 of the scope)."""
    if ra.get("present") is None:
        return "not seen (no 429)"
    if not ra["present"]:
        return "absent"
    if ra.get("mean_error_s") is None:
        return "present (error not measured)"
    return f"present, mean err {ra['mean_error_s']}s, max {ra.get('max_error_s')}s"


def limit_card(result: dict[str, Any], console: Console) -> None:
    """The final table: one column per scope, one row per figure (✓/✗ with --expect)."""
    scopes = result["scopes"]
    table = Table(title=f"Rate-limit card: {result['target']}")
    table.add_column("figure")
    for name, scope in scopes.items():
        who = scope.get("key_alias") or f"{scope.get('org')} ({', '.join(scope.get('keys', []))})"
        table.add_column(f"{name}: {who}")
    for figure in CARD_FIELDS:
        row = [figure]
        for scope in scopes.values():
            value = scope.get(figure)
            if value is None and figure == "burst" and scope.get("burst_bound"):
                value = f"at least {scope['burst_bound']['at_least']} (a bound, no 429 yet)"
            elif value is None and figure in (scope.get("unverified") or []):
                bound = scope.get("sustained_bound") or {}
                value = "unverified" + "".join(
                    f" {word} {bound[key]}" for word, key in (("≥", "at_least"),
                                                              ("≤", "at_most"))
                    if bound.get(key) is not None)
            elif figure == "retry_after":
                value = retry_after_cell(value or {})
            check = (scope.get("checks") or {}).get(figure)
            mark = "" if check is None else (" [green]✓[/]" if check["pass"] else " [red]✗[/]")
            row.append(f"{_shown(value)}{mark}")
        table.add_row(*row)
    console.print(table)
    for name, scope in scopes.items():
        check = (scope.get("evidence") or {}).get("sustained_check")
        if check:
            console.print(f"{name} sustained check: {check}", markup=False)
        guess = (scope.get("evidence") or {}).get("algorithm_guess")
        if guess:
            console.print(f"{name} algorithm: unknown (the bursts suggested {guess}; the "
                          "steady runs contradict it)", markup=False)
    cost = result["cost"]
    console.print(f"requests sent: {cost['requests_sent']} (minimum {cost['minimum_bursts']}"
                  f" for the bursts + {cost['recovery_probes']} recovery probes; budget "
                  f"{cost['budget']}), {result['duration_s']}s")
    if not cost.get("within_budget", True):
        console.print(f"[yellow]requests sent ({cost['requests_sent']}) went over --budget "
                      f"({cost['budget']}): --budget only stops verification runs from "
                      "starting; --max-requests and --max-duration bound the whole run[/]")
    if result.get("stopped_by"):
        console.print(f"[yellow]stopped by {result['stopped_by']}: figures are partial "
                      "(confidence low)[/]")
    for checks in (result.get("expect") or {}).get("scopes", {}).values():
        for check in checks.values():
            if not check["pass"]:
                console.print(f"[red]FAIL[/] {check['line']}")
