"""Where the dashboard's figures come from: the lazily started cluster source.

One :class:`Source` per process. It opens the configured store on first use
(never at import, in settings, in ``migrate`` or in the test runner unless a
test asks), keeps the watch-synced mirror (or, with ``STORMUI_MIRROR=off``, a
plain ``StormClusterState``), and hands views a :class:`~stormui.cluster.ClusterView`.

With Redis (``REDIS_URL``) only the process that relays (:func:`stormui.leader.relays_here`)
reads Storm's ZooKeeper: its mirror reads through a
:class:`~clusterstate.replica.PublishingState`, which copies every read to Redis; every
other process mirrors that copy through a :class:`~clusterstate.replica.ReplicaState`, and
opens a ZooKeeper session of its own only for admin actions' writes, on the first one
(:meth:`Source.admin_storm_state`). So ZooKeeper's load is one mirror's however many
daphnes serve.

With the mirror, a builder thread rebuilds the view after changes and requests
take the last one built: on a 20,000-task cluster a rebuild takes longer than
a page, and heartbeat polls change the mirror every few seconds, so no request
should pay for one. A view may lag the heartbeat data by one rebuild; any other
change (a storm, an assignment, a task or heartbeat node coming or going, an
error, the connection) is in the view a request gets, built then if need be:
from the last view built, only the storms changed since are read again (a few
milliseconds, where the whole cluster takes hundreds), and never waiting for
the builder's whole rebuild, which goes on meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

from django.conf import settings

from clusterstate import NotConnectedError, mk_storm_cluster_state, precedence

from . import cluster, gcpause, rates

log = logging.getLogger(__name__)

# the builder rests at least this long, and twice as long as its last build took,
# between builds, so it never takes more than about a third of a core
BUILD_GAP_SECS = 0.25
# rebuilt at least this often even when nothing changed: ages and liveness move with the clock
REFRESH_SECS = 5.0
# the mirror's changes (kinds) that concern one storm's figures alone, when they name it
_STORM_CHANGES = ("storm", "assignment", "tasks", "errors", "heartbeats")

_lock = threading.Lock()
_source: Source | None = None
_seed: Seed | None = None  # what the next source begins with (reset_source)


def replica_role() -> str | None:
    """``"lead"`` if this process's mirror is copied to Redis for the others, ``"follow"`` if
    it mirrors that copy, ``None`` if it mirrors ZooKeeper for itself alone."""
    if settings.STORMUI_STORE == "memory" or not settings.STORMUI_MIRROR:
        return None
    if not settings.REDIS_URL:
        return None
    from . import leader

    return "lead" if leader.relays_here() else "follow"


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


class Seed(NamedTuple):
    """What a new leader's source begins with (:func:`reset_source`, ``seed_next``)."""

    mirror: object  # the follower's ClusterMirror (stopped: it answers with what it held)
    generation: str | None  # the generation of the leader's copy it read
    view: object  # the last view built from it holding all it was told, or None


class _Closed(Exception):
    """The source was closed during a background build."""


