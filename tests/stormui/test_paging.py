"""Big tables: filtered and paged on the server, named in the query string, the same live."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qsl

import pytest
from django.test import Client

from bench.table_paging import COMPONENT, STORM, ViewSource, synthetic_view
from stormui import live, pages, paging, views
from stormui.consumers import ClusterConsumer, StormConsumer

HOSTILE = "<script>alert(1)</script>\"'&"


def rows(n):
    return [f"row {i:04d}" for i in range(1, n + 1)]


def text(row):
    return (row,)


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, page",
    [
        (None, 1),
        ("", 1),
        ("0", 1),
        ("-1", 1),
        ("abc", 1),
        ("1.5", 1),
        ("2e3", 1),
        ("\uff12", 1),  # a full-width 2: a digit, not an ASCII one
        (" 3 ", 3),
        ("007", 7),
        ("999999999", 999999999),
        ("9" * 5000, 10**9),  # past any end (and no int() of 5,000 digits)
        (["2"], 1),
    ],
)
def test_a_page_number_is_a_positive_ascii_number_or_the_first(value, page):
    assert paging.parse_page(value) == page


def test_a_filter_is_trimmed_and_cut():
    assert paging.parse_filter("  storm  ") == "storm"
    assert paging.parse_filter(None) == ""
    assert paging.parse_filter("x" * 1000) == "x" * paging.MAX_FILTER


def test_each_page_kind_reads_its_own_tables():
    query = {"storms_q": "a", "storms_page": "2", "tasks_page": "3", "supervisors_page": "x"}
    assert paging.parse(query, "cluster") == {"storms": ("a", 2), "supervisors": ("", 1)}
    assert paging.parse(query, "supervisors") == {"supervisors": ("", 1)}
    assert paging.parse(query, "component") == {"tasks": ("", 3), "errors": ("", 1)}
    assert paging.parse(query, "task") == {}


def test_a_key_names_only_what_differs_from_the_first_unfiltered_page():
    default = paging.parse({}, "cluster")
    assert paging.encode(default) == "" and paging.key_part(default) == ()
    params = paging.parse({"supervisors_page": "4", "storms_q": "a&b=c"}, "cluster")
    (part,) = paging.key_part(params)
    assert part == "storms_q=a%26b%3Dc&supervisors_page=4"
    assert paging.decode(part, "cluster") == params
    assert paging.decode("", "cluster") == default


# -- a table's page ----------------------------------------------------------------------


def test_an_empty_table_has_one_empty_page():
    t = paging.table("tasks", [], text, paging.parse({"tasks_page": "5"}, "component"))
    assert (t.page, t.pages, t.total, t.matching, t.first, t.last) == (1, 1, 0, 0, 0, 0)
    assert list(t.rows) == [] and t.prev_query is None and t.next_query is None
    assert not t.paged


def test_exactly_a_page_of_rows_is_one_page_and_one_more_is_two():
    t = paging.table("tasks", rows(100), text, {})
    assert (t.pages, t.first, t.last, t.next_query) == (1, 1, 100, None)
    t = paging.table("tasks", rows(101), text, {})
    assert (t.pages, t.first, t.last) == (2, 1, 100)
    assert t.next_query == "?tasks_page=2" and t.prev_query is None
    t = paging.table("tasks", rows(101), text, paging.parse({"tasks_page": "2"}, "component"))
    assert list(t.rows) == ["row 0101"] and (t.first, t.last) == (101, 101)
    assert t.prev_query == "?" and t.next_query is None


@pytest.mark.parametrize("page, shown", [("0", 1), ("-1", 1), ("x", 1), ("3", 3), ("9" * 30, 3)])
def test_a_page_past_the_end_is_the_last_and_a_bad_one_the_first(page, shown):
    t = paging.table("tasks", rows(250), text, paging.parse({"tasks_page": page}, "component"))
    assert t.page == shown
    assert t.rows[0] == f"row {(shown - 1) * 100 + 1:04d}"
    assert len(t.rows) == (50 if shown == 3 else 100)


def test_a_filter_keeps_the_rows_holding_its_text_case_folded_then_pages_them():
    params = paging.parse({"tasks_q": "ROW 01", "tasks_page": "2"}, "component")
    t = paging.table("tasks", rows(250), text, params)
    # row 0100 .. row 0199: 100 rows, one page; page 2 asked, the last (1) shown
    assert (t.total, t.matching, t.pages, t.page) == (250, 100, 1, 1)
    assert t.rows[0] == "row 0100" and t.rows[-1] == "row 0199"


def test_the_links_keep_the_other_tables_and_the_page_parameters():
    params = paging.parse({"tasks_page": "2", "errors_q": "boom"}, "component")
    t = paging.table("tasks", rows(350), text, params, (("window", "600"),))
    assert dict(parse_qsl(t.next_query[1:])) == {
        "window": "600",
        "errors_q": "boom",
        "tasks_page": "3",
    }
    assert dict(parse_qsl(t.prev_query[1:])) == {"window": "600", "errors_q": "boom"}
    # the form's hidden fields: everything but its own table's; clearing keeps them too
    assert t.others == (("window", "600"), ("errors_q", "boom"))
    assert dict(parse_qsl(t.clear_query[1:])) == {"window": "600", "errors_q": "boom"}


# -- the pages ---------------------------------------------------------------------------


@pytest.fixture
def big(monkeypatch):
    """2,000 tasks in one component (an error on every tenth), 250 storms, 130 supervisors,
    served by the views from one view."""
    view = synthetic_view(2000, storms=250, supervisors=130)
    monkeypatch.setattr(views, "get_source", lambda: ViewSource(view))
    return view


def get(url) -> str:
    response = Client().get(url)
    assert response.status_code == 200, url
    return response.content.decode("utf-8")


def row_ids(html: str, prefix: str) -> list[str]:
    return re.findall(rf'<tr id="({prefix}-[^"]+)"', html)


COMPONENT_URL = f"/storms/{STORM}/components/{COMPONENT}/"


@pytest.mark.django_db
def test_the_cluster_page_pages_and_filters_storms_and_supervisors(big):
    html = get("/")
    assert len(row_ids(html, "storm")) == 100 and len(row_ids(html, "sup")) == 100
    assert "1–100 of 250" in html and "page 1 of 3" in html
    assert 'href="?storms_page=2"' in html and 'href="?supervisors_page=2"' in html
    html = get("/?storms_page=3&supervisors_q=sup-0012")
    assert len(row_ids(html, "storm")) == 50 and "201–250 of 250" in html
    # a supervisors' filter: sup-00120 .. sup-00129
    assert len(row_ids(html, "sup")) == 10
    assert "matching “sup-0012” (130 in all)" in html
    # each table's links and form keep the other's parameters
    assert 'href="?storms_page=2&amp;supervisors_q=sup-0012"' in html
    assert '<input type="hidden" name="storms_page" value="3">' in html
    assert '<input type="hidden" name="supervisors_q" value="sup-0012">' in html
    # past the end: the last page; not a number: the first
    assert "201–250 of 250" in get("/?storms_page=99999999999999999999")
    assert "1–100 of 250" in get("/?storms_page=abc&supervisors_page=-3")


@pytest.mark.django_db
def test_a_filter_that_matches_nothing_says_so(big):
    html = get("/?storms_q=nothing-like-it")
    assert row_ids(html, "storm") == [] and 'id="storms-none-match"' in html
    assert "No storms are running." not in html


@pytest.mark.django_db
def test_hostile_filter_text_is_escaped_everywhere(big):
    from urllib.parse import quote

    for url in ("/", "/supervisors/", COMPONENT_URL):
        query = "&".join(f"{t}_q={quote(HOSTILE)}" for t in ("storms", "supervisors", "tasks"))
        html = get(f"{url}?{query}&errors_q={quote(HOSTILE)}")
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_the_component_page_pages_tasks_and_errors(big):
    html = get(COMPONENT_URL)
    tasks = row_ids(html, "task")
    assert tasks == [f"task-{t}" for t in range(1, 101)]
    errors = re.findall(r'<li id="error-[0-9a-f]+"', html)
    assert len(errors) == 100  # of 200
    assert "1–100 of 2,000" in html and "1–100 of 200" in html
    html = get(COMPONENT_URL + "?window=600&tasks_page=2&errors_q=task%2019")
    assert row_ids(html, "task") == [f"task-{t}" for t in range(101, 201)]
    # task 19x0 and 190: the errors whose text holds "task 19"
    assert len(re.findall(r'<li id="error-[0-9a-f]+"', html)) == 11
    assert 'href="?window=600&amp;errors_q=task+19&amp;tasks_page=3"' in html
    assert '<input type="hidden" name="window" value="600">' in html
    # a task filter reads its state, host and last error as well as its id
    html = get(COMPONENT_URL + "?tasks_q=dead")
    assert row_ids(html, "task") == [f"task-{t}" for t in range(7, 701, 7)]


@pytest.mark.django_db
def test_the_supervisors_page_pages_its_table_and_details(big):
    html = get("/supervisors/?supervisors_page=2")
    assert len(row_ids(html, "sup")) == 30
    assert "101–130 of 130" in html and 'href="?"' in html


# -- live: the same page and filter ------------------------------------------------------


def key_of(consumer, query: str, storm_id=None) -> tuple:
    consumer.scope = {"query_string": query.encode(), "url_route": {"kwargs": {}}}
    if storm_id is not None:
        consumer.scope["url_route"]["kwargs"]["storm_id"] = storm_id
    assert asyncio.run(consumer.admit())
    return consumer.page_key


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, socket_query, kind",
    [
        ("/?storms_page=2&storms_q=big&supervisors_page=9", None, "cluster"),
        ("/supervisors/?supervisors_page=2", "page=supervisors", "supervisors"),
        (COMPONENT_URL + "?window=600&tasks_page=7&errors_q=task", None, "component"),
    ],
)
def test_a_socket_names_the_paged_page_and_its_regions_are_the_page(big, url, socket_query, kind):
    query = url.partition("?")[2]
    if kind == "component":
        consumer = StormConsumer()
        consumer.source = ViewSource(big)
        key = key_of(consumer, f"component={COMPONENT}&{query}", STORM)
        assert key[:4] == ("component", STORM, COMPONENT, "600")
    else:
        consumer = ClusterConsumer()
        consumer.source = ViewSource(big)
        key = key_of(consumer, f"{socket_query}&{query}" if socket_query else query)
        assert key[0] == kind
    assert paging.decode(key[-1], kind) == paging.parse(dict(parse_qsl(query)), kind)
    html = get(url)
    regions = live.page_message(key, big)["html"]
    assert list(regions) == [e for e, _ in pages.STATUS_REGIONS + pages.REGIONS[kind]]
    for element, fragment in regions.items():
        assert html.count(f'id="{element}"') == 1, element
        assert fragment.strip() in html, element


@pytest.mark.django_db
def test_the_first_unfiltered_pages_keep_their_keys(big):
    consumer = ClusterConsumer()
    consumer.source = ViewSource(big)
    assert key_of(consumer, "storms_page=1&storms_q=") == ("cluster",)
    assert key_of(consumer, "page=supervisors&supervisors_page=abc") == ("supervisors",)


# -- the error feed: its own filters, paged ----------------------------------------------


def feed_items(html: str) -> int:
    return len(re.findall(r'<li id="error-[0-9a-f]+"', html))


@pytest.mark.django_db
def test_the_error_feed_pages_keeping_its_filters(big):
    html = get("/errors/")
    assert feed_items(html) == 100 and 'id="error-feed"' in html
    assert "Errors <span" in html and "1–100</span> of <span" in html
    assert 'href="?errors_page=2"' in html
    html = get("/errors/?q=failed&errors_page=2")
    assert feed_items(html) == 100 and "101–200 of 200" in html
    # a later page is not the feed the newest errors stream into
    assert 'id="error-feed"' not in html and 'id="error-feed-page"' in html
    assert 'href="?q=failed"' in html
    assert "101–200 of 200" in get("/errors/?errors_page=" + "9" * 40)
    assert 'id="error-feed"' in get("/errors/?errors_page=-2")
    html = get("/errors/?q=task+19")
    assert feed_items(html) == 11 and 'id="errors-pager"' not in html


@pytest.mark.django_db
def test_the_error_feed_socket_sends_the_page_it_names(big):
    import json

    from stormui.consumers import ErrorsConsumer, _query
    from stormui.forms import parse_error_filter

    html = get("/errors/?q=failed&errors_page=2")
    consumer = ErrorsConsumer()
    consumer.scope = {"query_string": b"q=failed&errors_page=2"}
    consumer.error_filter = parse_error_filter(_query(consumer.scope))
    consumer.feed_page = paging.parse_page(_query(consumer.scope)["errors_page"])
    snapshot = json.loads(consumer.build_snapshot(big, resync=False))
    for element, fragment in snapshot["html"].items():
        assert fragment.strip() in html, element
    assert "101–200 of 200" in snapshot["html"]["error-feed-region"]
