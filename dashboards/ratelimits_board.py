"""Rate limits: where the target said 429, for which org, and how much got through.

Uses the request metrics of every source (load runs and the rate-limit mapper), so the
``source`` label is kept in legends. The admitted rate during a 429 storm is the limit as
the client observes it: requests that got a 2xx per second, per org.
"""

from __future__ import annotations

from secton_harness.metrics import RATELIMITED, REQUESTS

from . import variables
from .panels import Json, bargauge, dashboard, row, target, timeseries

UID = "secton-ratelimits"
SEL = 'org=~"$org", endpoint=~"$endpoint"'
RATE = "[$__rate_interval]"


def panels() -> list[Json]:
    limited = f"{RATELIMITED}{{{SEL}}}"
    return [
        row("429s"),
        timeseries("429s by org over time", "Requests answered 429 per second, by org "
                   "and source.", "reqps",
                   [target(f"sum by (org, source) (rate({limited}{RATE}))",
                           "{{org}} ({{source}})")], stack=True, width=24),
        timeseries("429 share by org", "Share of each org's requests answered 429.",
                   "percentunit",
                   [target(f"sum by (org) (rate({limited}{RATE})) / sum by (org) "
                           f"(rate({REQUESTS}{{{SEL}}}{RATE}))", "{{org}}")], max_value=1),
        bargauge("429s by org and endpoint", "Requests answered 429 over the selected time "
                 "range, by org and endpoint.", "short",
                 [target(f"sort_desc(sum by (org, endpoint) (increase({limited}"
                         "[$__range])))", "{{org}} {{endpoint}}", instant=True)]),
        row("Admitted throughput"),
        timeseries("Admitted rate by org", "Requests per second that got a 2xx, by org: "
                   "while the same org also gets 429s, this is its limit as observed.",
                   "reqps",
                   [target(f'sum by (org) (rate({REQUESTS}{{{SEL}, status=~"2.."}}{RATE}))',
                           "{{org}}")]),
        timeseries("Requests by status", "All requests per second by HTTP status (every "
                   "source).", "reqps",
                   [target(f"sum by (status) (rate({REQUESTS}{{{SEL}}}{RATE}))",
                           "{{status}}")], stack=True),
    ]


def build() -> Json:
    return dashboard(
        UID, "Secton rate limits",
        description="429s by org over time, their share, and the admitted rate per org.",
        panels=panels(), tags=["secton", "ratelimits"], refresh="10s",
        time_from="now-30m", variables=variables.standard())
