"""One ZooKeeper reader for many dashboards: the leader's mirror, replicated through Redis.

Every dashboard process keeping its own :class:`~clusterstate.mirror.ClusterMirror`
on Storm's ZooKeeper multiplies ZooKeeper's load (the one Storm itself depends
on) by the number of processes: each lists every folder, watches every record
and re-reads every heartbeat. Here one process, the leader, reads ZooKeeper;
the others read a copy of what it read, in Redis:

- :class:`PublishingState` wraps the leader's ZooKeeper :class:`ClusterState`.
  Every read the leader's mirror makes through it (children or data, one node
  or many, watched or not) is also written to Redis, and every value that
  changed is announced on a pub/sub channel as a watch event would be
  (``node-children-changed`` for a folder whose children changed,
  ``node-data-changed`` for a watched record, ``node-created`` and the
  folder's ``node-children-changed`` for a node that appeared, ``node-deleted``
  for one that went). The writes happen on a writer thread of its own,
  pipelined, in the order of the reads, each batch's events published after
  its writes: the mirror's worker thread only compares bytes with the last
  read and queues.
- :class:`ReplicaState` is a read-only :class:`ClusterState` over that copy.
  Its registered callbacks get the published events as watch events, and its
  connection listeners see ``"connected"`` while Redis answers and a leader's
  copy is complete and fresh, ``"lost"`` otherwise. The other processes run an
  ordinary :class:`ClusterMirror` on it: their pages, snapshots and views are
  built exactly as the leader's are.

Why a copy of reads rather than of the mirror's decoded changes: the mirror's
logic (what to list, what to watch, how to diff, how to resync) stays in one
place, and the follower's mirror needs nothing new. Why events after reads,
not the reads' order alone: a follower re-reads a path only when told.

The copy is a *generation*: ``{prefix}:{gen}:data`` (a hash of path to bytes)
and ``{prefix}:{gen}:children`` (path to the names joined by ``/``, which no
name contains), expiring ``GEN_TTL_SECS`` after the leader last touched them.
A generation is announced (``{prefix}:leader`` set to it, with a TTL of
``LEADER_TTL_SECS`` the leader refreshes every ``REFRESH_SECS``, and a message
on ``{prefix}:events``) only once the leader's mirror is synced and every read
so far is written: a follower that adopts it reads a whole cluster. A new
leader, or the same leader after Redis lost its data, writes a new generation;
a follower sees its own generation go (``"lost"``) and the new one come
(``"connected"``), so its mirror re-reads everything, from Redis. A new leader
that begins with the copy it followed (``carry_on``) says so in its
announcement: a follower that had every message of that copy carries on with
what its mirror holds (:attr:`ReplicaState.resumed`), and the differences the
new leader finds come as events, published after the announcement. When the
leader's own mirror loses ZooKeeper it withdraws the announcement, so
followers say they are disconnected too, and announces again once resynced.

Heartbeat data (read unwatched, changing every few seconds on every task) is
written but not announced: a follower's mirror re-reads it from Redis every
``heartbeat_secs`` as the leader does from ZooKeeper, so a follower's
heartbeats are at most two polls old. A heartbeat node appearing or going is
announced like any node.

A node appearing is announced with its folder's ``node-children-changed`` as
well: a follower may list the folder (written first) before the node's data
is written, read nothing, and forget the name; the second listing finds it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from .errors import NotConnectedError
from .protocol import (
    CONNECTED,
    LOST,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    ConnectionListener,
    WatchCallback,
)

logger = logging.getLogger(__name__)

#: the keys' prefix in Redis
DEFAULT_PREFIX = "stormui:replica"
#: how often the leader refreshes its announcement and its generation's expiry
REFRESH_SECS = 1.0
#: a leader silent this long is gone: its followers say they are disconnected
LEADER_TTL_SECS = 5
#: a generation nobody refreshed this long is deleted by Redis
GEN_TTL_SECS = 120
#: at most this many events per published message
EVENTS_PER_MESSAGE = 1000
#: at most this many fields per HSET/HMGET command
FIELDS_PER_COMMAND = 2000


class ReadOnlyStateError(RuntimeError):
    """A write was asked of a :class:`ReplicaState`: it only reads the leader's copy."""


def _keys(prefix: str, gen: str) -> tuple[str, str]:
    return f"{prefix}:{gen}:data", f"{prefix}:{gen}:children"


