"""Builders for Grafana's classic dashboard JSON model, as plain dicts.

Why plain data instead of grafana-foundation-sdk: the SDK is released per Grafana version
and its Python builds change shape between them; the classic JSON model is stable, is what
file provisioning and ``POST /api/dashboards/db`` accept, and a dict is trivial to test
(every panel's unit, description and PromQL are just keys). Each dashboard module calls
:func:`dashboard` with panels made by :func:`timeseries`, :func:`stat`, :func:`table`... and
variables made by :func:`datasource_variable`, :func:`query_variable`, :func:`textbox_variable`.

Example::

    board = dashboard("secton-load", "Secton load test", panels=[
        timeseries("Request rate", "Requests per second.", "reqps",
                   [target("sum(rate(secton_requests_total[$__rate_interval]))", "all")]),
    ], variables=[datasource_variable()])
"""

from __future__ import annotations

from typing import Any

from secton_harness.metrics import USERS

#: A recent schema version (Grafana 10.4/11 write 39); older Grafana migrates nothing back,
#: newer Grafana migrates forward on load.
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: The panel grid is 24 units wide.
GRID_WIDTH = 24

Json = dict[str, Any]


def target(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False) -> Json:
    """One PromQL query of a panel."""
    query: Json = {"datasource": DATASOURCE, "editorMode": "code", "expr": expr,
                   "legendFormat": legend or "__auto", "range": not instant,
                   "instant": instant, "refId": ref_id}
    return query


def _with_ref_ids(targets: list[Json]) -> list[Json]:
    return [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)]


def _panel(kind: str, title: str, description: str, unit: str, targets: list[Json],
           *, width: int, height: int, options: Json, custom: Json | None = None,
           defaults: Json | None = None) -> Json:
    if not description:
        raise ValueError(f"panel {title!r}: every panel needs a description")
    if not unit:
        raise ValueError(f"panel {title!r}: every panel needs a unit")
    field_defaults: Json = {"unit": unit, **(defaults or {})}
    if custom is not None:
        field_defaults["custom"] = custom
    return {"type": kind, "title": title, "description": description,
            "datasource": DATASOURCE, "targets": _with_ref_ids(targets),
            "fieldConfig": {"defaults": field_defaults, "overrides": []},
            "options": options, "gridPos": {"h": height, "w": width, "x": 0, "y": 0}}


