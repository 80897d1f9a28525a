"""One renderer: a live page's regions, sent over its socket, are byte for byte what a reload
of the page renders, and each page's update is rendered once however many sockets show it."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from django.test import Client

from clusterstate import TaskHeartbeat
from stormui import live, pages
from stormui.consumers import CLOSE_NOT_FOUND, ErrorsConsumer, _query
from stormui.forms import parse_error_filter
from stormui.source import get_source
from tests.stormui.conftest import HEALTHY, TROUBLED, bolt_stats
from tests.stormui.test_live import WAIT, connect, receive_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

#: each live page: its URL, the key its socket names, and its socket's path
PAGES = [
    ("/", ("cluster",), "/ws/cluster/"),
    ("/supervisors/", ("supervisors",), "/ws/cluster/?page=supervisors"),
    ("/supervisors/sup-a/", ("supervisor", "sup-a"), "/ws/cluster/?supervisor=sup-a"),
    (f"/storms/{TROUBLED}/", ("storm", TROUBLED, "all-time"), f"/ws/storms/{TROUBLED}/"),
    (
        f"/storms/{TROUBLED}/?window=600",
        ("storm", TROUBLED, "600"),
        f"/ws/storms/{TROUBLED}/?window=600",
    ),
    (
        f"/storms/{HEALTHY}/components/count/?window=10800",
        ("component", HEALTHY, "count", "10800"),
        f"/ws/storms/{HEALTHY}/?component=count&window=10800",
    ),
    # the charts' range: from the history, kept by the live updates
    (
        f"/storms/{TROUBLED}/?range=6h",
        ("storm", TROUBLED, "all-time", "6h"),
        f"/ws/storms/{TROUBLED}/?range=6h",
    ),
    (
        f"/storms/{HEALTHY}/components/count/?range=7d",
        ("component", HEALTHY, "count", "all-time", "", "7d"),
        f"/ws/storms/{HEALTHY}/?component=count&range=7d",
    ),
    (
        f"/storms/{TROUBLED}/tasks/13/",
        ("task", TROUBLED, "13"),
        f"/ws/storms/{TROUBLED}/?task=13",
    ),
    # big tables: a filter and a page (past the end: the last) named in the query
    (
        "/?storms_q=TROUB&supervisors_page=2",
        ("cluster", "storms_q=TROUB&supervisors_page=2"),
        "/ws/cluster/?storms_q=TROUB&supervisors_page=2",
    ),
    (
        "/supervisors/?supervisors_q=sup-a",
        ("supervisors", "supervisors_q=sup-a"),
        "/ws/cluster/?page=supervisors&supervisors_q=sup-a",
    ),
    (
        f"/storms/{HEALTHY}/components/count/?window=10800&tasks_q=1&errors_page=3",
        ("component", HEALTHY, "count", "10800", "errors_page=3&tasks_q=1"),
        f"/ws/storms/{HEALTHY}/?component=count&window=10800&tasks_q=1&errors_page=3",
    ),
]


def _page_and_view(url: str):
    """The page's HTML and the view it was rendered from: the source's view was the same
    object before and after the request (a view is replaced, never changed, so the page
    saw that one), tried until it was."""
    source = get_source()
    client = Client()
    for _ in range(20):
        before = source.cluster_view()
        response = client.get(url)
        if source.cluster_view() is before:
            assert response.status_code == 200, url
            return response.content.decode("utf-8"), before
    raise AssertionError(f"the view changed during every one of 20 requests of {url}")


@pytest.mark.parametrize("url, key, socket", PAGES, ids=[p[0] for p in PAGES])
def test_every_region_is_what_the_page_renders(known_cluster, url, key, socket):
    html, view = _page_and_view(url)
    message = live.page_message(key, view)
    regions = message["html"]
    expected = [element for element, _ in pages.STATUS_REGIONS + pages.REGIONS[key[0]]]
    assert list(regions) == expected
    for element, fragment in regions.items():
        # the region, byte for byte, and only once
        assert html.count(f'id="{element}"') == 1, element
        assert fragment.strip() in html, element
        assert fragment.lstrip().startswith("<") and f'id="{element}"' in fragment.split(">")[0]


def test_the_error_feed_regions_are_what_the_page_renders(known_cluster):
    html, view = _page_and_view("/errors/?storm=" + TROUBLED + "&q=timeout")
    consumer = ErrorsConsumer()
    consumer.scope = {"query_string": f"storm={TROUBLED}&q=timeout".encode()}
    consumer.error_filter = parse_error_filter(_query(consumer.scope))
    snapshot = json.loads(consumer.build_snapshot(view, resync=False))
    assert [e["error"] for e in snapshot["errors"]] == ["timeout B", "timeout A"]
    assert set(snapshot["html"]) == {"as-of", "zk-status", "error-count", "error-feed-region"}
    for element, fragment in snapshot["html"].items():
        assert fragment.strip() in html, element
    # each error message's item is the same rendering as the feed's rows
    feed = snapshot["html"]["error-feed-region"]
    items = re.findall(r'<li id="error-[0-9a-f]+".*?</li>', feed, re.S)
    assert len(items) == 2
    newest = next(e for e in view.storms[TROUBLED].errors if e.error == "timeout B")
    name = view.storms[TROUBLED].name
    assert pages.render_error_item(newest, name, view.as_of).strip() == items[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("url, key, socket", PAGES, ids=[p[0] for p in PAGES])
async def test_a_socket_names_its_page_and_sends_its_regions(live_cluster, url, key, socket):
    comm = connect(socket)
    assert (await comm.connect(timeout=WAIT))[0]
    snapshot = await comm.receive_json_from(timeout=WAIT)
    assert snapshot["type"] == "snapshot"
    expected = [element for element, _ in pages.STATUS_REGIONS + pages.REGIONS[key[0]]]
    assert list(snapshot["html"]) == expected
    # the relay heard of the page
    relay = live.current_relay()
    assert key in relay.pages
    await comm.disconnect()


@pytest.mark.asyncio
async def test_an_update_is_rendered_once_for_all_the_sockets_of_its_page(
    live_cluster, writer, monkeypatch
):
    renders: list = []
    context = pages.context

    def counting(key, view):
        # a page's context is built only when its regions are rendered (not cached)
        renders.append((key, id(view)))
        return context(key, view)

    monkeypatch.setattr(pages, "context", counting)
    url = f"/ws/storms/{HEALTHY}/?component=count&window=600"
    comms = [connect(url) for _ in range(3)]
    for comm in comms:
        assert (await comm.connect(timeout=WAIT))[0]
        assert (await comm.receive_json_from(timeout=WAIT))["type"] == "snapshot"

    beat = TaskHeartbeat(int(time.time()), 4242, bolt_stats(5))
    await asyncio.to_thread(writer.set_task_heartbeat, HEALTHY, 3, beat)

    def shows_the_beat(m):
        return m["type"] == "storm" and any(
            t["id"] == 3 and t["uptime_secs"] == 4242 for t in m["tasks"]
        )

    texts = []
    for comm in comms:
        update = await receive_until(comm, shows_the_beat)
        assert 'data-field="uptime" class="num" data-sort="4242"' in update["html"]["tasks-region"]
        texts.append(update)
    assert texts[0] == texts[1] == texts[2]
    # one render per view of the storm, for the three sockets' snapshots and updates alike
    mine = [r for r in renders if r[0] == ("component", HEALTHY, "count", "600")]
    assert len(mine) >= 2, "the snapshot and the update were not rendered"
    assert len(mine) == len(set(mine)), "a page was rendered twice from one view"
    for comm in comms:
        await comm.disconnect()


@pytest.mark.asyncio
async def test_the_relay_forgets_a_page_nobody_names(live_cluster):
    comm = connect("/ws/cluster/?supervisor=sup-b")
    assert (await comm.connect(timeout=WAIT))[0]
    await comm.receive_json_from(timeout=WAIT)
    relay = live.current_relay()
    key = ("supervisor", "sup-b")
    assert key in relay.pages
    await comm.disconnect()
    # named last longer ago than the relay keeps a page: forgotten at the next tick
    relay.pages[key] -= live.PAGE_TICKS * relay.tick_secs + 1
    assert key not in relay._open_pages()
    relay._forget_pages()
    assert key not in relay.pages


@pytest.mark.asyncio
async def test_unknown_pages_close_as_not_found(live_cluster):
    comm = connect("/ws/cluster/?supervisor=no-such-sup")
    assert (await comm.connect(timeout=WAIT))[0]
    closed = await comm.receive_output(timeout=WAIT)
    assert closed == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    await comm.disconnect()
