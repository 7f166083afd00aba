"""Rate limits: the limits the mapper observed, where the target said 429, for which org.

The observed limits come from ``secton_ratelimit_observed{scope,quantity,org,target}``,
which the probe exporter re-exports from the mapper's ``ratelimit.json``
(``secton-harness probe --ratelimit-file``): one table row per target, scope and org. Its
org filter also keeps ``org=""`` rows (a key scope whose org the file does not name).

Uses the request metrics of every source (load runs and the rate-limit mapper), so the
``source`` label is kept in legends. The admitted rate during a 429 storm is the limit as
the client observes it: requests that got a 2xx per second, per org.
"""

from __future__ import annotations

from secton_harness.measures import promql_ok_rps, promql_rps
from secton_harness.metrics import RATELIMIT_OBSERVED, RATELIMIT_VERIFIED, RATELIMITED, REQUESTS
from secton_harness.ratelimit_model import QUANTITY_UNITS

from . import variables
from .panels import Json, bargauge, dashboard, row, table, target, timeseries, value_map

UID = "secton-ratelimits"
SEL = 'org=~"$org", endpoint=~"$endpoint"'
WINDOW = "$__rate_interval"
RATE = f"[{WINDOW}]"
#: Mapper figures: the org variable, or no org known (key scope of an unnamed org).
MAPPED = 'org=~"$org|"'
#: A figure's unit (secton_harness.ratelimit_model) -> Grafana's unit.
_GRAFANA_UNITS = {"requests": "short", "requests/min": "reqpm", "s": "s"}
#: quantity label -> (column title, Grafana unit): ``cooldown_s`` -> ("Cooldown", "s")
QUANTITIES = {quantity: (quantity.removesuffix("_s").replace("_", " ").capitalize(),
                         _GRAFANA_UNITS[unit])
              for quantity, unit in QUANTITY_UNITS.items()}


def observed_limits() -> Json:
    """One row per target/scope/org, one column per figure, each with its own unit."""
    panel = table(
        "Observed limits per scope", "Rate limits measured by the rate-limit mapper "
        f"(secton-harness ratelimit), re-exported by the probe exporter ({RATELIMIT_OBSERVED}):"
        " burst = successes in a row from rest, sustained = steady rate without 429, "
        "cooldown = first 429 to next success, full recovery = first 429 until a full burst "
        "is allowed again. Empty org: a key whose org the result file does not name.",
        "short",
        [target(f'max by (target, scope, org) ({RATELIMIT_OBSERVED}{{{MAPPED}, '
                f'quantity="{quantity}"}})', title, instant=True)
         for quantity, (title, _unit) in QUANTITIES.items()], width=24, height=6)
    columns = {f"Value #{chr(ord('A') + i)}": title
               for i, (title, _unit) in enumerate(QUANTITIES.values())}
    panel["transformations"][1]["options"].update(
        renameByName={"target": "Target", "scope": "Scope", "org": "Org", **columns},
        indexByName={name: i for i, name in enumerate(
            ["target", "scope", "org", *columns])})
    panel["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": title},
         "properties": [{"id": "unit", "value": unit}]}
        for title, unit in QUANTITIES.values()]
    return panel


def policy_checks() -> Json:
    """Pass/fail of each documented figure, when the mapper ran with ``--expect``."""
    panel = table(
        "Policy checks", "Each figure of the documented policy the mapper was given "
        f"(secton-harness ratelimit --expect), pass or fail ({RATELIMIT_VERIFIED}).",
        "bool",
        [target(f"max by (target, scope, org, figure) ({RATELIMIT_VERIFIED}{{{MAPPED}}})",
                "{{scope}} {{figure}}", instant=True)], width=24, height=6)
    panel["fieldConfig"]["defaults"]["mappings"] = value_map(
        {"1": ("pass", "green"), "0": ("fail", "red")})
    panel["fieldConfig"]["defaults"]["custom"] = {"cellOptions": {"type": "color-text"}}
    return panel


def panels() -> list[Json]:
    limited = f"{RATELIMITED}{{{SEL}}}"
    return [
        row("Observed limits"),
        observed_limits(),
        policy_checks(),
        row("429s"),
        timeseries("429s by org over time", "Requests answered 429 per second, by org "
                   "and source.", "reqps",
                   [target(f"sum by (org, source) (rate({limited}{RATE}))",
                           "{{org}} ({{source}})")], stack=True, width=24),
        timeseries("429 share by org", "Share of each org's requests answered 429.",
                   "percentunit",
                   [target(f"sum by (org) (rate({limited}{RATE})) / "
                           f"{promql_rps(SEL, WINDOW, by='org')}", "{{org}}")],
                   max_value=1),
        bargauge("429s by org and endpoint", "Requests answered 429 over the selected time "
                 "range, by org and endpoint.", "short",
                 [target(f"sort_desc(sum by (org, endpoint) (increase({limited}"
                         "[$__range])))", "{{org}} {{endpoint}}", instant=True)]),
        row("Admitted throughput"),
        timeseries("Admitted rate by org", "Requests per second whose outcome was ok, by "
                   "org: while the same org also gets 429s, this is its limit as observed.",
                   "reqps", [target(promql_ok_rps(SEL, WINDOW, by="org"), "{{org}}")]),
        timeseries("Requests by status", "All requests per second by HTTP status (every "
                   "source).", "reqps",
                   [target(f"sum by (status) (rate({REQUESTS}{{{SEL}}}{RATE}))",
                           "{{status}}")], stack=True),
    ]


def build() -> Json:
    return dashboard(
        UID, "Secton rate limits",
        description="Observed limits per scope (rate-limit mapper), 429s by org over time, "
                    "their share, and the admitted rate per org.",
        panels=panels(), tags=["secton", "ratelimits"], refresh="10s",
        time_from="now-30m", variables=variables.requests())
