"""The storm and component pages' charts: the last hour, as SVG drawn on the server.

Two charts a page: emitted, acked and failed tuples per second, and tasks alive,
from the points :mod:`stormui.rates` keeps in the process (one per heartbeat poll).
No script: the SVG is in the page, coloured by CSS classes alone (light and dark),
and each chart says its latest value and range in words, for screen readers and
for anyone who would rather read. Longer ranges come from the history.
"""

from __future__ import annotations

import threading

from django.utils.html import escape
from django.utils.safestring import mark_safe

from . import rates as _rates
from .rates import CHART_SECS

WIDTH, HEIGHT = 600.0, 140.0
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48.0, 8.0, 8.0, 20.0

#: (field of a point, label, unit) of each line of each chart
RATE_LINES = (("emitted", "Emitted", "/s"), ("acked", "Acked", "/s"), ("failed", "Failed", "/s"))
ALIVE_LINES = (("alive", "Tasks alive", ""),)


def rate(value) -> str:
    """Tuples per second in words: an em dash when unknown."""
    if value is None:
        return "—"
    value = float(value)
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _nice_max(value: float) -> float:
    """The top of the y axis: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if scale * step >= value:
            return scale * step
    return scale * 10  # pragma: no cover - the loop always returns


def _minutes(secs: float) -> str:
    mins = max(round(secs / 60), 1)
    return f"{mins} minute{'s' if mins != 1 else ''}"


def _words(points, lines, fmt) -> list[str]:
    """Each line's latest value and range in words."""
    if not points:
        return []
    span = points[-1].time - points[0].time
    over = f"over the last {_minutes(span)}" if span > 0 else "one reading so far"
    out = []
    for field, label, unit in lines:
        values = [getattr(p, field) for p in points if getattr(p, field) is not None]
        latest = getattr(points[-1], field)
        if not values:
            out.append(f"{label}: not known yet.")
            continue
        text = f"{label}: {fmt(latest)}{unit if latest is not None else ''} now"
        text += f"; from {fmt(min(values))} to {fmt(max(values))}{unit} {over}."
        out.append(text)
    return out


def svg(points, lines, *, chart_id: str, title: str, now: float, fmt=rate) -> str:
    """A chart of ``lines`` over the hour up to ``now``, escaped markup; a line breaks where
    its value is unknown, and a lone point is drawn as a dot."""
    top = max(
        (getattr(p, f) for p in points for f, _, _ in lines if getattr(p, f) is not None),
        default=0,
    )
    y_max = _nice_max(float(top))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    start = now - CHART_SECS

    def x(t):
        return PAD_LEFT + plot_w * min(max((t - start) / CHART_SECS, 0.0), 1.0)

    def y(v):
        return PAD_TOP + plot_h * (1.0 - min(float(v) / y_max, 1.0))

    bottom = PAD_TOP + plot_h
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:.0f}'
        f' {HEIGHT:.0f}" role="img" aria-labelledby="{chart_id}-title"'
        f' aria-describedby="{chart_id}-words">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<line class="chart-axis" x1="{PAD_LEFT:.0f}" y1="{bottom:.0f}"'
        f' x2="{WIDTH - PAD_RIGHT:.0f}" y2="{bottom:.0f}"/>',
        f'<line class="chart-grid" x1="{PAD_LEFT:.0f}" y1="{PAD_TOP:.0f}"'
        f' x2="{WIDTH - PAD_RIGHT:.0f}" y2="{PAD_TOP:.0f}"/>',
        f'<text class="chart-label" x="{PAD_LEFT - 4:.0f}" y="{PAD_TOP + 4:.0f}"'
        f' text-anchor="end">{escape(fmt(y_max))}</text>',
        f'<text class="chart-label" x="{PAD_LEFT - 4:.0f}" y="{bottom:.0f}"'
        f' text-anchor="end">0</text>',
        f'<text class="chart-label" x="{PAD_LEFT:.0f}" y="{HEIGHT - 4:.0f}">1 hour ago</text>',
        f'<text class="chart-label" x="{WIDTH - PAD_RIGHT:.0f}" y="{HEIGHT - 4:.0f}"'
        ' text-anchor="end">now</text>',
    ]
    for field, label, _ in lines:
        segments: list[list[str]] = [[]]
        for p in points:
            v = getattr(p, field)
            if v is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append(f"{x(p.time):.1f},{y(v):.1f}")
        drawn = []
        for seg in segments:
            if len(seg) > 1:
                drawn.append(f'<polyline points="{" ".join(seg)}"/>')
            elif seg:
                cx, cy = seg[0].split(",")
                drawn.append(f'<circle cx="{cx}" cy="{cy}" r="2.5"/>')
        if drawn:
            out.append(
                f'<g class="chart-line {field}"><title>{escape(label)}</title>'
                + "".join(drawn)
                + "</g>"
            )
    out.append("</svg>")
    return mark_safe("\n".join(out))  # every text above is escaped


