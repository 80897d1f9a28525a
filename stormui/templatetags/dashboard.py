"""Filters for the pages: UTC times, relative ages, durations and counts."""

import hashlib
from datetime import UTC, datetime

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .. import charts, logs

register = template.Library()

# errors younger than this are highlighted
RECENT_ERROR_SECS = 30 * 60


def _utc(time_secs) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(time_secs), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def duration(secs) -> str:
    """``3d 4h``, ``2h 5m``, ``5m 12s``, ``12s``; an em dash when unknown."""
    if secs is None or secs == "":
        return "—"
    secs = max(int(secs), 0)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


@register.filter
def ago_secs(age) -> str:
    """An age in seconds as "3m ago"."""
    if age is None or age == "":
        return "—"
    age = int(age)
    if age < 0:
        # the writer's clock is ahead of ours
        return "just now"
    if age < 60:
        return f"{age}s ago"
    if age < 3600:
        return f"{age // 60}m ago"
    if age < 86400:
        return f"{age // 3600}h ago"
    return f"{age // 86400}d ago"


@register.filter
def ago(time_secs, now) -> str:
    """The age of an epoch time at ``now``, as "3m ago"."""
    if time_secs is None or now is None:
        return "—"
    return ago_secs(int(float(now) - float(time_secs)))


@register.filter
def utc(time_secs) -> str:
    """``2024-05-01 12:03:04 UTC``."""
    dt = _utc(time_secs)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "—"


@register.filter
def utc_clock(time_secs) -> str:
    """``12:03:04 UTC``."""
    dt = _utc(time_secs)
    return dt.strftime("%H:%M:%S UTC") if dt else "—"


@register.filter
def iso(time_secs) -> str:
    """``2024-05-01T12:03:04Z``, for ``<time datetime>``."""
    dt = _utc(time_secs)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else ""


@register.filter
def is_recent(time_secs, now) -> bool:
    """True for an error reported less than 30 minutes before ``now``."""
    if time_secs is None or now is None:
        return False
    return float(now) - float(time_secs) < RECENT_ERROR_SECS


@register.simple_tag
def when(time_secs, now):
    """A relative age with the UTC time beside it, machine-readable for live updates."""
    if time_secs is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-epoch="{}" title="{}">{}</time>',
        iso(time_secs),
        int(time_secs),
        utc(time_secs),
        ago(time_secs, now),
    )


@register.simple_tag
def stamp(time_secs, now):
    """The full UTC time, then its relative age."""
    if time_secs is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-epoch="{}">{}</time> <span class="ago">{}</span>',
        iso(time_secs),
        int(time_secs),
        utc(time_secs),
        ago(time_secs, now),
    )


@register.filter
def count(value) -> str:
    """An integer with thousands separators; an em dash when unknown."""
    if value is None or value == "":
        return "—"
    return f"{int(value):,}"


@register.filter
def ms(value) -> str:
    """A latency in milliseconds, two decimals; an em dash when unknown."""
    if value is None or value == "":
        return "—"
    return f"{float(value):,.2f}"


@register.filter
def get(mapping, key):
    """``mapping[key]``, or None."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def hostport(host, port) -> str:
    if host is None and port is None:
        return "—"
    return f"{host or '?'}:{port if port is not None else '?'}"


@register.filter
def sub(a, b):
    return int(a) - int(b)


@register.filter
def first_line(text) -> str:
    """The first non-empty line of an error, for tables; the full text is one click away."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


@register.simple_tag
def href(name, *args):
    """Like ``{% url %}``, but an id read from ZooKeeper that no URL can hold gives ``#``.

    Component and node ids come from node data, not node names, so they may hold a ``/``.
    """
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return "#"


@register.filter
def at_least(value, floor):
    return max(int(value), int(floor))


@register.simple_tag
def tick_secs() -> str:
    """How often the relay ticks every socket: a page hearing nothing for two says so."""
    return f"{settings.STORMUI_TICK_SECS:g}"  # stormui.live.TICK_SECS


@register.simple_tag
def dom_id(prefix: str, *parts) -> str:
    """A stable element id for a row or item named by ``parts`` (ids may hold any
    character; an element id should not): the live pages' morph keeps an element by its id,
    so a row that moves, or an item put on top, is moved, not rewritten."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:16]}"


@register.simple_tag
def log_link(host, port, storm_id=None, task_id=None) -> str:
    """A worker's log link (``STORMUI_LOGVIEWER_URL``), or ``""`` when there is none."""
    return logs.log_link(host, port, storm_id, task_id) or ""


@register.filter(name="rate")
def rate_filter(value) -> str:
    """Tuples per second; an em dash when unknown (no two heartbeats yet)."""
    return charts.rate(value)
