"""Big tables: filtered by text and paged on the server, named in the query string.

Each table of a page has two parameters, ``<table>_q`` (the filter: rows whose text
holds it, case folded) and ``<table>_page`` (from 1, :data:`PAGE_SIZE` rows a page),
so a link to a filtered page of a table can be shared, and the pages work without
JavaScript (a GET form per table, previous/next links keeping the other tables'
parameters). Bad values never fail: a page that is no number is the first, one past
the end is the last; a filter is trimmed and cut to :data:`MAX_FILTER` characters.

The parameters that differ from the first unfiltered page are folded into one string
(:func:`encode`), which a live page's key carries, so the live updates render the same
page and filter as the page did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

#: rows a page
PAGE_SIZE = 100
#: a filter's longest text; the rest is dropped
MAX_FILTER = 200
#: a page number longer than this is "past the end" (its last page)
_MAX_DIGITS = 9

#: each page kind's paged tables, in the page's order
TABLES: dict[str, tuple[str, ...]] = {
    "cluster": ("storms", "supervisors"),
    "supervisors": ("supervisors",),
    "component": ("tasks", "errors"),
}


def parse_page(value) -> int:
    """A page number from the query: 1 unless it is a positive ASCII number."""
    if not isinstance(value, str):
        return 1
    value = value.strip()
    if not value or not value.isascii() or not value.isdigit():
        return 1
    if len(value.lstrip("0")) > _MAX_DIGITS:
        return 10**_MAX_DIGITS  # past any end: the last page
    return max(1, int(value))


def parse_filter(value) -> str:
    if not isinstance(value, str):
        return ""
    return value.strip()[:MAX_FILTER]


def parse(query: Mapping, kind: str) -> dict[str, tuple[str, int]]:
    """Each of ``kind``'s tables' (filter, page) from ``query`` (a dict of one value each,
    or a Django QueryDict)."""
    return {
        name: (parse_filter(query.get(f"{name}_q")), parse_page(query.get(f"{name}_page")))
        for name in TABLES.get(kind, ())
    }


def _pairs(params: Mapping[str, tuple[str, int]]) -> list[tuple[str, str]]:
    pairs = []
    for name in sorted(params):
        q, page = params[name]
        if q:
            pairs.append((f"{name}_q", q))
        if page != 1:
            pairs.append((f"{name}_page", str(page)))
    return pairs


def encode(params: Mapping[str, tuple[str, int]]) -> str:
    """The parameters that differ from the default, as a query string ("" when none)."""
    return urlencode(_pairs(params))


def decode(text: str, kind: str) -> dict[str, tuple[str, int]]:
    """What :func:`encode` folded (a key's last part), parsed again as a query."""
    return parse(dict(parse_qsl(text or "", keep_blank_values=True)), kind)


def key_part(params: Mapping[str, tuple[str, int]]) -> tuple[str, ...]:
    """What a page's key adds for its tables: nothing on the first unfiltered pages."""
    text = encode(params)
    return (text,) if text else ()


def _text_of(values: Iterable) -> str:
    return " ".join("" if v is None else str(v) for v in values).casefold()


@dataclass(frozen=True)
class Table:
    """One table's page: its rows and how to reach the others."""

    name: str
    q: str
    page: int
    pages: int
    total: int
    matching: int
    first: int  # the first row's number on this page (1-based; 0 when none)
    last: int
    rows: Sequence
    prev_query: str | None
    next_query: str | None
    others: tuple[tuple[str, str], ...]  # the page's other parameters, for the form

    @property
    def paged(self) -> bool:
        return self.pages > 1

    @property
    def clear_query(self) -> str:
        """This table unfiltered, the rest of the page as it is."""
        return "?" + urlencode(self.others)


def table(
    name: str,
    rows: Sequence,
    text: Callable[[object], Iterable],
    params: Mapping[str, tuple[str, int]],
    extra: Sequence[tuple[str, str]] = (),
) -> Table:
    """The page of ``rows`` that ``params[name]`` asks for; ``text(row)`` is what a filter
    searches in a row; ``extra``, the page's parameters other than its tables' (kept by
    the links and the form)."""
    q, page = params.get(name, ("", 1))
    total = len(rows)
    if q:
        needle = q.casefold()
        rows = [r for r in rows if needle in _text_of(text(r))]
    matching = len(rows)
    pages = max(1, -(-matching // PAGE_SIZE))
    page = min(page, pages)
    start = (page - 1) * PAGE_SIZE
    shown = rows[start : start + PAGE_SIZE]

    def query(to_page: int) -> str:
        return "?" + urlencode([*extra, *_pairs({**params, name: (q, to_page)})])

    others = [*extra, *_pairs({k: v for k, v in params.items() if k != name})]
    return Table(
        name=name,
        q=q,
        page=page,
        pages=pages,
        total=total,
        matching=matching,
        first=start + 1 if shown else 0,
        last=start + len(shown),
        rows=shown,
        prev_query=query(page - 1) if page > 1 else None,
        next_query=query(page + 1) if page < pages else None,
        others=tuple(others),
    )