def chart(points, lines, *, chart_id: str, title: str, now: float, fmt=rate) -> dict:
    """A chart's parts for the template: the SVG, and its words (escaped by the template)."""
    return {
        "id": chart_id,
        "title": title,
        "svg": svg(points, lines, chart_id=chart_id, title=title, now=now, fmt=fmt),
        "words": _words(points, lines, fmt),
        "empty": not points,
        "lines": [(field, label) for field, label, _ in lines],
    }


def _alive(value) -> str:
    return f"{int(value):,}"


_made: dict = {}
_made_lock = threading.Lock()
CACHE_SIZE = 512


def charts(storm, component_id: str | None = None, tracker=None) -> list[dict]:
    """The charts of a storm (``component_id`` None) or of one of its components, from the
    tracker's points up to the storm view's time; made once per view (a view never
    changes, and the page and each live update of it share them)."""
    tracker = _rates.TRACKER if tracker is None else tracker
    key = (storm.id, component_id)
    with _made_lock:
        hit = _made.get(key)
    if hit is not None and hit[0] is storm:
        return hit[1]
    points = tracker.series(storm.id, component_id, now=storm.as_of)
    who = storm.name if component_id is None else f"{component_id} of {storm.name}"
    prefix = "storm-chart" if component_id is None else "component-chart"
    made = [
        chart(
            points,
            RATE_LINES,
            chart_id=f"{prefix}-rates",
            title=f"Tuples per second of {who}, the last hour",
            now=storm.as_of,
        ),
        chart(
            points,
            ALIVE_LINES,
            chart_id=f"{prefix}-alive",
            title=f"Tasks alive of {who}, the last hour",
            now=storm.as_of,
            fmt=_alive,
        ),
    ]
    with _made_lock:
        if len(_made) >= CACHE_SIZE:
            _made.clear()
        _made[key] = (storm, made)
    return made


# -- the error groups' counts per hour (stormui.history.errors) --------------------------------

BAR_WIDTH, BAR_HEIGHT = 240.0, 36.0


def hour_bars(counts: dict, start_ms: int, hours: int, *, chart_id: str, title: str) -> str:
    """A small bar chart of ``counts`` (hour start in epoch ms -> count) over the ``hours``
    hours from ``start_ms`` (an hour's start), escaped markup; an hour without errors has no
    bar. Its title says the total and the busiest hour in words."""
    hours = max(int(hours), 1)
    top = max(counts.values(), default=0)
    total = sum(counts.values())
    step = BAR_WIDTH / hours
    words = f"{title}: {total:,} in {hours} hours" + (
        f", at most {top:,} in an hour" if top else ""
    )
    out = [
        f'<svg class="chart hour-chart" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {BAR_WIDTH:.0f} {BAR_HEIGHT:.0f}" role="img"'
        f' aria-labelledby="{escape(chart_id)}-title">',
        f'<title id="{escape(chart_id)}-title">{escape(words)}</title>',
        f'<line class="chart-axis" x1="0" y1="{BAR_HEIGHT - 0.5:.1f}" x2="{BAR_WIDTH:.0f}"'
        f' y2="{BAR_HEIGHT - 0.5:.1f}"/>',
    ]
    for i in range(hours):
        n = counts.get(start_ms + i * 3_600_000, 0)
        if n <= 0:
            continue
        h = max((BAR_HEIGHT - 1) * n / top, 1.5)
        out.append(
            f'<rect class="hour-bar" x="{i * step:.1f}" y="{BAR_HEIGHT - 1 - h:.1f}"'
            f' width="{max(step - 1, 1):.1f}" height="{h:.1f}"><title>{n:,}</title></rect>'
        )
    out.append("</svg>")
    return mark_safe("\n".join(out))  # every text above is escaped or a number
