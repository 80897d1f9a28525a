"""Where the dashboard's figures come from: the lazily started cluster source.

One :class:`Source` per process. It opens the configured store on first use
(never at import, in settings, in ``migrate`` or in the test runner unless a
test asks), keeps the watch-synced mirror (or, with ``STORMUI_MIRROR=off``, a
plain ``StormClusterState``), and hands views a :class:`~stormui.cluster.ClusterView`
rebuilt once per change rather than per request.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from clusterstate import mk_storm_cluster_state

from . import cluster

log = logging.getLogger(__name__)

_lock = threading.Lock()
_source: Source | None = None


def storm_conf() -> dict:
    """Storm's conf for the configured ZooKeeper."""
    return {
        "storm.zookeeper.servers": list(settings.STORMUI_ZK_SERVERS),
        "storm.zookeeper.root": settings.STORMUI_ZK_ROOT,
        "storm.zookeeper.session.timeout": 10000,
    }


class Source:
    def __init__(self):
        self.mirrored = settings.STORMUI_MIRROR
        self.task_timeout = settings.STORMUI_TASK_TIMEOUT_SECS
        self.supervisor_timeout = settings.STORMUI_SUPERVISOR_TIMEOUT_SECS
        self.simulator = None
        self.mirror = None
        if settings.STORMUI_STORE == "memory":
            from clusterstate import MemoryStore, mk_memory_cluster_state
            from clusterstate.simulate import Simulator

            store = MemoryStore()
            root = settings.STORMUI_ZK_ROOT
            self.state = mk_memory_cluster_state(store, root=root)
            # nothing outside this process can reach an in-memory store, so the simulator runs here
            self.simulator = Simulator(lambda: mk_memory_cluster_state(store, root=root))
        else:
            from clusterstate import mk_distributed_cluster_state

            self.state = mk_distributed_cluster_state(storm_conf())
        self.storm_state = mk_storm_cluster_state(self.state)
        self._listeners: list = []
        self._view: cluster.ClusterView | None = None
        self._view_key = None
        self._view_lock = threading.Lock()
        if self.mirrored:
            from clusterstate.mirror import ClusterMirror

            self.mirror = ClusterMirror(self.state, heartbeat_secs=settings.STORMUI_HEARTBEAT_SECS)
            self.mirror.subscribe(self._on_change)
            self.mirror.start(wait=30.0)
        if self.simulator is not None:
            self.simulator.start()

    @property
    def reader(self):
        return self.mirror if self.mirror is not None else self.storm_state

    @property
    def zk_connected(self) -> bool:
        return self.mirror.connected if self.mirror is not None else self.state.connected

    @property
    def synced_at(self) -> float | None:
        if self.mirror is not None:
            return self.mirror.synced_at
        return time.time() if self.state.connected else None

    def _build_kwargs(self, now: float) -> dict:
        return {
            "now": now,
            "connected": self.zk_connected,
            "synced_at": self.synced_at,
            "task_timeout": self.task_timeout,
            "supervisor_timeout": self.supervisor_timeout,
        }

    def cluster_view(self) -> cluster.ClusterView:
        """The whole cluster's figures: cached per mirror version, refreshed each second."""
        now = time.time()
        if self.mirror is None:
            return cluster.build_cluster_view(self.reader, **self._build_kwargs(now))
        # ages and liveness move with the clock, so a view is reused within one second only
        key = (self.mirror.version, self.zk_connected, int(now))
        with self._view_lock:
            if self._view is None or self._view_key != key:
                self._view = cluster.build_cluster_view(self.reader, **self._build_kwargs(now))
                self._view_key = key
            return self._view

    def storm_view(self, storm_id: str) -> cluster.StormView | None:
        """One storm's figures, or ``None`` if the cluster has no such storm."""
        if self.mirror is None:
            return cluster.build_storm_view(self.reader, storm_id, **self._build_kwargs(time.time()))
        return self.cluster_view().storms.get(storm_id)

    def subscribe(self, listener):
        """Call ``listener(change)`` on every mirror change (on the mirror's thread)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _on_change(self, change):
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed")

    def close(self):
        if self.simulator is not None:
            self.simulator.stop()
        if self.mirror is not None:
            self.mirror.stop()
        self.storm_state.disconnect()
        self.state.close()


def get_source() -> Source:
    """The process's source, started on first use."""
    global _source
    with _lock:
        if _source is None:
            _source = Source()
        return _source


def reset_source() -> None:
    """Close and forget the source (tests switch stores between cases)."""
    global _source
    with _lock:
        if _source is not None:
            _source.close()
        _source = None