class Source:
    """The cluster as pages see it: the mirror, the views built from it, the admin state.

    :param seed: a :class:`Seed`: a follower's mirror of the same cluster, the generation of
        the leader's copy it read and its last view, which this source's mirror, its copy
        for the others and its views begin with if it reads ZooKeeper for them (a new
        leader).
    """

    def __init__(self, seed=None):
        self._seed = seed
        self.mirrored = settings.STORMUI_MIRROR
        self.task_timeout = settings.STORMUI_TASK_TIMEOUT_SECS
        self.supervisor_timeout = settings.STORMUI_SUPERVISOR_TIMEOUT_SECS
        self.simulator = None
        self.mirror = None
        self.state = _NotConnected()
        self.heartbeat_state = None  # the mirror's session for heartbeat polls (ZooKeeper)
        self.storm_state = None
        self._listeners: list = []
        # (view, mirror version it holds at least); replaced whole, so read without the lock
        self._built: tuple[cluster.ClusterView, int] | None = None
        self._view_lock = threading.Lock()  # one build on demand at a time
        self._needed_version = 0  # the last change a view must hold (not a heartbeat poll)
        # what changed, by mirror version, to build a view from an older one (_on_change)
        self._noted_lock = threading.Lock()
        self._noted_version = 0  # the last change told to _on_change
        self._storm_changed: dict[str, int] = {}  # by storm: its last change's version
        self._all_changed = 0  # the last change that every storm's figures depend on
        self._synced = False  # the mirror's cold load ended
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._builder = None
        self._first_view = threading.Event()  # set once a view of the whole cluster is built
        self.replica = None  # replica_role(), once the source is open
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
        self.replica = replica_role()
        if self.replica == "follow":
            self._open_replica()
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
            if self.mirrored:
                # heartbeat polls on a session of their own: their replies never hold up the
                # watch notifications of the main session (see ClusterMirror)
                self.heartbeat_state = mk_distributed_cluster_state(storm_conf(), timeout=timeout)
            self._open(state)
        except BaseException:
            state.close()
            if self.heartbeat_state is not None:
                self.heartbeat_state.close()
                self.heartbeat_state = None
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

    def _open_replica(self) -> None:
        """A follower: the mirror reads the leader's copy in Redis; ZooKeeper is for actions."""
        from clusterstate.replica import ReplicaState

        self._open(ReplicaState(settings.REDIS_URL), storm_state=_AdminStormState())

    def _open(self, state, storm_state=None) -> None:
        if storm_state is None:
            # admin actions write through the ZooKeeper state itself, never the copying wrapper
            storm_state = mk_storm_cluster_state(state)
        publisher = None
        if self.mirrored and self.replica == "lead":
            import redis

            from clusterstate.replica import PublishingState

            state = publisher = PublishingState(state, redis.Redis.from_url(settings.REDIS_URL))
        heartbeat_state = self.heartbeat_state
        if publisher is not None and heartbeat_state is not None:
            # the heartbeat polls' session: what they read is the followers' heartbeat data
            heartbeat_state = publisher.recording(heartbeat_state)
        if self.mirrored:
            from clusterstate.mirror import ClusterMirror

            mirror = ClusterMirror(
                state,
                heartbeat_state=heartbeat_state,
                heartbeat_secs=settings.STORMUI_HEARTBEAT_SECS,
            )
            mirror.subscribe(self._on_change)
            if publisher is not None:
                seed, self._seed = self._seed, None
                if seed is not None and mirror.seed(seed.mirror):
                    # its read tells what differs storm by storm, as a resync does; the last
                    # view built from that copy stands until then (pages need no whole build)
                    self._synced = True
                    if seed.view is not None:
                        self._built = (seed.view, 0)
                        self._first_view.set()
                    # and the followers' copy goes on from the one it followed (if still there)
                    carried = seed.generation is not None and publisher.carry_on(seed.generation)
                    log.info(
                        "the mirror begins with the copy this process followed%s",
                        ", carried on for the others" if carried else "",
                    )
                publisher.follow(mirror)
            # pages answer at once meanwhile, saying how far the first read has got (a
            # follower's too, while no leader has announced its copy)
            mirror.start(wait=None)
            self.mirror = mirror
            self._builder = threading.Thread(
                target=self._build_loop, name="cluster-view-builder", daemon=True
            )
            self._builder.start()
        self.storm_state = storm_state
        self.state = state
        if self._closing.is_set():  # closed while connecting
            self._close_store()

    def admin_storm_state(self):
        """The ``StormClusterState`` admin actions read and write ZooKeeper through.

        :raises NotConnectedError: if its ZooKeeper session is not connected (a
            disconnected client would queue a write and run it after the reconnect).
        """
        storm_state = self.storm_state
        if storm_state is None:
            raise NotConnectedError("ZooKeeper has not been reached yet")
        if isinstance(storm_state, _AdminStormState):
            storm_state = storm_state.get()
        if not storm_state.cluster_state.connected:
            raise NotConnectedError("not connected")
        return storm_state

    @property
    def reading(self) -> bool:
        """True while the mirror's first read of the cluster runs: what it holds is not
        the whole cluster yet, so nothing may present it as such."""
        return self.mirror is not None and self.mirror.synced_at is None

    @property
    def syncing(self) -> bool:
        """True until the first view of the whole cluster is built: pages and the API say
        they are reading it meanwhile (on a large cluster the first build takes a while
        too, and a request would wait for it)."""
        return self.mirror is not None and not self._first_view.is_set()

    def sync_progress(self) -> tuple[int, int]:
        """The first read's ``(nodes read, nodes known)`` so far."""
        return self.mirror.progress() if self.mirror is not None else (0, 0)

    def wait_synced(self, timeout: float | None) -> bool:
        """Until the first view of the whole cluster is built (at once without the mirror);
        False on timeout."""
        return self.mirror is None or self._first_view.wait(timeout)

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
                    built = self._build(base=self._built)
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

    def _build(self, base=None, *, background: bool = False):
        """Build a view now: it holds every change told before it began.

        :param base: a ``(view, version)`` built earlier: its storms that no change since
            touched are taken as they are (their heartbeat data as of then); ``None``:
            every storm is read.
        :param background: the builder's own build, which nobody waits for: it lets news
            pass between storms (:mod:`clusterstate.precedence`).
        :returns: ``(view, version)``, kept as the current view unless a newer one is.
        """
        whole = not self.reading  # read first: a view begun mid-read is not the whole
        with self._noted_lock:
            version = self._noted_version  # the view holds at least this
            reuse = None
            if base is not None and self._all_changed <= base[1]:
                reuse = {
                    storm_id: storm
                    for storm_id, storm in base[0].storms.items()
                    if self._storm_changed.get(storm_id, 0) <= base[1]
                }
        view = cluster.build_cluster_view(
            self.reader,
            **self._build_kwargs(time.time()),
            reuse=reuse,
            between=self._between_storms if background else None,
        )
        built = (view, version)
        with self._noted_lock:
            if self._built is None or self._built[1] <= version:
                self._built = built
        if whole:
            self._first_view.set()
        return built

    def _between_storms(self) -> None:
        if self._closing.is_set():
            raise _Closed  # a closed source's view is of no use: stop building it
        precedence.NEWS.step_aside()

    def _build_loop(self):
        while not self._closing.is_set():
            self._changed.wait(REFRESH_SECS)
            if self._closing.is_set():
                return
            self._changed.clear()
            if self.reading:
                continue  # a half-read cluster's view is of no use, and slows the read
            started = time.monotonic()
            try:
                # the whole cluster, without the view lock: a change meanwhile is built
                # on demand from the last view, and then brought into this one
                built = self._build(background=True)
                if self._built is not built:
                    self._build(base=built, background=True)
            except _Closed:
                return
            except Exception:
                log.exception("building the cluster view failed")
            precedence.NEWS.step_aside()  # (a freeze holds the interpreter a while)
            gcpause.TENDER.tend()  # the mirror's objects kept out of full collections
            self._closing.wait(max(BUILD_GAP_SECS, 2 * (time.monotonic() - started)))

    def subscribe(self, listener):
        """Call ``listener(change)`` on every mirror change (on the mirror's thread)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _on_change(self, change):
        with self._noted_lock:
            # a heartbeat poll's new data may wait for the builder; anything else may not
            if not (change.kind == "heartbeats" and change.storm_id is None):
                if change.storm_id is not None and change.kind in _STORM_CHANGES:
                    self._storm_changed[change.storm_id] = change.version
                    if len(self._storm_changed) > 10_000:  # storms come and go: stay bounded
                        self._storm_changed.clear()
                        self._all_changed = change.version
                elif change.kind in ("supervisor", "connection") or (
                    change.kind == "resync" and self._synced
                ):
                    # supervisors are built afresh every time; a resync reported what it found
                    # different, storm by storm, before it ended (the first: the cold load);
                    # no storm's figures depend on the connection (compared apart: _current),
                    # and after one lost a resync tells what differs storm by storm
                    pass
                else:
                    self._all_changed = change.version
                if change.kind == "resync":
                    self._synced = True
                # the connection is compared apart (_current): the change that tells of it
                # comes just after a sync's own, and must not make stale the view the
                # builder began on that one
                if change.kind != "connection":
                    self._needed_version = change.version
            self._noted_version = change.version
        self._changed.set()
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed")

    def closing(self) -> None:
        """Stop building views and telling changes now; :meth:`close` does the rest."""
        self._closing.set()
        self._changed.set()
        if self.mirror is not None:
            self.mirror.stopping()

    def close(self):
        self.closing()
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
        if self.heartbeat_state is not None:
            self.heartbeat_state.close()


class _AdminStormState:
    """A follower's ``StormClusterState`` for admin actions alone: its ZooKeeper session is
    opened on first use, sets no watches, and reads only what an action checks."""

    def __init__(self):
        self._lock = threading.Lock()
        self._storm_state = None
        self._closed = False

    def get(self):
        with self._lock:
            if self._closed:
                raise NotConnectedError("closed")
            if self._storm_state is None:
                from clusterstate import mk_distributed_cluster_state

                state = mk_distributed_cluster_state(storm_conf(), timeout=FIRST_CONNECT_SECS)
                try:
                    self._storm_state = mk_storm_cluster_state(state)
                except BaseException:
                    state.close()
                    raise
            return self._storm_state

    @property
    def opened(self) -> bool:
        """True once the ZooKeeper session was opened."""
        return self._storm_state is not None

    def __getattr__(self, name):
        return getattr(self.get(), name)

    def disconnect(self):
        with self._lock:
            self._closed = True
            storm_state, self._storm_state = self._storm_state, None
        if storm_state is not None:
            storm_state.disconnect()
            storm_state.cluster_state.close()


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
    global _source, _seed
    with _lock:
        if _source is None:
            seed, _seed = _seed, None
            _source = Source(seed=seed)
        return _source


def current_source() -> Source | None:
    """The process's source if it has been started, else ``None`` (starts nothing)."""
    return _source


