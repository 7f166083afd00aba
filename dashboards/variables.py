"""The template variables of the Secton dashboards; each board offers only those its
panels use.

``target`` exists only on probe metrics and ``org``/``endpoint`` only on request metrics,
so the probe board offers ``target`` and ``check`` (and ``slo``), the load and rate-limit
boards ``org`` and ``endpoint``; links between boards keep the ones they share.
Multi-value variables expand to a regex ("All" is ``.*``), hence ``=~``.
"""

from __future__ import annotations

from secton_harness.measures import DEFAULT_SLO as _SLO
from secton_harness.metrics import PROBE_SUCCESS, REQUESTS

from .panels import Json, datasource_variable, query_variable, textbox_variable

#: Default availability objective of the probe dashboard (editable on the dashboard):
#: the harness's one default (secton_harness.measures.DEFAULT_SLO).
DEFAULT_SLO = f"{_SLO:g}"


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
                            f"Availability objective as a ratio ({DEFAULT_SLO} = "
                            f"{float(DEFAULT_SLO) * 100:g} %).")


def requests() -> list[Json]:
    """datasource, org, endpoint: the filters of the request-metric boards."""
    return [datasource_variable(), org(), endpoint()]


def probes() -> list[Json]:
    """datasource, target, check, slo: the filters of the probe board."""
    return [datasource_variable(), target(), check(), slo()]
