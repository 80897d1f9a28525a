"""Where the dashboard's figures come from: the lazily started cluster source.

One :class:`Source` per process. It opens the configured store on first use
(never at import, in settings, in ``migrate`` or in the test runner unless a
test asks), keeps the watch-synced mirror (or, with ``STORMUI_MIRROR=off``, a
plain ``StormClusterState``), and hands views a :class:`~stormui.cluster.ClusterView`.

With the mirror, a builder thread rebuilds the view after changes and requests
take the last one built: on a 20,000-task cluster a rebuild takes longer than
a page, and heartbeat polls change the mirror every few seconds, so no request
should pay for one. A view may lag the heartbeat data by one rebuild; any other
change (a storm, an assignment, a task or heartbeat node coming or going, an
error, the connection) is in the view a request gets, built then if need be.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from clusterstate import NotConnectedError, mk_storm_cluster_state

from . import cluster, rates

log = logging.getLogger(__name__)

# the builder rests at least this long, and twice as long as its last build took,
# between builds, so it never takes more than about a third of a core
BUILD_GAP_SECS = 0.25
# rebuilt at least this often even when nothing changed: ages and liveness move with the clock
REFRESH_SECS = 5.0

_lock = threading.Lock()
_source: Source | None = None


def storm_conf() -> dict:
    """Storm's conf for the configured ZooKeeper."""
    return {
        "storm.zookeeper.servers": list(settings.STORMUI_ZK_SERVERS),
        "storm.zookeeper.root": settings.STORMUI_ZK_ROOT,
        "storm.zookeeper.session.timeout": 10000,
    }


class _NotConnected:
    """Stands in for the ClusterState until ZooKeeper has been reached once."""

    connected = False

    def close(self):
        pass


# how long the first request waits for ZooKeeper before pages say it is unreachable
FIRST_CONNECT_SECS = 5.0
# between later tries to reach it
RECONNECT_SECS = 2.0