def reset_source(*, seed_next: bool = False) -> None:
    """Close and forget the source (tests switch stores between cases).

    :param seed_next: the next source, if it reads ZooKeeper for the others (a new leader),
        begins with what this one's mirror holds, if it was synced (a follower's copy of the
        last leader's): see :meth:`clusterstate.mirror.ClusterMirror.seed`.
    """
    global _source, _seed
    with _lock:
        _seed = None
        old, _source = _source, None
        if old is not None:
            if seed_next and old.replica == "follow" and old.mirror is not None:
                # a new leader: the follower's source stops at once and closes in the
                # background. Waiting for its threads (a whole view's build, a read of Redis in
                # flight, a ZooKeeper session's goodbye) held the take-over up by 1 to 1.6 s at
                # 20,000 tasks; what it stops is its own (the seed copies the mirror under its
                # lock, and a stopped mirror still answers with what it held)
                old.closing()
                built = old._current()  # (only a view holding every change it was told)
                _seed = Seed(
                    old.mirror,
                    getattr(old.state, "last_generation", None),
                    built[0] if built is not None else None,
                )
                threading.Thread(target=old.close, name="stormui-source-close", daemon=True).start()
            else:
                old.close()
        rates.TRACKER.clear()  # the next store's tasks are others, under the same ids
