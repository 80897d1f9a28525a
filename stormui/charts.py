"""The storm and component pages' charts, as SVG drawn on the server.

Two charts a page: emitted, acked and failed tuples per second, and tasks alive. The
last hour comes from the points :mod:`stormui.rates` keeps in the process (one per
heartbeat poll); longer ranges (:data:`RANGES`, chosen by ``?range=``) from the
history's time series (:mod:`stormui.history.series`), where a time no dashboard
recorded is a gap in the line. No script: the SVG is in the page, coloured by CSS
classes alone (light and dark), and each chart says its latest value and range in
words, for screen readers and for anyone who would rather read.
"""

from __future__ import annotations

import logging
import threading

from django.utils.html import escape
from django.utils.safestring import mark_safe

from . import rates as _rates
from .rates import CHART_SECS, Point

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 600.0, 140.0
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48.0, 8.0, 8.0, 20.0

#: (field of a point, label, unit) of each line of each chart
RATE_LINES = (("emitted", "Emitted", "/s"), ("acked", "Acked", "/s"), ("failed", "Failed", "/s"))
ALIVE_LINES = (("alive", "Tasks alive", ""),)

#: the charts' ranges: (name in the query, its length in seconds, in words)
RANGES = (
    ("1h", 3600, "the last hour"),
    ("6h", 6 * 3600, "the last 6 hours"),
    ("1d", 86400, "the last day"),
    ("7d", 7 * 86400, "the last 7 days"),
    ("30d", 30 * 86400, "the last 30 days"),
)
DEFAULT_RANGE = "1h"
_RANGES = {name: (secs, words) for name, secs, words in RANGES}


def parse_range(value) -> str:
    """A chart range from the query string: anything else is the default (the last hour)."""
    return value if isinstance(value, str) and value in _RANGES else DEFAULT_RANGE


def range_words(name: str) -> str:
    return _RANGES[name][1]


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


def _duration(secs: float) -> str:
    if secs < 2 * 3600:
        return _minutes(secs)
    if secs < 2 * 86400:
        hours = round(secs / 3600)
        return f"{hours} hours"
    return f"{round(secs / 86400)} days"


def _words(points, lines, fmt) -> list[str]:
    """Each line's latest value and range in words."""
    if not points:
        return []
    span = points[-1].time - points[0].time
    over = f"over the last {_duration(span)}" if span > 0 else "one reading so far"
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


def svg(
    points,
    lines,
    *,
    chart_id: str,
    title: str,
    now: float,
    fmt=rate,
    span: float = CHART_SECS,
    ago: str = "1 hour ago",
    gap: float | None = None,
) -> str:
    """A chart of ``lines`` over the ``span`` seconds up to ``now``, escaped markup; a line
    breaks where its value is unknown or where two points are more than ``gap`` seconds
    apart (nothing was recorded between), and a lone point is drawn as a dot."""
    top = max(
        (getattr(p, f) for p in points for f, _, _ in lines if getattr(p, f) is not None),
        default=0,
    )
    y_max = _nice_max(float(top))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    start = now - span

    def x(t):
        return PAD_LEFT + plot_w * min(max((t - start) / span, 0.0), 1.0)

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
        f'<text class="chart-label" x="{PAD_LEFT:.0f}" y="{HEIGHT - 4:.0f}">{escape(ago)}</text>',
        f'<text class="chart-label" x="{WIDTH - PAD_RIGHT:.0f}" y="{HEIGHT - 4:.0f}"'
        ' text-anchor="end">now</text>',
    ]
    for field, label, _ in lines:
        segments: list[list[str]] = [[]]
        last = None
        for p in points:
            v = getattr(p, field)
            if v is None or (gap is not None and last is not None and p.time - last > gap):
                if segments[-1]:
                    segments.append([])
            last = p.time
            if v is None:
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