class Source:
    def __init__(self):
        self.mirrored = settings.STORMUI_MIRROR
        self.task_timeout = settings.STORMUI_TASK_TIMEOUT_SECS
        self.supervisor_timeout = settings.STORMUI_SUPERVISOR_TIMEOUT_SECS
        self.simulator = None
        self.mirror = None
        self.state = _NotConnected()
        self.storm_state = None
        self._listeners: list = []
        # (view, mirror version it holds at least); replaced whole, so read without the lock
        self._built: tuple[cluster.ClusterView, int] | None = None
        self._view_lock = threading.Lock()  # one build at a time
        self._needed_version = 0  # the last change a view must hold (not a heartbeat poll)
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._builder = None
        # the charts have a point per heartbeat poll
        rates.TRACKER.configure(settings.STORMUI_HEARTBEAT_SECS)
        if settings.STORMUI_STORE == "memory":
            from clusterstate import MemoryStore, mk_memory_cluster_state
            from clusterstate.simulate import SimulationConfig, Simulator

            store = MemoryStore()
            root = settings.STORMUI_ZK_ROOT
            self._open(mk_memory_cluster_state(store, root=root))
            # nothing outside this process can reach an in-memory store, so the simulator runs here
            self.simulator = Simulator(
                SimulationConfig(), lambda: mk_memory_cluster_state(store, root=root)
            )
            self.simulator.start()
            return
        try:
            self._connect(FIRST_CONNECT_SECS)
        except NotConnectedError as exc:
            # pages say ZooKeeper is unreachable (never synced) while we keep trying
            log.warning("%s; trying again every %s s", exc, RECONNECT_SECS)
            threading.Thread(target=self._keep_connecting, name="zk-connect", daemon=True).start()

    def _connect(self, timeout: float) -> None:
        from clusterstate import mk_distributed_cluster_state

        state = mk_distributed_cluster_state(storm_conf(), timeout=timeout)
        try:
            self._open(state)
        except BaseException:
            state.close()
            raise

    def _keep_connecting(self) -> None:
        while not self._closing.wait(RECONNECT_SECS):
            try:
                self._connect(FIRST_CONNECT_SECS)
            except NotConnectedError:
                continue
            except Exception:
                log.exception("opening the cluster state failed")
                continue
            log.info("reached ZooKeeper at %s", ",".join(settings.STORMUI_ZK_SERVERS))
            return

    def _open(self, state) -> None:
        storm_state = mk_storm_cluster_state(state)
        if self.mirrored:
            from clusterstate.mirror import ClusterMirror

            mirror = ClusterMirror(state, heartbeat_secs=settings.STORMUI_HEARTBEAT_SECS)
            mirror.subscribe(self._on_change)
            mirror.start(wait=30.0)
            self.mirror = mirror
            self._builder = threading.Thread(
                target=self._build_loop, name="cluster-view-builder", daemon=True
            )
            self._builder.start()
        self.storm_state = storm_state
        self.state = state
        if self._closing.is_set():  # closed while connecting
            self._close_store()

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
        """The whole cluster's figures: the last view built, unless it misses a change
        other than heartbeat data (then one is built now)."""
        if self.storm_state is None:
            return _unreached_view(time.time())
        if self.mirror is None:
            return cluster.build_cluster_view(self.reader, **self._build_kwargs(time.time()))
        built = self._current()
        if built is None:
            with self._view_lock:
                built = self._current()
                if built is None:
                    built = self._build()
        return built[0]

    def storm_view(self, storm_id: str) -> cluster.StormView | None:
        """One storm's figures, or ``None`` if the cluster has no such storm."""
        if self.storm_state is None:
            return None
        if self.mirror is not None:
            built = self._current()
            if built is not None:
                return built[0].storms.get(storm_id)
        # one storm is cheap to read: never rebuild the whole cluster for its page
        return cluster.build_storm_view(self.reader, storm_id, **self._build_kwargs(time.time()))

    def _current(self):
        built = self._built
        if built is None or built[1] < self._needed_version:
            return None
        if built[0].zk_connected != self.zk_connected:
            return None
        return built

    def _build(self):
        """Build a view now (holding the view lock): it holds every change made before it began."""
        version = self.mirror.version  # read first: the view holds at least this
        view = cluster.build_cluster_view(self.reader, **self._build_kwargs(time.time()))
        self._built = (view, version)
        return self._built

    def _build_loop(self):
        while not self._closing.is_set():
            self._changed.wait(REFRESH_SECS)
            if self._closing.is_set():
                return
            self._changed.clear()
            started = time.monotonic()
            try:
                with self._view_lock:
                    self._build()
            except Exception:
                log.exception("building the cluster view failed")
            self._closing.wait(max(BUILD_GAP_SECS, 2 * (time.monotonic() - started)))

    def subscribe(self, listener):
        """Call ``listener(change)`` on every mirror change (on the mirror's thread)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _on_change(self, change):
        # a heartbeat poll's new data may wait for the builder; anything else may not
        if not (change.kind == "heartbeats" and change.storm_id is None):
            self._needed_version = change.version
        self._changed.set()
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed")

    def close(self):
        self._closing.set()
        self._changed.set()
        if self._builder is not None:
            self._builder.join(30)
        if self.simulator is not None:
            self.simulator.stop()
        self._close_store()

    def _close_store(self):
        if self.mirror is not None:
            self.mirror.stop()
        if self.storm_state is not None:
            self.storm_state.disconnect()
        self.state.close()


def _unreached_view(now: float) -> cluster.ClusterView:
    """What pages show before ZooKeeper has ever been reached: nothing, disconnected."""
    return cluster.ClusterView(
        as_of=now,
        zk_connected=False,
        synced_at=None,
        storms={},
        supervisors={},
        slots_total=0,
        slots_used=0,
        errors_last_10m=0,
    )


def get_source() -> Source:
    """The process's source, started on first use."""
    global _source
    with _lock:
        if _source is None:
            _source = Source()
        return _source


def current_source() -> Source | None:
    """The process's source if it has been started, else ``None`` (starts nothing)."""
    return _source


def reset_source() -> None:
    """Close and forget the source (tests switch stores between cases)."""
    global _source
    with _lock:
        if _source is not None:
            _source.close()
        _source = None
        rates.TRACKER.clear()  # the next store's tasks are others, under the same ids
