"""While the mirror's first read of the cluster runs: pages say how far it has got, the API
answers 503 with ``Retry-After`` and ``"syncing": true``, ``/readyz`` says the same; once it
is done, the real pages (operations.md, "Start-up").

The first read is held back in-process: the mirror lists every folder, then waits on an
event before it reads the nodes' data.
"""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from clusterstate.mirror import ClusterMirror
from stormui.source import get_source, reset_source
from tests.helpers import WAIT
from tests.stormui import browser as chromium
from tests.stormui.conftest import HEALTHY, SUPERVISOR_TIMEOUT, TASK_TIMEOUT, write_known_cluster

PROGRESS = re.compile(r"reading the cluster: ([\d,]+) of ([\d,]+) nodes")


class Held:
    """The mirror's first read, held before it reads the nodes' data until released."""

    def __init__(self):
        self.reached = threading.Event()
        self.release = threading.Event()

    def wrap(self, read):
        def held_read(mirror, items, watch, between):
            if not mirror.synced_at:  # the first read alone: later reads run freely
                self.reached.set()
                assert self.release.wait(WAIT), "the test never released the first read"
            return read(mirror, items, watch, between)

        return held_read


@pytest.fixture
def held(settings, zk_conf, zk_server, monkeypatch):
    """The known cluster in ZooKeeper, and the dashboard's source reading it, held."""
    hold = Held()
    monkeypatch.setattr(ClusterMirror, "_get_data_many", hold.wrap(ClusterMirror._get_data_many))
    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_ROOT = zk_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = True
    settings.STORMUI_TASK_TIMEOUT_SECS = TASK_TIMEOUT
    settings.STORMUI_SUPERVISOR_TIMEOUT_SECS = SUPERVISOR_TIMEOUT
    reset_source()
    known = write_known_cluster(zk_conf)
    yield hold
    hold.release.set()
    reset_source()
    known.writer.disconnect()
    known.writer.cluster_state.close()


def progress(text: str) -> tuple[int, int]:
    match = PROGRESS.search(text)
    assert match, text
    return tuple(int(n.replace(",", "")) for n in match.groups())


def test_pages_and_the_api_answer_at_once_while_the_cluster_is_read(client, held):
    source = get_source()  # returns without waiting for the read
    assert held.reached.wait(WAIT), "the first read never began"
    assert source.syncing

    page = client.get("/")
    assert page.status_code == 503 and page["Retry-After"]
    read, known = progress(page.content.decode())
    assert 0 < read < known  # the folders are read, the nodes' data not yet
    assert b'id="syncing"' in page.content and b"Cluster summary" not in page.content
    # a storm's page neither says "no such storm" nor shows a half-read storm
    storm_page = client.get(f"/storms/{HEALTHY}/")
    assert storm_page.status_code == 503 and PROGRESS.search(storm_page.content.decode())

    for url in ("/api/v1/cluster/summary", f"/api/v1/topology/{HEALTHY}", "/api/errors"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert int(response["Retry-After"]) > 0
        body = response.json()
        assert body["syncing"] is True and PROGRESS.search(body["error"]), body

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["syncing"] is True and progress(ready.json()["reason"]) == (read, known)

    held.release.set()
    assert source.wait_synced(WAIT)
    assert not source.syncing
    page = client.get("/")
    assert page.status_code == 200 and b'id="syncing"' not in page.content
    assert HEALTHY.encode() in page.content
    assert client.get(f"/api/v1/topology/{HEALTHY}").status_code == 200
    assert client.get("/readyz").json() == {"ready": True}
    # the read's counter ends at the whole cluster
    read, known = source.sync_progress()
    assert read == known > 0


def test_without_the_mirror_there_is_no_syncing(client, settings, zk_conf, zk_server):
    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_ROOT = zk_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = False
    reset_source()
    known = write_known_cluster(zk_conf)
    try:
        assert not get_source().syncing
        assert client.get("/").status_code == 200
        assert client.get(f"/api/v1/topology/{HEALTHY}").status_code == 200
    finally:
        reset_source()
        known.writer.disconnect()
        known.writer.cluster_state.close()


browser = chromium.browser
page = chromium.page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_syncing_page_follows_the_read_and_turns_into_the_page(page, live_server, held):
    get_source()
    assert held.reached.wait(WAIT), "the first read never began"
    chromium.open_page(page, live_server.url + "/", status=503)
    syncing = page.locator("#syncing")
    expect(syncing).to_have_text(PROGRESS)  # as /readyz says it, polled
    page.evaluate("document.getElementById('syncing').textContent = 'polled?'")
    expect(syncing).to_have_text(PROGRESS)  # put back from /readyz: the page follows it
    held.release.set()
    expect(page.locator("h1")).to_have_text("Cluster summary")  # reloaded into the page
    expect(page.locator(f'#storm-table tr[data-storm-id="{HEALTHY}"]')).to_be_visible()
    assert page.watch.errors == [] and page.watch.dialogs == []
