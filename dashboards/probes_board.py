"""Probes and uptime: is the API up, how fast are the checks, what is failing and why.

Availability counts check runs: ``success`` and ``degraded`` runs are up, ``failure``
runs are down (``secton_probe_checks_total{result}``), over the dashboard's time range.
The error budget is what the ``slo`` variable allows: remaining = 1 - (1 - availability)
/ (1 - slo), so 100 % is untouched and below 0 % is overspent.
"""

from __future__ import annotations

from secton_harness.measures import DEFAULT_SLO
from secton_harness.metrics import (
    PROBE_CHECKS,
    PROBE_DEGRADED,
    PROBE_DURATION,
    PROBE_FAILURES,
    PROBE_HTTP_STATUS,
    PROBE_LAST_SUCCESS,
    PROBE_SUCCESS,
)

from . import variables
from .panels import (
    Json,
    bargauge,
    dashboard,
    row,
    stat,
    state_timeline,
    table,
    target,
    timeseries,
    value_map,
)

UID = "secton-probes"
SEL = 'target=~"$target", check=~"$check"'
UP = f'{PROBE_CHECKS}{{{SEL}, result!="failure"}}'
ALL = f"{PROBE_CHECKS}{{{SEL}}}"
AVAILABILITY = f"sum(increase({UP}[$__range])) / sum(increase({ALL}[$__range]))"


def _quantiles(metric: str, by: str, selector: str) -> list[Json]:
    return [target(f"histogram_quantile({q}, sum by (le, {by}) "
                   f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
                   f"{{{{{by}}}}} p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def build() -> Json:
    panels = [
        row("Overview"),
        stat("Availability", "Share of check runs that did not fail (success or degraded) "
             "over the selected time range, all selected checks and targets.",
             "percentunit", [target(AVAILABILITY, "availability")], decimals=3,
             thresholds=[(None, "red"), (DEFAULT_SLO - 0.005, "orange"),
                         (DEFAULT_SLO, "green")]),
        stat("Error budget remaining", "1 - (1 - availability) / (1 - SLO) over the time "
             "range; the SLO is the dashboard variable 'slo'. Below 0 the budget is spent.",
             "percentunit", [target(f"1 - (1 - ({AVAILABILITY})) / (1 - $slo)", "budget")],
             decimals=1, thresholds=[(None, "red"), (0, "orange"), (0.5, "green")]),
        stat("Checks failing now", "Number of check x target pairs whose last run failed "
             f"({PROBE_SUCCESS} == 0).", "short",
             [target(f"sum(1 - {PROBE_SUCCESS}{{{SEL}}})", "failing")],
             thresholds=[(None, "green"), (1, "red")]),
        stat("Longest time since success", "Worst check: seconds since its last successful "
             f"run ({PROBE_LAST_SUCCESS}).", "s",
             [target(f"max(time() - {PROBE_LAST_SUCCESS}{{{SEL}}})", "age")],
             thresholds=[(None, "green"), (600, "orange"), (1800, "red")]),
        row("Checks"),
        state_timeline("Check status", f"Pass or fail of each check's last run over time "
                       f"({PROBE_SUCCESS}).", "bool",
                       [target(f"max by (target, check) ({PROBE_SUCCESS}{{{SEL}}})",
                               "{{target}} {{check}}")],
                       mappings=value_map({"1": ("pass", "green"), "0": ("fail", "red")})),
        timeseries("Check latency percentiles", "p50, p95 and p99 of check duration per "
                   f"check, from the {PROBE_DURATION} histogram.", "s",
                   _quantiles(PROBE_DURATION, "check", SEL)),
        timeseries("Success ratio by check", "Share of runs per check that did not fail, "
                   "per rate interval.", "percentunit",
                   [target(f'sum by (check) (rate({UP}[$__rate_interval])) / sum by (check) '
                           f"(rate({ALL}[$__rate_interval]))", "{{check}}")], max_value=1),
        timeseries("Check runs by result", "Check runs per second by result (success, "
                   "warning, degraded, failure).", "ops",
                   [target(f"sum by (result) (rate({ALL}[$__rate_interval]))", "{{result}}")],
                   stack=True),
        timeseries("Degraded checks", f"1 while a check's last run was slower than its "
                   f"degraded threshold ({PROBE_DEGRADED}).", "bool",
                   [target(f"max by (check) ({PROBE_DEGRADED}{{{SEL}}})", "{{check}}")],
                   max_value=1),
        timeseries("Time since last success", "Seconds since each check's last successful "
                   "run; a rising line is a check that keeps failing.", "s",
                   [target(f"time() - max by (check) ({PROBE_LAST_SUCCESS}{{{SEL}}})",
                           "{{check}}")]),
        row("Failures"),
        timeseries("Failures by reason", "Failed check runs per rate interval, by reason "
                   "(status, schema, invariant, timeout, connect, reset, too_large, protocol, "
                   "latency, content_type, ratelimited).", "short",
                   [target(f"sum by (reason) (increase({PROBE_FAILURES}{{{SEL}}}"
                           "[$__rate_interval]))", "{{reason}}")], stack=True, draw="bars"),
        bargauge("Recent failures by check and reason", "Failed runs over the selected time "
                 "range per check and reason (zero bars are reasons that did not occur).",
                 "short",
                 [target(f"sort_desc(sum by (check, reason) (increase({PROBE_FAILURES}"
                         f"{{{SEL}}}[$__range])))", "{{check}}: {{reason}}", instant=True)]),
        table("Last HTTP status", "HTTP status of the deciding answer of each check's last "
              f"run ({PROBE_HTTP_STATUS}; 0: no answer).", "none",
              [target(f"max by (target, check) ({PROBE_HTTP_STATUS}{{{SEL}}})",
                      instant=True)], width=24),
    ]
    return dashboard(
        UID, "Secton probes and uptime",
        description="Synthetic checks of the Secton API (secton-harness probe): status, "
                    "latency, availability against the SLO, failures by reason.",
        panels=panels, tags=["secton", "probes"],
        variables=variables.probes())
