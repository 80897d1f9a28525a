"""The forms a request is read through: one place each, whichever view or socket reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django import forms

from clusterstate.paths import is_valid_id

from .cluster import ClusterView, ErrorView, select_errors


class ConfirmForm(forms.Form):
    """A page action's confirmation: the storm's name, typed."""

    confirm = forms.CharField(max_length=255, label="Type the storm's name to confirm")

    def __init__(self, *args, storm_name: str, storm_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.storm_name = storm_name
        self.storm_id = storm_id

    def clean_confirm(self):
        typed = self.cleaned_data["confirm"]
        # the page shows the name, or the id for a storm whose name is gone (inactive)
        if typed not in (self.storm_name, self.storm_id):
            raise forms.ValidationError(
                "That is not this storm's name; type %(name)s to confirm.",
                params={"name": self.storm_name},
            )
        return typed


# kill's wait before the removal, in seconds: at most, and what the form offers
MAX_KILL_WAIT_SECS = 600
DEFAULT_KILL_WAIT_SECS = 30


class KillForm(ConfirmForm):
    """Kill's confirmation: the storm's name, typed, and the wait before its removal."""

    wait = forms.IntegerField(
        min_value=0,
        max_value=MAX_KILL_WAIT_SECS,
        initial=DEFAULT_KILL_WAIT_SECS,
        label="Remove after (seconds)",
    )


# -- the error feed's filter -----------------------------------------------------------------

# the API's feed: how many errors it answers unless asked, and at most
ERRORS_DEFAULT_LIMIT = 100
ERRORS_MAX_LIMIT = 1000


class BadErrorFilter(ValueError):
    """A filter the error feed cannot take; the message says which parameter and why."""


@dataclass(frozen=True)
class ErrorFilter:
    """Which errors the feed shows: :func:`stormui.cluster.select_errors`'s arguments."""

    storm: str | None = None
    component: str | None = None
    text: str | None = None
    since: int | None = None
    limit: int | None = None

    def select(self, view: ClusterView) -> list[ErrorView]:
        """The view's errors this filter selects, newest first."""
        return select_errors(
            view,
            storm=self.storm,
            component=self.component,
            since=self.since,
            text=self.text,
            limit=self.limit,
        )

    def fields(self) -> dict[str, str]:
        """The error page's form fields, as the filter fills them."""
        return {"storm": self.storm or "", "component": self.component or "", "q": self.text or ""}


def parse_error_filter(params: Mapping[str, str], *, api: bool = False) -> ErrorFilter:
    """The error filter a query asks for: the page's and its socket's, or the API's.

    The page and the socket read ``storm``, ``component`` and ``q``, trimmed,
    and refuse nothing: a filter that names nothing shows nothing. The API
    (``api=True``) reads ``storm``, ``component``, ``text``, ``since`` and
    ``limit`` as Storm's feed does, and refuses what it cannot take.

    :raises BadErrorFilter: for the API, an id that could not be one, or a
        ``since`` or ``limit`` that is not a whole number in its range.
    """
    if not api:
        storm, component, text = (
            (params.get(name) or "").strip() or None for name in ("storm", "component", "q")
        )
        return ErrorFilter(storm=storm, component=component, text=text)
    return ErrorFilter(
        storm=_id_param(params, "storm"),
        component=_id_param(params, "component"),
        since=_int_param(params, "since", None, 0),
        limit=_int_param(params, "limit", ERRORS_DEFAULT_LIMIT, 1, ERRORS_MAX_LIMIT),
        text=params.get("text") or None,
    )


def _id_param(params, name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not is_valid_id(raw):
        raise BadErrorFilter(f"{name} is not a valid id")
    return raw


def _int_param(params, name: str, default, minimum: int, maximum: int | None = None):
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadErrorFilter(f"{name} must be a non-negative integer")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise BadErrorFilter(f"{name} must be at least {minimum}{upper}")
    return value
