"""Render a report summary as self-contained HTML and as Markdown, from one set of filters.

Both templates format figures with the same filters, so the Markdown shows exactly the
numbers the HTML shows (and both come from ``summary.json``). Charts are inline SVG built
from the summary's aggregated series (see charts.py); the HTML has no script, no external
file and no URL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from reports import charts
from reports.stats import STATUS_CLASSES
from secton_harness.ratelimit_model import FIGURE_WORDS, HEADLINE_FIGURES

DASH = "–"


def ms(value: float | None) -> str:
    return DASH if value is None else f"{value * 1000:.1f} ms"


def pct(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def rps(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f}/s"


def num(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def secs(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def when(value: float | None) -> str:
    if value is None:
        return DASH
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def verdict(value: bool | None) -> str:
    return DASH if value is None else ("PASS" if value else "FAIL")


def early_late(value: float | None) -> str:
    """A signed wait (s) as words: never a negative duration shown as a wait."""
    if value is None:
        return DASH
    return f"{secs(abs(value))} {'later than' if value >= 0 else 'earlier than'}"


def budget(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f} %"


def plain(value: Any) -> str:
    """A card value (number, string, dict of retry-after figures) as short text."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value)
    return num(value)


def card_secs(value: float) -> str:
    """Seconds on a rate-limit card: two decimals below 10 s (a 1.85 s cooldown is not
    "1.8 s"), else as everywhere."""
    return f"{value:.2f} s" if 1 <= abs(value) < 10 else secs(value)


def figure_name(name: str) -> str:
    return FIGURE_WORDS.get(name, name.replace("_", " "))


