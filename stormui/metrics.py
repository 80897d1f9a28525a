"""The dashboard's and the cluster's figures for Prometheus (``GET /metrics``).

Nothing here counts in Prometheus' own objects: the process keeps plain tallies
where things happen (:data:`sockets_open`, :data:`messages`, :data:`admin_actions`),
the mirror keeps its resyncs and poll times, the history's writer its rows, and
:class:`DashboardCollector` reads all of them, and the cluster's view, when scraped.
So a scrape costs a view the pages have built already, and a test that starts many
sources or relays meets no "duplicated timeseries" from a registry filled twice.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from clusterstate import NotConnectedError


class Tally:
    """Counts by key, from any thread."""

    def __init__(self):
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def add(self, key, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def get(self, key) -> int:
        with self._lock:
            return self._counts[key]

    def items(self) -> list:
        with self._lock:
            return list(self._counts.items())


#: the live sockets open in this process, by kind (``cluster``, ``storm``, ``errors``)
sockets_open = Tally()
SOCKET_KINDS = ("cluster", "storm", "errors", "timeline")
#: messages sent to this process's sockets (``sent``), and those a slow socket lost
#: (``dropped``: thrown away when its queue overflowed, or queued when it was closed)
messages = Tally()
#: admin actions attempted, by (action, outcome), as audited
admin_actions = Tally()


class LayerHealth:
    """Whether this process reaches its channel layer (Redis), and how often it found it again
    after losing it (:mod:`stormui.redislayer` tells; the in-process layer never fails)."""

    def __init__(self):
        self.up = True
        self.failures = 0
        self.reconnects = 0
        self._lock = threading.Lock()

    def failed(self) -> None:
        with self._lock:
            self.up = False
            self.failures += 1

    def reconnected(self) -> None:
        """The layer answers again: one reconnect per time it was lost, however many of its
        connections (the lists', the subscriptions') tell."""
        with self._lock:
            if not self.up:
                self.reconnects += 1
            self.up = True


#: the channel layer's reachability in this process
channel_layer = LayerHealth()

STORM_STATUSES = ("ACTIVE", "INACTIVE")


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(kind, name: str, doc: str, label: str, values: dict):
    family = kind(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


class DashboardCollector:
    """Reads this process's figures at scrape time (see the module's docstring)."""

    def collect(self):
        from . import live
        from .history.recorder import current_recorder
        from .source import current_source

        source = current_source()
        mirror = source.mirror if source is not None else None
        connected = source is not None and source.zk_connected
        synced_at = source.synced_at if source is not None else None
        yield _gauge(
            "stormui_zookeeper_connected",
            "1 while ZooKeeper is connected (and, with the mirror, the mirror in sync)",
            int(connected),
        )
        yield _gauge(
            "stormui_mirror_synced",
            "1 once the cluster has been read whole (without the mirror: while connected)",
            int(synced_at is not None),
        )
        yield _gauge(
            "stormui_mirror_age_seconds",
            "Seconds since the figures were last known to match ZooKeeper (+Inf: never)",
            max(time.time() - synced_at, 0.0) if synced_at is not None else math.inf,
        )
        yield _gauge(
            "stormui_mirror_nodes",
            "ZooKeeper nodes the mirror holds (0 without the mirror)",
            mirror.node_count() if mirror is not None else 0,
        )
        poll = mirror.heartbeat_poll_secs if mirror is not None else None
        yield _gauge(
            "stormui_heartbeat_poll_seconds",
            "How long the mirror's last complete read of every heartbeat took",
            poll if poll is not None else 0.0,
        )
        yield _gauge(
            "stormui_leader",
            "1 in the process that leads (it relays the cluster's changes to every page and "
            "writes the history), 0 elsewhere",
            int(live.leads()),
        )
        yield _labelled(
            GaugeMetricFamily,
            "stormui_sockets_open",
            "Live page sockets open in this process",
            "kind",
            {kind: sockets_open.get(kind) for kind in SOCKET_KINDS},
        )
        yield _counter(
            "stormui_messages_sent", "Messages sent to this process's sockets", messages.get("sent")
        )
        yield _counter(
            "stormui_messages_dropped",
            "Messages a slow socket lost (it was sent a fresh snapshot, or closed)",
            messages.get("dropped"),
        )
        yield _counter(
            "stormui_resyncs",
            "Full reads of the cluster by the mirror: the first, after each reconnect, periodic",
            mirror.resyncs if mirror is not None else 0,
        )
        yield _gauge(
            "stormui_channel_layer_up",
            "1 while this process reaches its channel layer (Redis); 0 from a failed call "
            "until it answers again",
            int(channel_layer.up),
        )
        yield _counter(
            "stormui_channel_layer_reconnects",
            "Times this process found Redis again after losing it (its sockets resynced)",
            channel_layer.reconnects,
        )
        actions = CounterMetricFamily(
            "stormui_admin_actions",
            "Admin actions attempted through this process, by outcome, as audited",
            labels=["action", "outcome"],
        )
        for (action, outcome), n in sorted(admin_actions.items()):
            actions.add_metric([action, outcome], n)
        yield actions
        recorder = current_recorder()
        yield _counter(
            "stormui_history_rows_written",
            "Rows the history's writer in this process has written",
            recorder.written if recorder is not None else 0,
        )
        yield _gauge(
            "stormui_history_buffered",
            "Items waiting for the database in this process's history writer",
            recorder.buffered if recorder is not None else 0,
        )
        yield _labelled(
            CounterMetricFamily,
            "stormui_history_dropped",
            "Items the history's writer dropped because too many waited for the database",
            "part",
            dict(recorder.status()["dropped"]) if recorder is not None else {},
        )
        yield from self.cluster(source)

    def cluster(self, source):
        """The cluster's own gauges, from the view the pages show."""
        view = None
        if source is not None and not source.reading:  # a half-read cluster: no figures yet
            try:
                view = source.cluster_view()
            except NotConnectedError:  # without the mirror the view is read now: zeros then
                pass
        storms = Counter(s.status for s in view.storms.values()) if view else Counter()
        yield _labelled(
            GaugeMetricFamily,
            "stormui_storms",
            "Storms by status",
            "status",
            {status: storms[status] for status in STORM_STATUSES},
        )
        yield _labelled(
            GaugeMetricFamily,
            "stormui_tasks",
            "Tasks by state: alive (heartbeating within the timeout) or dead",
            "state",
            {"alive": view.tasks_alive if view else 0, "dead": view.tasks_dead if view else 0},
        )
        lost = sum(1 for s in view.supervisors.values() if s.lost) if view else 0
        yield _labelled(
            GaugeMetricFamily,
            "stormui_supervisors",
            "Supervisors by state: ok, or lost (gone while assigned, or its heartbeat too old)",
            "state",
            {"ok": len(view.supervisors) - lost if view else 0, "lost": lost},
        )
        yield _labelled(
            GaugeMetricFamily,
            "stormui_errors_total",
            "Errors ZooKeeper holds for each storm (each task keeps its newest ten)",
            "storm",
            {storm_id: len(s.errors) for storm_id, s in view.storms.items()} if view else {},
        )


#: the process's registry: the collector is registered once, whatever is started or stopped
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(DashboardCollector())
