"""What the history's lists take alike from a query string: a page's ``limit``, the
``cursor`` the previous page gave, and a time range (``since``/``until``, epoch ms).

:func:`paging` reads them (a QueryDict or a dict); :func:`after` keeps the rows past a
cursor (newest first, by time then id). A parameter that cannot be taken raises
:class:`BadQuery`, whose message names it (the views answer it as a 400).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from django.db.models import Q

#: a page: by default, and at most
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_BIGINT = 2**63 - 1


class BadQuery(ValueError):
    """A parameter the history cannot take; the message names the parameter and why."""


def encode_cursor(time: int, pk: int) -> str:
    """The cursor of the page after the row at ``time`` with id ``pk`` (opaque to callers)."""
    return base64.urlsafe_b64encode(f"{time}.{pk}".encode()).decode().rstrip("=")


def decode_cursor(text: str, name: str = "cursor") -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        time_part, _, pk_part = raw.partition(".")
        if not (time_part.isdigit() and pk_part.isdigit()) or len(raw) > 40:
            raise ValueError
        return int(time_part), int(pk_part)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery(f"{name} is not one this API gave") from None


def number(params, name: str, minimum: int = 0, maximum: int = MAX_BIGINT) -> int | None:
    """``params[name]`` as an integer from ``minimum`` to ``maximum``; None if absent."""
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadQuery(f"{name} must be a non-negative integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise BadQuery(f"{name} must be between {minimum} and {maximum}")
    return value


@dataclass(frozen=True)
class Paging:
    since: int | None
    until: int | None
    limit: int
    cursor: tuple[int, int] | None


def paging(params, *, cursor_name: str = "cursor", limit: int = DEFAULT_LIMIT) -> Paging:
    """The range, the limit (``limit`` if not given) and the cursor of ``params``.

    :raises BadQuery: for a number out of range, ``since`` after ``until``, a cursor this
        API did not give.
    """
    since, until = number(params, "since"), number(params, "until")
    if since is not None and until is not None and since > until:
        raise BadQuery("since must not be after until")
    given = number(params, "limit", 1, MAX_LIMIT)
    cursor = (params.get(cursor_name) or "").strip()
    return Paging(
        since=since,
        until=until,
        limit=limit if given is None else given,
        cursor=decode_cursor(cursor, cursor_name) if cursor else None,
    )


def after(rows, time_field: str, cursor: tuple[int, int] | None):
    """``rows`` past ``cursor`` (the time and id of the last row shown), newest first."""
    if cursor is None:
        return rows
    time, pk = cursor
    # the bound on the time alone lets the index's range do the work
    return rows.filter(**{f"{time_field}__lte": time}).filter(
        Q(**{f"{time_field}__lt": time}) | Q(pk__lt=pk)
    )


def where(rows, **lookups):
    """``rows`` filtered by each of ``lookups`` whose value is not None (a filter not given)."""
    return rows.filter(**{name: value for name, value in lookups.items() if value is not None})
