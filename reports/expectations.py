"""Every pass/fail check a run judged itself by, as the command printed it.

A run folder carries the checks its command ran besides the scenario's thresholds:

* ``ratelimit --expect``: ``ratelimit.json`` ``expect.scopes.<scope>.<figure>`` =
  ``{pass, line, ...}``, including a documented scope that was not measured
  (``org scope documented but not measured ...``), which has no limit card;
* ``load``: the default checks in ``run.json`` ``checks`` = ``[{check, passed, detail}]``
  (e.g. requests recorded, ok answers, harness errors, each endpoint's rate);
* ``ratelimit`` that gave up on a target that stopped answering (``stopped_by``).

The report shows each one, passed and failed alike, in the command's own words
(``FAIL org scope ...``, ``FAIL rate:chat: chat: 3.1 of 8 req/s ...``), and the verdict
names the failed ones, so a run never fails for a reason the report does not show.

Example row: ``{"source": "ratelimit --expect", "name": "org.measured", "passed": False,
"line": "org scope documented but not measured (needs two or more keys of one org)"}``.
"""

from __future__ import annotations

from typing import Any

#: A line from a file is shown, not trusted: cut to this many characters.
MAX_LINE = 300
EXPECT, LOAD_CHECK, MAPPING = "ratelimit --expect", "load check", "ratelimit"
#: What ``ratelimit`` prints when it abandons a target that stopped answering.
TARGET_DOWN_LINE = ("the target stopped answering (20 failures in a row): mapping "
                    "abandoned rather than hammering it")


def run_checks(info: dict[str, Any], ratelimit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks of one run folder: ``run.json`` (``info``) and its ``ratelimit.json``."""
    rows = _load_checks(info.get("checks"))
    for result in ratelimit:
        rows += _expect_checks(result.get("expect"))
        if result.get("stopped_by") == "target_down":
            rows.append(_row(MAPPING, "target_down", False, TARGET_DOWN_LINE))
    return rows


def _row(source: str, name: str, passed: Any, line: Any) -> dict[str, Any]:
    text = str(line) if line is not None else name
    return {"source": source, "name": name,
            "passed": passed if isinstance(passed, bool) else None,
            "line": text if len(text) <= MAX_LINE else text[:MAX_LINE - 1] + "…"}


def _load_checks(checks: Any) -> list[dict[str, Any]]:
    """``run.json`` ``checks`` of a load run, worded as ``load`` prints a failure
    (``FAIL name: detail``)."""
    if not isinstance(checks, list):
        return []
    rows = []
    for check in checks:
        if isinstance(check, dict) and isinstance(check.get("check"), str):
            name = check["check"]
            detail = check.get("detail")
            rows.append(_row(LOAD_CHECK, name, check.get("passed"),
                             f"{name}: {detail}" if detail is not None else name))
    return rows


def _expect_checks(expect: Any) -> list[dict[str, Any]]:
    """``ratelimit.json`` ``expect``: every documented figure of every scope, worded as
    ``ratelimit`` prints it (its ``line``)."""
    scopes = expect.get("scopes") if isinstance(expect, dict) else None
    if not isinstance(scopes, dict):
        return []
    rows = []
    for scope, checks in scopes.items():
        if not isinstance(checks, dict):
            continue
        for figure, check in checks.items():
            if isinstance(check, dict):
                rows.append(_row(EXPECT, f"{scope}.{figure}",
                                 check.get("pass", check.get("passed")),
                                 check.get("line") or f"{scope}.{figure}"))
    return rows
