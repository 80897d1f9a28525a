"""Links to workers' logs, from ``STORMUI_LOGVIEWER_URL`` (``docs/contract/dashboard.md``)."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings


def log_link(host, port, storm_id: str | None = None, task_id: int | None = None) -> str | None:
    """A worker's log in the log viewer, or ``None`` when ``STORMUI_LOGVIEWER_URL`` is unset or
    the worker's host or port is unknown.

    The template's ``{host}``, ``{port}``, ``{storm_id}`` and ``{task_id}`` are filled in
    URL-encoded (``{task_id}`` empty for a worker's own link).
    """
    template = getattr(settings, "STORMUI_LOGVIEWER_URL", None)
    if not template or host is None or port is None:
        return None
    fields = {"host": host, "port": port, "storm_id": storm_id, "task_id": task_id}
    return template.format(
        **{k: quote("" if v is None else str(v), safe="") for k, v in fields.items()}
    )
