"""Inline SVG charts, hand-made: no JavaScript, no network, printable.

Every chart is drawn from an already aggregated series (at most a few hundred points), so
its size does not grow with the number of records. Functions return ``Markup`` for the
Jinja template.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from markupsafe import Markup, escape

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
STATUS_COLOURS = {"2xx": "#2ca02c", "3xx": "#17becf", "429": "#ff7f0e", "4xx": "#9467bd",
                  "5xx": "#d62728", "no response": "#7f7f7f", "ok": "#2ca02c",
                  "other": "#d62728"}
W, H = 720, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 14, 34

Points = list[list[float | None]]
#: Lane labels (check @ target, key alias) up to this many characters are shown whole.
LANE_LABEL_CHARS = 44
#: Legend entries (right of a line chart, RIGHT pixels wide) up to this many characters.
LEGEND_CHARS = 21


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step + 1e-9) + 1)]


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def fmt_seconds_axis(value: float) -> str:
    if value and abs(value) < 1:
        return f"{value * 1000:.3g}ms"
    return f"{value:.3g}s"


def line_chart(series: dict[str, Points], *, title: str, y_label: str,
               x_label: str = "seconds since start",
               y_format: Callable[[float], str] = fmt_number,
               x_format: Callable[[float], str] = fmt_number,
               colours: dict[str, str] | None = None) -> Markup:
    """Lines (one per series) on shared axes, legend on the right."""
    xs = [p[0] for pts in series.values() for p in pts if p[0] is not None]
    ys = [p[1] for pts in series.values() for p in pts if p[1] is not None]
    if not xs or not ys:
        return Markup(f'<p class="empty">{escape(title)}: no data to draw.</p>')
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1
    y1 = max(ys) * 1.05 or 1.0
    y0 = min(0.0, min(ys))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + ph - (y - y0) / (y1 - y0) * ph

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>']
    for tick in _nice_ticks(y0, y1):
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(y_format(tick))}</text>')
    for tick in _nice_ticks(x0, x1, 6):
        x = sx(tick)
        parts.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">'
                     f'{escape(x_format(tick))}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{TOP + ph}" y2="{TOP + ph}" '
                 f'class="axis"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + ph}" '
                 f'class="axis"/>')
    parts.append(f'<text x="{LEFT + pw / 2:.0f}" y="{H - 4}" text-anchor="middle" '
                 f'class="label">{escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{TOP + ph / 2:.0f}" text-anchor="middle" class="label" '
                 f'transform="rotate(-90 12 {TOP + ph / 2:.0f})">{escape(y_label)}</text>')
    for index, (name, points) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[index % len(PALETTE)])
        path, pen_up = [], True
        for x, y in points:
            if x is None or y is None:
                pen_up = True
                continue
            path.append(f'{"M" if pen_up else "L"}{sx(x):.1f},{sy(y):.1f}')
            pen_up = False
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.6"/>')
        ly = TOP + 12 + index * 16
        parts.append(f'<rect x="{LEFT + pw + 10}" y="{ly - 8}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{LEFT + pw + 24}" y="{ly + 1}">'
                     f'{escape(_fit(name, LEGEND_CHARS))}<title>{escape(name)}</title>'
                     '</text>')
    parts.append("</svg>")
    return _titled(title, "".join(parts))


def _titled(title: str, svg: str) -> Markup:
    """A visible title above the chart (the SVG <title> is only a tooltip)."""
    return Markup(f'<p class="chart-title">{escape(title)}</p>{svg}')


def lanes_chart(lanes: dict[str, list[list[float]]], *, span_s: float, bucket_s: float,
                title: str, kinds: list[str] | None = None,
                bands: list[tuple[str, float, float]] | None = None) -> Markup:
    """One horizontal lane per name. With ``kinds``, each point is ``[t, count_kind1, ...]``
    drawn as a stacked bar (height ∝ count); without, ``[t, ok_share]`` drawn as a cell
    from red (0) to green (1). ``bands`` are ``(lane, start_s, end_s)`` marked in orange."""
    if not lanes:
        return Markup(f'<p class="empty">{escape(title)}: no data to draw.</p>')
    lane_h, gap = 26, 6
    longest = max(len(name) for name in lanes)
    left = int(min(max(longest, 8), LANE_LABEL_CHARS) * 6.6 + 14)  # labels never cut
    pw = W - left - 20
    height = TOP + len(lanes) * (lane_h + gap) + BOTTOM
    span = max(span_s + bucket_s, 1e-9)
    bw = max(pw * bucket_s / span, 0.8)
    parts = [f'<svg class="chart" viewBox="0 0 {W} {height}" role="img" '
             f'aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>']
    peak = 1
    if kinds:
        peak = max((sum(p[1:]) for pts in lanes.values() for p in pts), default=1) or 1
    for row, (name, points) in enumerate(lanes.items()):
        top = TOP + row * (lane_h + gap)
        parts.append(f'<text x="{left - 6}" y="{top + lane_h / 2 + 4:.0f}" '
                     f'text-anchor="end">{escape(_fit(name))}<title>{escape(name)}</title>'
                     '</text>'
                     f'<rect x="{left}" y="{top}" width="{pw}" height="{lane_h}" '
                     f'class="lane"/>')
        for point in points:
            x = left + point[0] / span * pw
            if kinds:
                base = top + lane_h
                for kind, count in zip(kinds, point[1:], strict=False):
                    if not count:
                        continue
                    h = count / peak * lane_h
                    base -= h
                    parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bw:.1f}" '
                                 f'height="{h:.1f}" fill="{STATUS_COLOURS[kind]}"/>')
            else:
                share = point[1]
                colour = _share_colour(share)
                parts.append(f'<rect x="{x:.1f}" y="{top}" width="{bw:.1f}" '
                             f'height="{lane_h}" fill="{colour}"><title>'
                             f'{share:.1%} ok</title></rect>')
        for lane, start, end in bands or []:
            if lane == name:
                x = left + start / span * pw
                width = max((end - start) / span * pw, 1.5)
                parts.append(f'<rect x="{x:.1f}" y="{top + lane_h + 1}" '
                             f'width="{width:.1f}" height="4" fill="#ff7f0e"/>')
    axis_y = TOP + len(lanes) * (lane_h + gap) + 12
    for tick in _nice_ticks(0, span_s, 6):
        parts.append(f'<text x="{left + tick / span * pw:.1f}" y="{axis_y}" '
                     f'text-anchor="middle">{escape(fmt_number(tick))}</text>')
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{axis_y + 16}" text-anchor="middle" '
                 f'class="label">seconds since start</text></svg>')
    return _titled(title, "".join(parts))


def _fit(name: str, chars: int = LANE_LABEL_CHARS) -> str:
    """A label of at most ``chars`` characters, cut in the middle with an ellipsis (a
    legend entry was cut at 20 silently: two long endpoints could read the same)."""
    if len(name) <= chars:
        return name
    half = (chars - 1) // 2
    return f"{name[:half]}…{name[-half:]}"


def _share_colour(share: float) -> str:
    if share >= 0.999:
        return "#2ca02c"
    if share >= 0.9:
        return "#bcbd22"
    if share > 0:
        return "#ff7f0e"
    return "#d62728"
