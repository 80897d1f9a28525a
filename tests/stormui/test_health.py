"""``/healthz``, ``/readyz`` and ``/metrics``'s allow-list (:mod:`stormui.health`).

The metrics' values are :mod:`tests.stormui.test_metrics`'.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from clusterstate.zkserver import free_port
from stormui.env import env_networks
from stormui.source import current_source, get_source, reset_source
from tests.helpers import own_zookeeper, wait_for


@pytest.fixture(scope="module")
def own_zk(tmp_path_factory):
    """A ZooKeeper of this module's own: one test stops it."""
    yield from own_zookeeper(tmp_path_factory, "health")


@pytest.fixture
def dashboard(settings, zk_root):
    """Points the dashboard at a ZooKeeper (``dashboard(server)``), nothing started yet."""

    def point(server, *, mirror=True):
        settings.STORMUI_ZK_SERVERS = [server.connect_string]
        settings.STORMUI_ZK_ROOT = zk_root
        settings.STORMUI_STORE = "zookeeper"
        settings.STORMUI_MIRROR = mirror
        reset_source()

    yield point
    reset_source()


def ready(client) -> bool:
    response = client.get("/readyz")
    assert response.status_code in (200, 503), response.content
    assert response.json()["ready"] is (response.status_code == 200)
    return response.status_code == 200


def test_healthz_answers_without_zookeeper_or_login(client, settings):
    settings.STORMUI_LOGIN_REQUIRED = True
    settings.STORMUI_ZK_SERVERS = [f"127.0.0.1:{free_port()}"]  # nothing listens there
    reset_source()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert current_source() is None  # it opened nothing
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.mark.parametrize("mirror", [True, False], ids=["mirror", "no-mirror"])
def test_readyz_is_503_with_a_reason_until_the_cluster_is_read(
    mirror, client, settings, dashboard, zk_server
):
    settings.STORMUI_LOGIN_REQUIRED = True  # a balancer has no login
    dashboard(zk_server, mirror=mirror)
    response = client.get("/readyz")
    # nothing had opened the source: readyz starts it, and says it is not ready meanwhile
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "reason": "starting: the cluster is not being read yet",
    }
    wait_for(lambda: ready(client), timeout=30, message="/readyz never said ready")
    source = current_source()
    assert source is not None and source.zk_connected
    if mirror:
        assert source.mirror.synced_at is not None


def test_readyz_is_503_while_zookeeper_is_gone(client, dashboard, own_zk):
    dashboard(own_zk)
    assert get_source().wait_synced(30)
    assert ready(client)
    own_zk.stop()
    try:
        wait_for(lambda: not ready(client), timeout=30, message="/readyz stayed ready")
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reason"] == "ZooKeeper is not connected"
    finally:
        own_zk.start()
    wait_for(lambda: ready(client), timeout=60, message="/readyz never said ready again")


def test_metrics_are_open_to_the_allowed_networks_alone(client, settings):
    settings.STORMUI_LOGIN_REQUIRED = True  # a scraper has no login either
    settings.STORMUI_METRICS_ALLOW = env_networks("X", "10.0.0.0/8,2001:db8::/32")
    for address in ("10.1.2.3", "2001:db8::7", "::ffff:10.9.9.9"):
        response = client.get("/metrics", REMOTE_ADDR=address)
        assert response.status_code == 200, address
        assert response["Content-Type"].startswith("text/plain")
    for address in ("127.0.0.1", "11.0.0.1", "2001:db9::1", "", "not-an-address"):
        response = client.get("/metrics", REMOTE_ADDR=address)
        assert response.status_code == 403, address
        assert b"stormui_" not in response.content
    # the default: loopback only
    settings.STORMUI_METRICS_ALLOW = env_networks("X", "127.0.0.0/8,::1/128")
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 403


def test_a_bad_network_names_its_variable(monkeypatch):
    monkeypatch.setenv("X_ALLOW", "127.0.0.0/8, 10.0.0.1/8")
    with pytest.raises(ImproperlyConfigured, match="X_ALLOW.*10.0.0.1/8"):
        env_networks("X_ALLOW", "")
    monkeypatch.setenv("X_ALLOW", "localhost")
    with pytest.raises(ImproperlyConfigured, match="X_ALLOW"):
        env_networks("X_ALLOW", "")
    monkeypatch.setenv("X_ALLOW", "")
    assert env_networks("X_ALLOW", "127.0.0.0/8") == []  # set empty: nobody may scrape