def chart(
    points,
    lines,
    *,
    chart_id: str,
    title: str,
    now: float,
    fmt=rate,
    chart_range=DEFAULT_RANGE,
    gap: float | None = None,
) -> dict:
    """A chart's parts for the template: the SVG, and its words (escaped by the template)."""
    span, words = _RANGES[chart_range]
    ago = "1 hour ago" if chart_range == DEFAULT_RANGE else f"{_duration(span)} ago"
    return {
        "id": chart_id,
        "title": title,
        "svg": svg(
            points,
            lines,
            chart_id=chart_id,
            title=title,
            now=now,
            fmt=fmt,
            span=span,
            ago=ago,
            gap=gap,
        ),
        "words": _words(points, lines, fmt),
        "empty": not points,
        "empty_text": (
            "No figures yet: the chart fills as heartbeats come in."
            if chart_range == DEFAULT_RANGE
            else f"Nothing was recorded in {words}."
        ),
        "lines": [(field, label) for field, label, _ in lines],
    }


def _alive(value) -> str:
    # a stored point's tasks alive is a mean: a dip shows as a fraction
    value = float(value)
    return f"{int(value):,}" if value.is_integer() else f"{value:,.1f}"


_made: dict = {}
_made_lock = threading.Lock()
CACHE_SIZE = 512


def charts(storm, component_id: str | None = None, tracker=None, chart_range=DEFAULT_RANGE):
    """The charts of a storm (``component_id`` None) or of one of its components over
    ``chart_range``, up to the storm view's time: the last hour from the tracker's points,
    made once per view (a view never changes, and the page and each live update of it share
    them); longer ranges from the history, read again once its newest bucket is another."""
    tracker = _rates.TRACKER if tracker is None else tracker
    if chart_range == DEFAULT_RANGE:
        key = (storm.id, component_id, chart_range)
        stamp = storm
    else:
        from .history import series

        span = _RANGES[chart_range][0]
        now_ms = int(storm.as_of * 1000)
        res = series.choose_resolution(
            now_ms - span * 1000, now_ms, now_ms, series.recorder.retention_ms()
        )
        key = (storm.id, component_id, chart_range)
        stamp = (storm.name, series.bucket(now_ms, res))
    with _made_lock:
        hit = _made.get(key)
    if hit is not None and (hit[0] is stamp or (type(stamp) is tuple and hit[0] == stamp)):
        return hit[1]
    gap = None
    if chart_range == DEFAULT_RANGE:
        points = tracker.series(storm.id, component_id, now=storm.as_of)
    else:
        points = stored_points(storm.id, component_id, span, storm.as_of)
        gap = 1.5 * res / 1000  # a bucket or more without a point: the line breaks
    who = storm.name if component_id is None else f"{component_id} of {storm.name}"
    prefix = "storm-chart" if component_id is None else "component-chart"
    words = _RANGES[chart_range][1]
    made = [
        chart(
            points,
            RATE_LINES,
            chart_id=f"{prefix}-rates",
            title=f"Tuples per second of {who}, {words}",
            now=storm.as_of,
            chart_range=chart_range,
            gap=gap,
        ),
        chart(
            points,
            ALIVE_LINES,
            chart_id=f"{prefix}-alive",
            title=f"Tasks alive of {who}, {words}",
            now=storm.as_of,
            fmt=_alive,
            chart_range=chart_range,
            gap=gap,
        ),
    ]
    with _made_lock:
        if len(_made) >= CACHE_SIZE:
            _made.clear()
        _made[key] = (stamp, made)
    return made


def stored_points(storm_id: str, component_id: str | None, span: float, now: float) -> tuple:
    """The history's points of a storm or component over the ``span`` seconds up to
    ``now``, as the tracker's :class:`~stormui.rates.Point` (time in seconds); none when
    the database cannot say."""
    from .history import series

    until = int(now * 1000)
    try:
        _, rows = series.read(storm_id, component_id or "", until - int(span * 1000), until, until)
    except Exception:  # the page shows, without its long charts
        log.exception("reading the time series of %s failed", storm_id)
        return ()
    return tuple(
        Point(t / 1000, emitted, acked, failed, alive, transferred)
        for t, emitted, transferred, acked, failed, alive, _errors in rows
    )


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
