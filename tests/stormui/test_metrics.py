"""``/metrics`` (:mod:`stormui.metrics`): every name the contract lists, parsed with
``prometheus_client``'s own parser, and values that follow the known cluster."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stormui.asgi import application
from stormui.metrics import REGISTRY
from tests.helpers import wait_for
from tests.stormui.conftest import BROKEN, HEALTHY, PAUSED, TROUBLED

pytestmark = pytest.mark.django_db

#: docs/contract/operations.md, "Health and metrics": the names a scrape must hold
NAMES = (
    "stormui_zookeeper_connected",
    "stormui_mirror_synced",
    "stormui_mirror_age_seconds",
    "stormui_mirror_nodes",
    "stormui_heartbeat_poll_seconds",
    "stormui_leader",
    "stormui_sockets_open",
    "stormui_messages_sent_total",
    "stormui_messages_dropped_total",
    "stormui_resyncs_total",
    "stormui_admin_actions_total",
    "stormui_history_rows_written_total",
    "stormui_storms",
    "stormui_tasks",
    "stormui_supervisors",
    "stormui_errors_total",
)


def scrape(client) -> dict:
    """``{(sample name, sorted labels): value}``, and every family's sample names under
    ``("names", ())``."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    samples = {}
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        # a counter's family is named without _total; an empty family still names itself
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        for sample in family.samples:
            names.add(sample.name)
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    samples["names", ()] = names
    return samples


def value(samples, name, **labels) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def test_every_listed_metric_follows_the_cluster(client, known_cluster, settings, admin_user):
    settings.STORMUI_LOGIN_REQUIRED = True  # a scraper has no login
    known = known_cluster
    m = scrape(client)
    assert set(NAMES) <= m["names", ()], set(NAMES) - m["names", ()]

    assert value(m, "stormui_zookeeper_connected") == 1
    assert value(m, "stormui_mirror_synced") == 1
    assert 0 <= value(m, "stormui_mirror_age_seconds") < 3600
    # every storm, task, supervisor and error node, and their folders, at least
    assert value(m, "stormui_mirror_nodes") >= len(known.tasks) + len(known.storms)
    assert value(m, "stormui_resyncs_total") >= 1
    assert value(m, "stormui_leader") == 1  # no Redis: this process relays
    for kind in ("cluster", "storm", "errors"):
        assert value(m, "stormui_sockets_open", kind=kind) >= 0

    active = sum(1 for s in known.storms.values() if s["active"])
    assert value(m, "stormui_storms", status="ACTIVE") == active
    assert value(m, "stormui_storms", status="INACTIVE") == len(known.storms) - active
    alive = known.tasks_alive(time.time())
    assert value(m, "stormui_tasks", state="alive") == alive
    assert value(m, "stormui_tasks", state="dead") == len(known.tasks) - alive
    lost = {known.lost_supervisor, known.stale_supervisor}
    assert value(m, "stormui_supervisors", state="lost") == len(lost)
    assert value(m, "stormui_supervisors", state="ok") == len(set(known.supervisors) - lost)
    for storm_id in (HEALTHY, TROUBLED, PAUSED, BROKEN):
        errors = len(known.errors(storm_id))
        assert m.get(("stormui_errors_total", (("storm", storm_id),)), 0) == errors, storm_id

    # a task dies: its heartbeat goes
    known.writer.remove_task_heartbeat(HEALTHY, 1)
    wait_for(
        lambda: (
            value(scrape(client), "stormui_tasks", state="dead") == len(known.tasks) - alive + 1
        ),
        timeout=30,
        message="stormui_tasks{state=dead} never counted the dead task",
    )

    # an admin action, counted by its outcome
    def actions(samples):
        key = ("stormui_admin_actions_total", (("action", "deactivate"), ("outcome", "success")))
        return samples.get(key, 0)

    before = actions(scrape(client))
    client.force_login(admin_user)
    assert client.post(f"/api/v1/topology/{HEALTHY}/deactivate").status_code == 200
    client.logout()
    after = scrape(client)
    assert actions(after) == before + 1
    wait_for(
        lambda: value(scrape(client), "stormui_storms", status="ACTIVE") == active - 1,
        timeout=30,
        message="stormui_storms never counted the deactivated storm",
    )


@pytest.mark.asyncio
async def test_sockets_and_messages_are_counted(live_cluster):
    def samples():
        text = generate_latest(REGISTRY).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = await asyncio.to_thread(samples)
    comm = WebsocketCommunicator(
        application,
        f"/ws/storms/{HEALTHY}/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
    )
    assert (await comm.connect(timeout=30))[0]
    assert (await comm.receive_json_from(timeout=30))["type"] == "snapshot"
    during = await asyncio.to_thread(samples)
    storm_sockets = ("stormui_sockets_open", (("kind", "storm"),))
    assert during[storm_sockets] == before[storm_sockets] + 1
    sent = ("stormui_messages_sent_total", ())
    # the snapshot: counted once its send returned, which may be just after it arrived
    await asyncio.to_thread(
        wait_for,
        lambda: samples()[sent] >= before[sent] + 1,
        message="the snapshot was never counted as sent",
    )
    await comm.disconnect()
    after = await asyncio.to_thread(samples)
    assert after[storm_sockets] == before[storm_sockets]


def test_one_outage_counts_one_reconnect_whichever_connections_tell():
    from stormui.metrics import LayerHealth

    health = LayerHealth()
    health.failed()  # the lists' receive
    health.failed()  # the subscriptions' reader
    health.reconnected()
    health.reconnected()  # the other one finds Redis too
    assert health.up and health.failures == 2 and health.reconnects == 1
    health.failed()
    health.reconnected()
    assert health.reconnects == 2