def figure_value(value: Any, name: str) -> str:
    """A card figure with its unit, Retry-After as a sentence (never ``key=value``)."""
    if name == "retry_after" and isinstance(value, dict):
        return retry_after_words(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return evidence_value(value, name)
    if name.endswith("_s"):
        return card_secs(value)
    if name.endswith("_per_min"):
        return f"{num(value)}/min"
    return num(value)


def retry_after_words(value: dict[str, Any]) -> str:
    """``retry_after {present, mean_error_s, max_error_s, mean_signed_error_s, samples}``
    in words; the mapper's error is announced end (send time + value) minus the recovery
    it saw, so positive means the announced wait ran past the recovery."""
    if value.get("present") is None and "present" in value:
        return "not seen (no 429 of this scope)"
    if not value.get("present"):
        return "not sent"
    mean, most = value.get("mean_error_s"), value.get("max_error_s")
    if not isinstance(mean, int | float):
        return "sent; its accuracy was not measured"
    signed = value.get("mean_signed_error_s")
    if isinstance(signed, int | float) and signed < 0:
        side = f"ended {card_secs(-signed)} before the limit lifted"
    elif isinstance(signed, int | float):
        side = f"ended {card_secs(signed)} after the limit had lifted"
    else:
        side = f"was off by {card_secs(mean)}"
    extra = [f"largest error {card_secs(most)}" if isinstance(most, int | float) else None,
             f"{num(value['samples'])} samples" if isinstance(value.get("samples"), int)
             else None]
    detail = "; ".join(e for e in extra if e)
    return f"sent; the announced wait {side} on average" + (f" ({detail})" if detail else "")


def evidence_name(name: str) -> str:
    """An evidence field in words: ``cooldown_bracket_s`` -> ``cooldown bracket``."""
    return name.removesuffix("_s").replace("_", " ")


def evidence_value(value: Any, name: str = "") -> str:
    """An evidence value: seconds for ``*_s`` fields (a pair as a range), words for
    identifiers (``at_once`` -> ``at once``), nested tables as short sentences."""
    seconds = name.endswith("_s")
    if isinstance(value, bool) or value is None:
        return num(value)
    if isinstance(value, int | float):
        return card_secs(value) if seconds else num(value)
    if isinstance(value, str):
        return value.replace("_", " ") if value.isidentifier() else value
    if isinstance(value, list):
        if seconds and len(value) == 2 and all(isinstance(v, int | float) and
                                               not isinstance(v, bool) for v in value):
            return f"{card_secs(value[0])} to {card_secs(value[1])}"
        return ", ".join(evidence_value(v, name) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{evidence_name(str(k))} {evidence_value(v, str(k))}"
                         for k, v in value.items())
    return str(value)


def headline(run: dict[str, Any]) -> str:
    """A run's main figures in one line, for the verdict banner: what a release manager
    reads before any section (requests, rate, p95, errors; availability against the SLO;
    each rate-limit scope's burst and sustained rate)."""
    parts = []
    cap = run.get("capacity") or {}
    if cap.get("available"):
        parts.append(f"{num(cap['requests'])} requests at {rps(cap['rps'])}, "
                     f"p95 {ms(cap['latency']['p95'])}, errors {pct(cap['error_rate'])}, "
                     f"429s {pct(cap['ratelimited_rate'])}"
                     + (f", {num(cap['cancelled'])} cancelled by the stop (no error)"
                        if cap.get("cancelled") else ""))
    up = run.get("uptime") or {}
    if up.get("available"):
        against = (f"SLO {pct(up['slo'], 3)}" if not up.get("slo_not_judged")
                   else "SLO not judged: one result per check")
        parts.append(f"{num(up['results'])} check results, availability "
                     f"{pct(up['availability'], 3)} ({against})")
    for card in (run.get("ratelimits") or {}).get("cards", []):
        shown = {f["name"]: f["value"] for f in card.get("figures", [])}
        figures = [f"{figure_name(name).split(' (')[0]} {figure_value(shown[name], name)}"
                   for name in HEADLINE_FIGURES if name in shown]
        if figures:
            parts.append(f"{card['scope']} limit: {', '.join(figures)}")
    return "; ".join(parts)


def host(value: str | None) -> str:
    """A target URL without its scheme: the report names the target but links nowhere."""
    if not value:
        return DASH
    return value.split("://", 1)[-1]


FILTERS = {"host": host, "ms": ms, "pct": pct, "rps": rps, "num": num, "secs": secs, "when": when,
           "verdict": verdict, "budget": budget, "plain": plain, "early_late": early_late,
           "figure_name": figure_name, "figure_value": figure_value,
           "evidence_name": evidence_name, "evidence_value": evidence_value,
           "headline": headline}


def _charts(summary: dict[str, Any]) -> dict[str, Any]:
    """The charts of one run section (its own time axis)."""
    out: dict[str, Any] = {}
    cap = summary["capacity"]
    if cap.get("available"):
        series = cap["series"]
        out["throughput_endpoint"] = charts.line_chart(
            {**series["throughput_by_endpoint"], **series.get("rolling_rate", {})},
            title="Throughput by endpoint", y_label="requests/s")
        out["throughput_status"] = charts.line_chart(
            series["throughput_by_status"], title="Throughput by status",
            y_label="requests/s", colours=charts.STATUS_COLOURS)
        failing = {k: v for k, v in series["throughput_by_status"].items()
                   if k not in ("2xx", "3xx")}
        if failing:
            out["errors"] = charts.line_chart(
                failing, title="Errors and 429s over time", y_label="requests/s",
                colours=charts.STATUS_COLOURS)
        out["latency"] = charts.line_chart(
            series["latency"], title="Latency percentiles over time", y_label="latency",
            y_format=charts.fmt_seconds_axis)
        out["cdf"] = charts.line_chart(
            {"CDF": cap["cdf"]}, title="Latency CDF", y_label="fraction of requests ≤ x",
            x_label="latency", x_format=charts.fmt_seconds_axis)
        if "tokens_per_s" in series:
            out["tokens"] = charts.line_chart(series["tokens_per_s"], title="Tokens per second",
                                              y_label="tokens/s")
        if len(cap.get("stages") or []) >= 2:  # a steady run has no ramp to draw
            stages = cap["stages"]
            out["stages"] = charts.line_chart(
                {"p95": [[s["offered_rps"], s["p95"]] for s in stages],
                 "p50": [[s["offered_rps"], s["p50"]] for s in stages]},
                title="Latency by offered rate", y_label="latency", x_label="offered req/s",
                y_format=charts.fmt_seconds_axis)
    limits = summary["ratelimits"]
    if limits.get("timeline"):
        tl = limits["timeline"]
        bands = [(i["key"], i["start_s"], i["end_s"]) for i in limits["intervals_429"]]
        out["timeline"] = charts.lanes_chart(
            tl["lanes"], span_s=tl["span_s"], bucket_s=tl["bucket_s"],
            title="Requests per key by status", kinds=["ok", "429", "other"], bands=bands)
    up = summary["uptime"]
    if up.get("available") and all(t["results"] <= 1 for t in up["per_target"]):
        # probe --once: one result per check is a table row, not a timeline (drawn, it
        # was a few cells across a fraction of a second)
        out["strips"] = Markup('<p class="empty">Each check ran once: no availability '
                               'timeline to draw.</p>')
    elif up.get("available"):
        strips = up["strips"]
        out["strips"] = charts.lanes_chart(strips["lanes"], span_s=strips["span_s"],
                                           bucket_s=strips["bucket_s"],
                                           title="Availability over time")
    return out


def _environment(autoescape: bool) -> Environment:
    env = Environment(loader=PackageLoader("reports", "templates"),
                      autoescape=autoescape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals["STATUS_CLASSES"] = STATUS_CLASSES
    return env


def _run_number(value: float) -> str:
    """An x tick of the trend charts: whole runs only."""
    return f"{value:g}" if value == int(value) else ""


def _trend(summary: dict[str, Any]) -> Markup | None:
    """Three or more load runs: their p95 and ok rate over the runs, in the order given
    (a trend a table of numbers hides; two runs are the table's side by side)."""
    rows = summary.get("comparison") or []
    if len(rows) < 3:
        return None
    runs = "load run (in the order given)"
    return Markup(charts.line_chart(
        {"p95": [[i, r["p95"]] for i, r in enumerate(rows, 1)]},
        title="p95 latency over the load runs", y_label="latency", x_label=runs,
        x_format=_run_number, y_format=charts.fmt_seconds_axis) + charts.line_chart(
        {"ok rate": [[i, r["ok_rps"]] for i, r in enumerate(rows, 1)]},
        title="Ok throughput over the load runs", y_label="requests/s", x_label=runs,
        x_format=_run_number))


def render_html(summary: dict[str, Any]) -> str:
    return _environment(True).get_template("report.html.j2").render(
        s=summary, charts=[_charts(run) for run in summary["runs"]], trend=_trend(summary))


def render_markdown(summary: dict[str, Any]) -> str:
    return _environment(False).get_template("report.md.j2").render(s=summary)
