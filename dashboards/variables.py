"""The template variables every Secton dashboard offers, so links keep the selection.

Every dashboard has ``datasource``, ``target``, ``org`` and ``endpoint``. ``target`` exists
only on probe metrics and ``org``/``endpoint`` only on request metrics, so each query uses
only the variables whose label its metric carries: selecting a probe target never empties
a load panel. Multi-value variables expand to a regex ("All" is ``.*``), hence ``=~``.
"""

from __future__ import annotations

from secton_harness.metrics import PROBE_SUCCESS, REQUESTS

from .panels import Json, datasource_variable, query_variable, textbox_variable

#: Default availability objective of the probe dashboard (editable on the dashboard).
DEFAULT_SLO = "0.995"


def target() -> Json:
    return query_variable("target", "Target", PROBE_SUCCESS, "target",
                          description="Probe target label (probe panels only).")


def check() -> Json:
    return query_variable("check", "Check", PROBE_SUCCESS, "check", 'target=~"$target"',
                          description="Probe check (probe panels only).")


def org() -> Json:
    return query_variable("org", "Org", REQUESTS, "org",
                          description="Organization of the key that sent the request "
                          "(request panels only).")


def endpoint() -> Json:
    return query_variable("endpoint", "Endpoint", REQUESTS, "endpoint",
                          description="API endpoint (request panels only).")


def slo() -> Json:
    return textbox_variable("slo", "SLO", DEFAULT_SLO,
                            "Availability objective as a ratio (0.995 = 99.5 %).")


def standard() -> list[Json]:
    """datasource, target, org, endpoint: the set on every dashboard."""
    return [datasource_variable(), target(), org(), endpoint()]
