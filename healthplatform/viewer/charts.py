"""Trend charts of numeric results, drawn on the server as inline SVG (no chart library, nothing fetched by the
browser): one line per test over time, the reference range as a band, results outside it marked.

The SVG is written here in one pass (``chart_svg``; a template loop per point cost more than the rest of the page
for a resident with hundreds of results), every text in it (a unit, an institution's name) escaped. A chart draws
a test's latest ``MAX_POINTS`` results: more do not fit its width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 360, 140
MAX_POINTS = 100
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 24


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    flag: str
    label: str  # the value, date and institution, shown as the point's tooltip


@dataclass
class Chart:
    """The geometry of one test's trend (SVG user units)."""

    width: int = WIDTH
    height: int = HEIGHT
    points: list[Point] = field(default_factory=list)
    polyline: str = ""
    band: tuple[float, float] | None = None  # (y of the upper limit, height) of the reference band
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)  # (x, label, text-anchor)
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM
    svg: str = ""  # chart_svg's element, set by the page

    @property
    def plot_width(self) -> int:
        return self.plot_right - self.plot_left


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def trend_chart(facts, *, label_of) -> Chart | None:
    """The chart of a test's numeric results (``facts`` with ``number`` and ``when``, any order); None with
    fewer than two. ``label_of(fact)`` gives a point's tooltip."""
    series = sorted((f for f in facts if f.number is not None and f.when is not None), key=lambda f: f.when)
    series = series[-MAX_POINTS:]
    if len(series) < 2:
        return None
    chart = Chart()
    values = [f.number for f in series]
    lows = [f.low for f in series if f.low is not None]
    highs = [f.high for f in series if f.high is not None]
    low, high = (min(lows) if lows else None), (max(highs) if highs else None)
    bottom = min([*values, *(v for v in (low,) if v is not None)])
    top = max([*values, *(v for v in (high,) if v is not None)])
    if top == bottom:
        top, bottom = top + 1, bottom - 1
    margin = (top - bottom) * 0.1
    top, bottom = top + margin, bottom - margin
    start, end = series[0].when.timestamp(), series[-1].when.timestamp()
    span = (end - start) or 1.0
    plot_width = chart.plot_right - chart.plot_left
    plot_height = chart.plot_bottom - chart.plot_top

    def x_of(moment) -> float:
        if end == start:
            return chart.plot_left + plot_width / 2
        return round(chart.plot_left + (moment.timestamp() - start) / span * plot_width, 1)

    def y_of(value: float) -> float:
        return round(chart.plot_top + (top - value) / (top - bottom) * plot_height, 1)

    chart.points = [Point(x_of(f.when), y_of(f.number), f.flag, label_of(f)) for f in series]
    chart.polyline = " ".join(f"{p.x},{p.y}" for p in chart.points)
    if low is not None or high is not None:
        upper = y_of(high) if high is not None else float(chart.plot_top)
        lower = y_of(low) if low is not None else float(chart.plot_bottom)
        chart.band = (upper, round(max(lower - upper, 0.5), 1))
    chart.y_ticks = [(y_of(v), _fmt(v)) for v in sorted({*(v for v in (low, high) if v is not None)})]
    for value in (min(values), max(values)):
        y = y_of(value)
        if all(abs(y - taken) >= 10 for taken, _label in chart.y_ticks):  # labels closer than that overlap
            chart.y_ticks.append((y, _fmt(value)))
    first, last = timezone.localtime(series[0].when).date(), timezone.localtime(series[-1].when).date()
    chart.x_ticks = [(chart.points[0].x, first.isoformat(), "start")]
    if last != first:
        chart.x_ticks.append((chart.points[-1].x, last.isoformat(), "end"))
    return chart


def chart_svg(chart: Chart, *, label: str, range_label: str) -> SafeString:
    """The chart as an inline SVG element (``label``: its accessible name; ``range_label``: the band's title)."""
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" role="img" '
            'aria-label="{2}">',
            chart.width,
            chart.height,
            label,
        )
    ]
    if chart.band:
        parts.append(
            format_html(
                '<rect class="band" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
                chart.plot_left,
                chart.band[0],
                chart.plot_width,
                chart.band[1],
                range_label,
            )
        )
    left, right, top, bottom = chart.plot_left, chart.plot_right, chart.plot_top, chart.plot_bottom
    parts.append(format_html('<line class="axis" x1="{0}" y1="{1}" x2="{2}" y2="{1}"/>', left, bottom, right))
    parts.append(format_html('<line class="axis" x1="{0}" y1="{1}" x2="{0}" y2="{2}"/>', left, top, bottom))
    for y, text in chart.y_ticks:
        parts.append(
            format_html('<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>', left - 4, y, text)
        )
    for x, text, anchor in chart.x_ticks:
        parts.append(format_html('<text x="{}" y="{}" text-anchor="{}">{}</text>', x, chart.height - 8, anchor, text))
    parts.append(format_html('<polyline class="line" points="{}"/>', chart.polyline))
    parts.extend(
        f'<circle class="pt {escape(p.flag)}" cx="{p.x}" cy="{p.y}" r="3.5"><title>{escape(p.label)}</title></circle>'
        for p in chart.points
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every value above is escaped or a number)