def _parent(path: str) -> str:
    parent = path.rpartition("/")[0]
    return parent or "/"


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _redis_errors():
    import redis

    return (redis.RedisError, OSError)


# -- the leader's side -----------------------------------------------------------------------


class PublishingState:
    """The leader's ZooKeeper :class:`ClusterState`, copying what is read through it to Redis.

    Everything is delegated to ``state``; reads are recorded afterwards. Only
    the leader's mirror should read through it: reads from several threads
    could be recorded in another order than ZooKeeper answered them. Writes
    (admin actions) go to ``state`` untouched; the mirror's watches bring
    their results.

    :param state: the ZooKeeper state (the wrapper neither closes it nor
        owns its listeners).
    :param redis_client: a ``redis.Redis`` (bytes replies), closed by :meth:`close`.
    :param prefix: the keys' prefix.
    :param ready: whether the copy may be announced: the leader's mirror is
        synced (:meth:`follow` sets it to the mirror's ``connected``).
    """

    def __init__(
        self,
        state,
        redis_client,
        *,
        prefix: str = DEFAULT_PREFIX,
        ready: Callable[[], bool] = lambda: False,
    ):
        self._state = state
        self._redis = redis_client
        self._prefix = prefix
        self._channel = f"{prefix}:events"
        self._leader_key = f"{prefix}:leader"
        self._ready = ready
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # a flush, or carry_on: one at a time
        # what was last read: the copy Redis holds (or will once flushed)
        self._data: dict[str, bytes] = {}
        self._kids: dict[str, frozenset[str]] = {}
        # what the writer has yet to do: hash, field -> value (None: delete)
        self._pending: dict[tuple[int, str], bytes | None] = {}
        self._events: list[tuple[str, str]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._gen = ""
        self._whole = True  # the next flush writes the whole copy to a new generation
        self._carried = False  # the copy began as the last leader's (carry_on)
        self._carries: str | None = None  # that leader's generation
        self._announced = False
        #: flushes done and generations started (read by tests and the bench)
        self.flushes = 0
        self.generations = 0
        self._thread = threading.Thread(target=self._run, name="replica-publisher", daemon=True)
        self._thread.start()

    # -- the ClusterState protocol: reads recorded, the rest delegated ----------------------

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        raw = self._state.get_data(path, watch)
        self._record_data({path: raw}, watch)
        return raw

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        names = self._state.get_children(path, watch)
        self._record_children({path: names})
        return names

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        out = self._state.get_data_many(paths, watch)
        self._record_data(out, watch)
        return out

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        out = self._state.get_children_many(paths, watch)
        self._record_children(out)
        return out

    def set_ephemeral_node(self, path: str, data: bytes) -> None:
        self._state.set_ephemeral_node(path, data)

    def delete_node(self, path: str) -> None:
        self._state.delete_node(path)

    def set_data(self, path: str, data: bytes) -> None:
        self._state.set_data(path, data)

    def mkdirs(self, path: str) -> None:
        self._state.mkdirs(path)

    def create_sequential(self, path: str, data: bytes) -> str:
        return self._state.create_sequential(path, data)

    def register(self, callback: WatchCallback) -> str:
        return self._state.register(callback)

    def unregister(self, callback_id: str) -> None:
        self._state.unregister(callback_id)

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._state.add_connection_listener(listener)

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        self._state.remove_connection_listener(listener)

    @property
    def connected(self) -> bool:
        return self._state.connected

    @property
    def inner(self):
        """The wrapped ZooKeeper state."""
        return self._state

    def close(self) -> None:
        """Stop publishing (withdrawing the announcement); close the Redis client and the
        wrapped state."""
        self.stop()
        try:
            self._redis.close()
        finally:
            self._state.close()

    def recording(self, state) -> _Recorded:
        """``state`` (another session on the same ZooKeeper: the mirror's heartbeat polls)
        with its reads copied here too; everything else is ``state``'s own."""
        return _Recorded(state, self)

    # -- life cycle ---------------------------------------------------------------------

    def follow(self, mirror) -> None:
        """Announce the copy while ``mirror`` (the leader's, reading through this) is synced,
        once the copy is whole: once the mirror has read the whole cluster through this (a
        mirror seeded from another copy is synced before its first read:
        :meth:`ClusterMirror.seed`), or at once after :meth:`carry_on`."""
        self._ready = lambda: mirror.connected and (self._carried or mirror.resyncs > 0)
        mirror.subscribe(self._on_mirror_change)

    def carry_on(self, gen: str) -> bool:
        """Before anything is read through this: begin with the last leader's copy, its
        generation ``gen``, instead of nothing (a new leader whose mirror begins with the
        copy it followed: :meth:`ClusterMirror.seed`).

        The copy is duplicated in Redis to a new generation (``COPY``, in one transaction
        with reading it back), which is announced as soon as the mirror is synced: the
        followers adopt a whole copy in the time of the take-over, not of the new leader's
        read of the cluster. That read then writes only what differs from the copy, and
        announces it as changes. (A new generation, not the last one carried on in place:
        a deposed leader that still reaches Redis may write the last one for a while.)

        :returns: False, changing nothing, if ``gen`` is gone from Redis or Redis failed;
            the copy is then written whole from the mirror's reads, as without a seed.
        :raises RuntimeError: if something was read through this already.
        """
        with self._writing:
            return self._carry_on(gen)

    def _carry_on(self, gen: str) -> bool:
        import redis

        with self._lock:
            if self._data or self._kids:
                raise RuntimeError("carry_on comes before any read")
        new = uuid.uuid4().hex
        old_keys, new_keys = _keys(self._prefix, gen), _keys(self._prefix, new)
        try:
            pipe = self._redis.pipeline(transaction=True)
            for old, key in zip(old_keys, new_keys, strict=True):
                pipe.copy(old, key)
                pipe.expire(key, GEN_TTL_SECS)
            pipe.hgetall(old_keys[0])
            pipe.hgetall(old_keys[1])
            copied_data, _, copied_kids, _, data, kids = pipe.execute()
        except (redis.ResponseError, *_redis_errors()) as exc:
            logger.warning("replica: could not carry on generation %s (%s)", gen, exc)
            return False
        if not (copied_data and copied_kids):
            try:
                self._redis.delete(*new_keys)
            except _redis_errors():
                pass  # (they expire)
            return False
        with self._lock:
            self._data = {path.decode(): raw for path, raw in data.items()}
            self._kids = {
                path.decode(): frozenset(names.decode().split("/"))
                for path, names in kids.items()
                if names
            }
            self._gen = new
            self._whole = False
            self._carried = True
            self._carries = gen
            self.generations += 1
        logger.info("replica: generation %s carries on %s", new, gen)
        self._wake.set()
        return True

    def _on_mirror_change(self, change) -> None:
        # after a sync or a lost connection: (re-)announce or withdraw at once
        if change.kind in ("resync", "connection"):
            self._wake.set()

    def stop(self) -> None:
        """Stop the writer, withdrawing the announcement. Harmless if repeated."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)

    @property
    def generation(self) -> str:
        """The generation being written ("" before the first)."""
        return self._gen

    @property
    def announced(self) -> bool:
        """True while followers may read the copy."""
        return self._announced

    # -- recording (on the reading thread) ----------------------------------------------

    def _record_data(self, fetched: dict[str, bytes | None], watch: bool) -> None:
        events = []
        changed = False
        with self._lock:
            for path, raw in fetched.items():
                old = self._data.get(path)
                if raw is None:
                    if old is not None:
                        changed = True
                        del self._data[path]
                        self._pending[(0, path)] = None
                        events.append((NODE_DELETED, path))
                    continue
                if old == raw:
                    continue
                changed = True
                self._data[path] = raw
                self._pending[(0, path)] = raw
                if old is None:
                    events.append((NODE_CREATED, path))
                    events.append((NODE_CHILDREN_CHANGED, _parent(path)))
                elif watch:
                    events.append((NODE_DATA_CHANGED, path))
            if events:
                self._events.extend(events)
        if changed:
            self._wake.set()

    def _record_children(self, listed: dict[str, list[str]]) -> None:
        changed = False
        with self._lock:
            for path, names in listed.items():
                new = frozenset(names)
                old = self._kids.get(path, frozenset())
                if new == old:
                    continue
                changed = True
                for name in old - new:
                    self._forget(f"{path}/{name}" if path != "/" else f"/{name}")
                if new:
                    self._kids[path] = new
                    self._pending[(1, path)] = "/".join(sorted(new)).encode()
                else:
                    self._kids.pop(path, None)
                    self._pending[(1, path)] = None
                self._events.append((NODE_CHILDREN_CHANGED, path))
        if changed:
            self._wake.set()

    def _forget(self, path: str) -> None:
        """Drop ``path`` and what is known below it (it left its folder): no garbage stays."""
        stack = [path]
        while stack:
            p = stack.pop()
            if self._data.pop(p, None) is not None:
                self._pending[(0, p)] = None
            names = self._kids.pop(p, None)
            if names:
                self._pending[(1, p)] = None
                stack.extend(f"{p}/{name}" for name in names)

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            self._wake.wait(REFRESH_SECS if delay == 0 else delay)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._flush()
                delay = 0.0
            except _redis_errors() as exc:
                # whatever Redis held may be gone (a restart): start over, in full
                logger.warning("replica: Redis unreachable (%s); will write a new copy", exc)
                self._announced = False
                self._whole = True
                delay = min(max(delay * 2, 0.2), 2.0)
            except Exception:
                logger.exception("replica: publishing failed; will write a new copy")
                self._announced = False
                self._whole = True
                delay = 1.0
        self._withdraw()

    def _flush(self) -> None:
        with self._writing:
            self._flush_now()

    def _flush_now(self) -> None:
        with self._lock:
            if self._whole:
                # a new generation: everything known, nothing of the old pending
                self._pending.clear()
                self._events.clear()
                data = dict(self._data)
                kids = {p: "/".join(sorted(n)).encode() for p, n in self._kids.items()}
                pending, events = None, []
            else:
                pending, self._pending = self._pending, {}
                events, self._events = self._events, []
                data = kids = None
        ready = self._ready()
        if data is not None:
            old = self._gen
            if old and self._announced:
                self._withdraw()
            self._gen = uuid.uuid4().hex
            self._carries = None  # written whole: a copy of no other
            self.generations += 1
            self._write_whole(data, kids)
            self._whole = False
            self._announced = False
        else:
            # announced with this flush's writes, before its events: a follower that carries
            # on reading what it had (ReplicaState.resumed) misses none of them
            announce = ready and not self._announced
            self._write(pending, events if self._announced or announce else [], announce)
            if announce:
                self._announced = True
                logger.info("replica: generation %s announced", self._gen)
        self.flushes += 1
        self._refresh(ready)

    def _write_whole(self, data: dict, kids: dict) -> None:
        data_key, kids_key = _keys(self._prefix, self._gen)
        pipe = self._redis.pipeline(transaction=False)
        for key, mapping in ((data_key, data), (kids_key, kids)):
            items = list(mapping.items())
            for chunk in _chunks(items, FIELDS_PER_COMMAND):
                pipe.hset(key, mapping=dict(chunk))
            pipe.expire(key, GEN_TTL_SECS)
        pipe.execute()

    def _announcement(self) -> str:
        message = {"g": self._gen, "s": CONNECTED}
        if self._carries is not None:
            message["c"] = self._carries  # a copy of that generation at first
        return json.dumps(message)

    def _write(self, pending: dict, events: list, announce: bool = False) -> None:
        if not pending and not events and not announce:
            return
        keys = _keys(self._prefix, self._gen)
        sets: tuple[dict, dict] = ({}, {})
        dels: tuple[list, list] = ([], [])
        for (which, field), value in pending.items():
            if value is None:
                dels[which].append(field)
            else:
                sets[which][field] = value
        pipe = self._redis.pipeline(transaction=False)
        for which in (0, 1):
            for chunk in _chunks(list(sets[which].items()), FIELDS_PER_COMMAND):
                pipe.hset(keys[which], mapping=dict(chunk))
            for chunk in _chunks(dels[which], FIELDS_PER_COMMAND):
                pipe.hdel(keys[which], *chunk)
        # the writes go first on this one connection: a follower told reads them
        if announce:
            pipe.set(self._leader_key, self._gen, ex=LEADER_TTL_SECS)
            pipe.publish(self._channel, self._announcement())
        for chunk in _chunks(events, EVENTS_PER_MESSAGE):
            pipe.publish(self._channel, json.dumps({"g": self._gen, "e": chunk}))
        pipe.execute()

    def _refresh(self, ready: bool) -> None:
        """Keep the generation alive; announce it while ready, withdraw it when not."""
        pipe = self._redis.pipeline(transaction=False)
        for key in _keys(self._prefix, self._gen):
            pipe.expire(key, GEN_TTL_SECS)
        if ready:
            pipe.set(self._leader_key, self._gen, ex=LEADER_TTL_SECS)
            if not self._announced:
                pipe.publish(self._channel, self._announcement())
        pipe.execute()
        if ready and not self._announced:
            logger.info("replica: generation %s announced", self._gen)
        if not ready and self._announced:
            self._withdraw()
        self._announced = ready

    def _withdraw(self) -> None:
        if not self._announced or not self._gen:
            return
        self._announced = False
        try:
            if self._redis.get(self._leader_key) == self._gen.encode():
                self._redis.delete(self._leader_key)
            self._redis.publish(self._channel, json.dumps({"g": self._gen, "s": LOST}))
        except _redis_errors() as exc:
            logger.info("replica: could not withdraw generation %s: %s", self._gen, exc)


# -- the followers' side ---------------------------------------------------------------------


class _Recorded:
    """A second session's :class:`ClusterState` whose reads a :class:`PublishingState`
    records as its own (see :meth:`PublishingState.recording`)."""

    def __init__(self, state, publisher: PublishingState):
        self._state = state
        self._publisher = publisher

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        raw = self._state.get_data(path, watch)
        self._publisher._record_data({path: raw}, watch)
        return raw

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        out = self._state.get_data_many(paths, watch)
        self._publisher._record_data(out, watch)
        return out

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        names = self._state.get_children(path, watch)
        self._publisher._record_children({path: names})
        return names

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        out = self._state.get_children_many(paths, watch)
        self._publisher._record_children(out)
        return out

    def __getattr__(self, name):
        return getattr(self._state, name)


class ReplicaState:
    """A read-only :class:`ClusterState` over the leader's copy in Redis.

    :param redis_url: Redis's URL (``redis://``, ``rediss://``, ``unix://``).
    :param prefix: the keys' prefix, as the leader's.
    :param poll_secs: how often the leader's announcement is looked at, beside
        the messages (a leader killed outright publishes nothing: its
        announcement expires).
    """

    def __init__(self, redis_url: str, *, prefix: str = DEFAULT_PREFIX, poll_secs: float = 1.0):
        import redis

        self._url = redis_url
        self._prefix = prefix
        self._channel = f"{prefix}:events"
        self._leader_key = f"{prefix}:leader"
        self._poll_secs = poll_secs
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        self._lock = threading.Lock()
        self._callbacks: dict[str, WatchCallback] = {}
        self._listeners: list[ConnectionListener] = []
        self._gen: str | None = None
        self._last_gen: str | None = None
        # the generation every message of which this has had since it adopted it (None: a
        # message may have been missed, or one could not be delivered)
        self._intact: str | None = None
        self._resumed = False
        self._connected = False
        self._closed = threading.Event()
        #: events delivered to the callbacks (read by tests)
        self.events_delivered = 0
        self._thread = threading.Thread(target=self._run, name="replica-listener", daemon=True)
        self._thread.start()

    # -- reads ------------------------------------------------------------------------

    def _hmget(self, which: int, paths: list[str]) -> list:
        gen = self._gen
        if not self._connected or gen is None:
            raise NotConnectedError("the leader's copy is not available")
        key = _keys(self._prefix, gen)[which]
        out = []
        try:
            for chunk in _chunks(paths, FIELDS_PER_COMMAND):
                out.extend(self._redis.hmget(key, chunk))
        except _redis_errors() as exc:
            raise NotConnectedError(f"Redis: {exc}") from exc
        if gen != self._gen:
            raise NotConnectedError("the leader's copy changed during the read")
        return out

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        """Data of each path in the leader's copy; ``None`` for absent ones (``watch``: moot,
        every change is told)."""
        paths = list(dict.fromkeys(paths))
        return dict(zip(paths, self._hmget(0, paths), strict=True)) if paths else {}

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        """Children of each path in the leader's copy; ``[]`` for absent ones."""
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        values = self._hmget(1, paths)
        return {p: (v.decode().split("/") if v else []) for p, v in zip(paths, values, strict=True)}

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        return self.get_data_many([path])[path]

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        return self.get_children_many([path])[path]

    # -- writes: refused ----------------------------------------------------------------

    def _refuse(self, *_args, **_kwargs):
        raise ReadOnlyStateError("the leader's copy is read-only: write to ZooKeeper")

    set_ephemeral_node = delete_node = set_data = mkdirs = create_sequential = _refuse

    # -- callbacks and listeners --------------------------------------------------------

    def register(self, callback: WatchCallback) -> str:
        callback_id = uuid.uuid4().hex
        with self._lock:
            self._callbacks[callback_id] = callback
        return callback_id

    def unregister(self, callback_id: str) -> None:
        with self._lock:
            self._callbacks.pop(callback_id, None)

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def connected(self) -> bool:
        """True while Redis answers and a leader's complete copy is announced."""
        return self._connected and not self._closed.is_set()

    @property
    def generation(self) -> str | None:
        """The leader's generation being read, or ``None``."""
        return self._gen if self._connected else None

    @property
    def resumed(self) -> bool:
        """Whether the copy now read carries on the last one, of which nothing was missed: a
        new leader's, begun as a copy of the last leader's in Redis (``carry_on``), which
        this followed to the end (read by connection listeners as they are told
        ``"connected"``: what was read of the last copy is still current, and its changes
        come as events)."""
        return self._resumed and self._connected

    @property
    def last_generation(self) -> str | None:
        """The last leader's generation this read, even once that leader went (``None``
        before one was read)."""
        return self._last_gen

    def close(self) -> None:
        """Stop listening. Harmless if repeated."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(10)
        self._redis.close()

    # -- the listener thread --------------------------------------------------------------

    def _tell(self, state: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(state)
            except Exception:
                logger.exception("replica connection listener %r failed", listener)

    def _adopt(self, gen: str | None, carries: str | None = None) -> None:
        """Follow generation ``gen`` (``None``: no leader's copy), which began as a copy of
        generation ``carries`` if given."""
        if gen == self._gen and self._connected == (gen is not None):
            return
        if self._connected:
            self._connected = False
            self._tell(LOST)
        self._gen = gen
        if gen is not None:
            self._resumed = carries is not None and carries == self._intact != gen
            self._intact = self._last_gen = gen
            if self._resumed:
                logger.info(
                    "replica: reading the leader's generation %s, a copy of %s", gen, carries
                )
            else:
                logger.info("replica: reading the leader's generation %s", gen)
            self._connected = True
            self._tell(CONNECTED)

    def _current(self) -> str | None:
        raw = self._redis.get(self._leader_key)
        return raw.decode() if raw else None

    def _run(self) -> None:
        delay = 0.2
        while not self._closed.is_set():
            pubsub = self._redis.pubsub()
            try:
                # subscribe first (confirmed): nothing published after the look at the
                # leader's announcement is missed
                pubsub.subscribe(self._channel)
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "subscribe":
                        break
                    if self._closed.is_set():
                        return
                self._adopt(self._current())
                delay = 0.2
                self._listen(pubsub)
            except _redis_errors() as exc:
                if not self._closed.is_set():
                    logger.warning("replica: Redis unreachable (%s)", exc)
                self._intact = None  # messages may have gone meanwhile
                self._adopt(None)
                self._closed.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 (a dead connection may fail to close)
                    pass
        self._adopt(None)

    def _listen(self, pubsub) -> None:

        looked = time.monotonic()
        polled = None
        while not self._closed.is_set():
            message = pubsub.get_message(timeout=self._poll_secs)
            if message is not None and message.get("type") == "message":
                self._on_message(message["data"])
            now = time.monotonic()
            if now - looked >= self._poll_secs:
                looked = now
                current = self._current()
                # (a new generation is adopted from its announcement, which says what it
                # carries on; from a look only if no announcement came since the last look)
                if current is None or current == self._gen or current == polled:
                    self._adopt(current)
                polled = current

    def _on_message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            gen = message["g"]
        except (ValueError, KeyError, TypeError):
            logger.warning("replica: unreadable message %r", data[:200])
            return
        state = message.get("s")
        if state == CONNECTED:
            self._adopt(gen, message.get("c"))
        elif state == LOST:
            if gen == self._gen:
                self._adopt(None)
        elif gen == self._intact and not self._connected:
            self._intact = None  # changes of it that nobody was told: it is not whole here
        elif gen == self._gen and self._connected:
            with self._lock:
                callbacks = list(self._callbacks.values())
            for event_type, path in message.get("e", ()):
                self.events_delivered += 1
                for callback in callbacks:
                    try:
                        callback(event_type, path)
                    except Exception:
                        logger.exception("replica watch callback %r failed", callback)
