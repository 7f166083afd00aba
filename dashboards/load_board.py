"""Load test: what a ``secton-harness load --metrics-port P`` run sends and gets back.

Only ``source="load"`` series: the rate-limit mapper shares the request metrics but is
shown on the rate-limits dashboard. Rates, the error ratio and latency percentiles are the
PromQL forms of :mod:`secton_harness.measures` (a 429 is counted apart, never an error),
so this board and the load command's table, run.json and the report use one definition.
"""

from __future__ import annotations

from secton_harness.measures import (
    promql_error_ratio,
    promql_latency_quantile,
    promql_ratelimited_ratio,
    promql_rps,
)
from secton_harness.metrics import (
    RATELIMITED,
    REQUEST_DURATION,
    REQUESTS,
    TARGET_RATE,
    TOKENS,
    USERS,
)

from . import variables
from .panels import Json, dashboard, row, stat, target, timeseries

UID = "secton-load"
SEL = 'source="load", org=~"$org", endpoint=~"$endpoint"'
DUR_SEL = 'source="load", endpoint=~"$endpoint"'   # the latency histogram has no org label
WINDOW = "$__rate_interval"
RATE = f"[{WINDOW}]"


def _rate(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}{RATE}))"


def _quantile(q: float, by: str = "endpoint") -> str:
    return promql_latency_quantile(q, DUR_SEL, WINDOW, by=by)


def build() -> Json:
    panels = [
        row("Overview"),
        stat("Request rate", "Requests per second sent by the load run (all selected "
             "endpoints and orgs, every outcome).", "reqps",
             [target(promql_rps(SEL, WINDOW), "rate")]),
        stat("Error ratio", "errors / requests: no response, status >= 400 other than "
             "429, or a failed check of the answer (outcome=error). 429s are counted apart "
             "(see 429 share), and so are requests the run's stop cut "
             "(outcome=cancelled), as in the load table and the report.", "percentunit",
             [target(promql_error_ratio(SEL, WINDOW), "errors")], decimals=2,
             thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")]),
        stat("429 share", "Requests answered 429 Too Many Requests / requests "
             "(outcome=ratelimited).", "percentunit",
             [target(promql_ratelimited_ratio(SEL, WINDOW), "429s")], decimals=2,
             width=4),
        stat("p95 latency", "95th percentile of request latency, all selected endpoints "
             f"(from the {REQUEST_DURATION} histogram: within 10 % of the exact figure).",
             "s", [target(_quantile(0.95, by=""), "p95")],
             thresholds=[(None, "green"), (1, "orange"), (2, "red")], width=4),
        stat("Active users", f"Locust users currently running ({USERS}).", "short",
             [target(f"sum({USERS})", "users")], width=4),
        row("Throughput"),
        timeseries("Request rate by endpoint and status", "Requests per second by endpoint "
                   "and HTTP status (0: no response).", "reqps",
                   [target(_rate(REQUESTS, SEL, "endpoint, status"),
                           "{{endpoint}} {{status}}")], stack=True),
        timeseries("Achieved vs target rate", "Requests per second sent per endpoint, "
                   f"against the scenario's configured rate ({TARGET_RATE}). A gap means "
                   "the generator or the target could not keep up.", "reqps",
                   [target(_rate(REQUESTS, SEL, "endpoint"), "{{endpoint}} achieved"),
                    target(f'sum by (endpoint) ({TARGET_RATE}{{endpoint=~"$endpoint"}})',
                           "{{endpoint}} target")]),
        timeseries("Request rate by org", "Requests per second by the org of the sending "
                   "key.", "reqps", [target(_rate(REQUESTS, SEL, "org"), "{{org}}")],
                   stack=True),
        timeseries("Active users", f"Locust users running over time ({USERS}).", "short",
                   [target(f"sum({USERS})", "users")]),
        row("Latency"),
        timeseries("Latency percentiles by endpoint", "p50, p95 and p99 of request latency "
                   f"per endpoint, from the {REQUEST_DURATION} histogram (8 buckets per "
                   "doubling from 1 ms to 312 s: within 10 % of the exact figure).", "s",
                   [target(_quantile(q), f"{{{{endpoint}}}} p{int(q * 100)}")
                    for q in (0.5, 0.95, 0.99)], width=24),
        row("Rate limits and tokens"),
        timeseries("429 rate by endpoint", "Requests answered 429 Too Many Requests per "
                   f"second ({RATELIMITED}).", "reqps",
                   [target(_rate(RATELIMITED, SEL, "endpoint"), "{{endpoint}}")],
                   stack=True),
        timeseries("Tokens per second", "Tokens reported in chat completion usage per "
                   "second, by kind (prompt, completion).", "suffix: tok/s",
                   [target(_rate(TOKENS, 'source="load", org=~"$org"', "kind"),
                           "{{kind}}")], stack=True),
    ]
    return dashboard(
        UID, "Secton load test",
        description="A secton-harness load run: request rate by endpoint and status, "
                    "latency percentiles, 429s, tokens per second, active users.",
        panels=panels, tags=["secton", "load"], refresh="10s", time_from="now-30m",
        variables=variables.requests())