def timeseries(title: str, description: str, unit: str, targets: list[Json], *,
               width: int = 12, height: int = 8, stack: bool = False,
               min_value: float | None = 0, max_value: float | None = None,
               draw: str = "line") -> Json:
    """A time-series graph; ``draw="bars"`` for counts per interval."""
    defaults: Json = {}
    if min_value is not None:
        defaults["min"] = min_value
    if max_value is not None:
        defaults["max"] = max_value
    custom = {"drawStyle": draw, "lineWidth": 1, "fillOpacity": 10 if draw == "line" else 80,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    options = {"legend": {"displayMode": "table", "placement": "bottom",
                          "calcs": ["mean", "max", "lastNotNull"], "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return _panel("timeseries", title, description, unit, targets, width=width,
                  height=height, options=options, custom=custom, defaults=defaults)


def stat(title: str, description: str, unit: str, targets: list[Json], *, width: int = 6,
         height: int = 5, thresholds: list[tuple[float | None, str]] | None = None,
         decimals: int | None = None) -> Json:
    """A single big number (the last value), coloured by ``thresholds``."""
    defaults: Json = {"thresholds": threshold_steps(thresholds or [(None, "green")])}
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {"colorMode": "value", "graphMode": "area", "justifyMode": "auto",
               "orientation": "auto", "textMode": "auto",
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return _panel("stat", title, description, unit, targets, width=width, height=height,
                  options=options, defaults=defaults)


def bargauge(title: str, description: str, unit: str, targets: list[Json], *,
             width: int = 12, height: int = 8) -> Json:
    """Horizontal bars, one per series (e.g. failures per reason over the range)."""
    options = {"displayMode": "gradient", "orientation": "horizontal",
               "showUnfilled": True, "valueMode": "color",
               "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return _panel("bargauge", title, description, unit, targets, width=width, height=height,
                  options=options)


def table(title: str, description: str, unit: str, targets: list[Json], *, width: int = 12,
          height: int = 8, hide: tuple[str, ...] = ("Time",)) -> Json:
    """A table of instant-query results, one row per series (labels as columns)."""
    options = {"showHeader": True, "cellHeight": "sm",
               "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    targets = [{**t, "format": "table", "instant": True, "range": False} for t in targets]
    panel = _panel("table", title, description, unit, targets, width=width, height=height,
                   options=options)
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {name: True for name in hide}}},
    ]
    return panel


def state_timeline(title: str, description: str, unit: str, targets: list[Json], *,
                   mappings: list[Json], width: int = 24, height: int = 8) -> Json:
    """Coloured bands per series over time (e.g. pass/fail of each check)."""
    options = {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
               "alignValue": "left", "legend": {"displayMode": "list", "placement": "bottom",
                                                "showLegend": True}}
    return _panel("state-timeline", title, description, unit, targets, width=width,
                  height=height, options=options, defaults={"mappings": mappings})


def value_map(mapping: dict[str, tuple[str, str]]) -> list[Json]:
    """Value mappings: ``{"1": ("pass", "green")}`` → Grafana's mapping list."""
    return [{"type": "value", "options": {
        value: {"text": text, "color": color, "index": i}
        for i, (value, (text, color)) in enumerate(mapping.items())}}]


def threshold_steps(steps: list[tuple[float | None, str]]) -> Json:
    """``[(None, "red"), (0.99, "green")]`` → an absolute thresholds block."""
    return {"mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in steps]}


def row(title: str) -> Json:
    """A collapsible row header (no queries, so no unit or description needed)."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": 0}}


def layout(panels: list[Json]) -> list[Json]:
    """Place panels left to right, wrapping at the grid width; give each a stable id."""
    x = y = line_height = 0
    placed = []
    for panel_id, panel in enumerate(panels, start=1):
        width, height = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if panel["type"] == "row" or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        placed.append({**panel, "id": panel_id,
                       "gridPos": {"h": height, "w": width, "x": x, "y": y}})
        x += width
        line_height = max(line_height, height)
        if panel["type"] == "row":
            x, y, line_height = 0, y + height, 0
    return placed


def datasource_variable() -> Json:
    """The Prometheus data source to query, chosen by the viewer."""
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "refresh": 1, "regex": "", "hide": 0,
            "current": {}, "options": [], "includeAll": False, "multi": False}


def query_variable(name: str, label: str, metric: str, label_name: str,
                   matchers: str = "", description: str = "") -> Json:
    """A multi-value ``label_values`` variable with "All" as ``.*`` (use with ``=~``)."""
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    query = f"label_values({selector}, {label_name})"
    return {"name": name, "label": label, "type": "query", "description": description,
            "datasource": DATASOURCE, "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery",
                      "qryType": 1},
            "refresh": 2, "sort": 1, "regex": "", "hide": 0, "includeAll": True,
            "allValue": ".*", "multi": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": []}


def textbox_variable(name: str, label: str, value: str, description: str) -> Json:
    """A free-text variable with a default (e.g. the SLO target)."""
    return {"name": name, "label": label, "type": "textbox", "description": description,
            "query": value, "hide": 0,
            "current": {"selected": False, "text": value, "value": value},
            "options": [{"selected": True, "text": value, "value": value}]}


def load_run_annotation() -> Json:
    """Shade the time ranges where a load run had users running (every board, so a probe
    failure or a burst of 429s can be read against "a load test was on")."""
    return {"name": "Load runs", "datasource": DATASOURCE, "enable": True, "hide": False,
            "iconColor": "rgba(255, 152, 48, 0.6)", "expr": LOAD_RUN_EXPR, "step": "15s",
            "titleFormat": "load run", "textFormat": "{{value}} users",
            "useValueForTime": False}


#: Where a load run has users: one series, present only while the run is on.
LOAD_RUN_EXPR = f"sum({USERS}) > 0"


def dashboard(uid: str, title: str, *, description: str, panels: list[Json],
              variables: list[Json], tags: list[str], refresh: str = "30s",
              time_from: str = "now-1h", links: list[Json] | None = None) -> Json:
    """The whole dashboard: fixed uid (so pushes update in place), no numeric id; load
    runs are marked by an annotation on every board."""
    return {
        "uid": uid, "title": title, "description": description, "tags": tags,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "graphTooltip": 1, "timezone": "browser", "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}, load_run_annotation()]},
        "links": links or [{"type": "dashboards", "tags": ["secton"], "asDropdown": True,
                            "title": "Secton dashboards", "includeVars": True,
                            "keepTime": True, "icon": "external link", "targetBlank": False,
                            "tooltip": "", "url": ""}],
        "templating": {"list": variables},
        "panels": layout(panels),
    }
