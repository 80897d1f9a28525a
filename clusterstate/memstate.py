"""An in-memory ``ClusterState`` with ZooKeeper's semantics, for tests and demos.

A :class:`MemoryStore` is the shared tree (the "server"); each
:class:`MemoryClusterState` is one session on it, chrooted at its root. What
ZooKeeper does, this does:

- persistent and ephemeral nodes; a session's ephemeral nodes vanish when it
  closes or expires, firing the watches others left on them; an ephemeral
  node cannot have children;
- sequential nodes named with the parent's 10-digit count of children ever
  created (ZooKeeper 3.8's ``cversion``, which deletes do not advance), so
  names increase in creation order;
- one-shot watches, per session: ``get_data(path, True)`` leaves a data watch
  (``"node-data-changed"`` / ``"node-deleted"``, or ``"node-created"`` when the
  node was absent), ``get_children(path, True)`` a child watch
  (``"node-children-changed"`` / ``"node-deleted"``, or ``"node-created"`` when
  absent). A deleted node with both watches fires ``"node-deleted"`` twice,
  as kazoo does;
- callbacks and connection listeners run on one dispatcher thread per
  session, in order, never on the writer's thread nor under the store's lock;
- like kazoo, every watch is dropped on any disconnect (:meth:`suspend`,
  :meth:`expire`); after :meth:`expire` the session's ephemeral nodes are gone
  and a new session starts by itself.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import uuid
from collections.abc import Iterable

from .errors import NotConnectedError
from .protocol import (
    CONNECTED,
    LOST,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    SUSPENDED,
    ConnectionListener,
    WatchCallback,
)

log = logging.getLogger(__name__)

SEQUENCE_FORMAT = "%010d"


def check_node_path(path) -> str:
    """Return ``path`` if it is a valid absolute node path, as ZooKeeper checks it.

    :raises ValueError: if it is not a string starting with ``/``, ends with
        ``/`` (other than the root), or has an empty, ``.`` or ``..`` segment
        or a NUL.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"node path must be a string starting with '/': {path!r}")
    if path == "/":
        return path
    if path.endswith("/") or "\0" in path:
        raise ValueError(f"invalid node path {path!r}")
    for segment in path[1:].split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"invalid node path {path!r}")
    return path


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else f"{parent}/{name}"


class _Node:
    __slots__ = ("data", "owner", "children", "cversion")

    def __init__(self, data: bytes, owner):
        self.data = data
        self.owner = owner  # the owning session's id for an ephemeral node, else None
        self.children: set[str] = set()
        self.cversion = 0  # children ever created: the next sequence number


class _NoNode(Exception):
    pass


class _NodeExists(Exception):
    pass


class MemoryStore:
    """A shared in-memory node tree: the "server" that sessions connect to.

    Thread-safe: one lock guards the tree and every session's watches.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self._nodes: dict[str, _Node] = {"/": _Node(b"", None)}
        # absolute path -> sessions holding a data (or exists) / child watch on it
        self._data_watches: dict[str, set[MemoryClusterState]] = {}
        self._child_watches: dict[str, set[MemoryClusterState]] = {}
        self._session_ids = itertools.count(1)

    # -- everything below runs with self.lock held ---------------------------------------

    def _new_session_id(self) -> int:
        return next(self._session_ids)

    def _fire(self, table, path: str, event_type: str) -> None:
        for session in table.pop(path, ()):
            session._enqueue_event(event_type, path)

    def _create(self, path: str, data: bytes, owner=None, sequential=False) -> str:
        parent_path = _parent(path)
        parent = self._nodes.get(parent_path)
        if parent is None:
            raise _NoNode(parent_path)
        if parent.owner is not None:
            raise ValueError(f"ephemeral node {parent_path} cannot have children")
        if sequential:
            path = path + SEQUENCE_FORMAT % parent.cversion
        if path in self._nodes:
            raise _NodeExists(path)
        self._nodes[path] = _Node(bytes(data), owner)
        parent.children.add(path.rsplit("/", 1)[1])
        parent.cversion += 1
        self._fire(self._data_watches, path, NODE_CREATED)
        self._fire(self._child_watches, parent_path, NODE_CHILDREN_CHANGED)
        return path

    def _set(self, path: str, data: bytes) -> None:
        node = self._nodes.get(path)
        if node is None:
            raise _NoNode(path)
        node.data = bytes(data)
        self._fire(self._data_watches, path, NODE_DATA_CHANGED)

    def _delete(self, path: str) -> None:
        node = self._nodes.pop(path)
        if path == "/":  # like ZooKeeper, the root stays
            self._nodes["/"] = node
            return
        parent_path = _parent(path)
        parent = self._nodes[parent_path]
        parent.children.discard(path.rsplit("/", 1)[1])
        self._fire(self._data_watches, path, NODE_DELETED)
        self._fire(self._child_watches, path, NODE_DELETED)
        self._fire(self._child_watches, parent_path, NODE_CHILDREN_CHANGED)

    def _delete_recursive(self, path: str) -> None:
        node = self._nodes.get(path)
        if node is None:
            return
        for child in sorted(node.children):
            self._delete_recursive(_join(path, child))
        if path != "/":
            self._delete(path)

    def _mkdirs(self, path: str) -> None:
        if path in self._nodes:
            return
        self._mkdirs(_parent(path))
        try:
            self._create(path, b"")
        except _NodeExists:  # pragma: no cover - impossible under the lock
            pass

    def _drop_watches(self, session) -> None:
        for table in (self._data_watches, self._child_watches):
            for path in [p for p, sessions in table.items() if session in sessions]:
                table[path].discard(session)
                if not table[path]:
                    del table[path]

    def _end_session(self, session, session_id) -> None:
        """Drop a session's watches, then delete its ephemeral nodes."""
        self._drop_watches(session)
        owned = [p for p, node in self._nodes.items() if node.owner == session_id]
        for path in sorted(owned, reverse=True):
            if path in self._nodes:
                self._delete(path)


_STOP = object()


class MemoryClusterState:
    """One session on a :class:`MemoryStore`, chrooted at ``root``.

    Implements :class:`clusterstate.protocol.ClusterState`; paths are relative
    to ``root``, which is created (with its parents) if absent.

    :param store: the shared tree.
    :param root: the chroot, Storm's ``storm.zookeeper.root``.
    """

    def __init__(self, store: MemoryStore, root: str = "/storm"):
        self.store = store
        self.root = "" if check_node_path(root) == "/" else root
        self._callbacks: dict[str, WatchCallback] = {}
        self._listeners: list[ConnectionListener] = []
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._connected = True
        with store.lock:
            store._mkdirs(root)
            self._session_id = store._new_session_id()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"memstate-session-{self._session_id}", daemon=True
        )
        self._dispatcher.start()

    # -- paths and dispatch ----------------------------------------------------------------

    def _abs(self, path: str) -> str:
        check_node_path(path)
        if path == "/":
            return self.root or "/"
        return self.root + path

    def _rel(self, path: str) -> str:
        if not self.root:
            return path
        if path == self.root:
            return "/"
        return path[len(self.root) :]

    def _enqueue_event(self, event_type: str, abs_path: str) -> None:
        self._events.put(("watch", event_type, self._rel(abs_path)))

    def _enqueue_state(self, state: str) -> None:
        self._events.put(("state", state, None))

    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            if item is _STOP:
                return
            kind, what, path = item
            if kind == "watch":
                if self._closed:
                    continue
                for callback in list(self._callbacks.values()):
                    try:
                        callback(what, path)
                    except Exception:
                        log.exception("watch callback %r failed on %s %s", callback, what, path)
            else:
                for listener in list(self._listeners):
                    try:
                        listener(what)
                    except Exception:
                        log.exception("connection listener %r failed on %s", listener, what)

    def _check_connected(self) -> None:
        if self._closed:
            raise NotConnectedError("the session is closed")
        if not self._connected:
            raise NotConnectedError("not connected to the store")

    # -- ClusterState ----------------------------------------------------------------------

    def register(self, callback: WatchCallback) -> str:
        """Call ``callback(event_type, path)`` for every fired watch; returns its id."""
        callback_id = uuid.uuid4().hex
        self._callbacks[callback_id] = callback
        return callback_id

    def unregister(self, callback_id: str) -> None:
        """Forget a callback; unknown ids are ignored."""
        self._callbacks.pop(callback_id, None)

    def set_ephemeral_node(self, path: str, data: bytes) -> None:
        """Create ``path`` as an ephemeral node of this session (parents persistent), or set
        its data if it exists.

        :raises ValueError: if the parent is an ephemeral node.
        """
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            self.store._mkdirs(_parent(p))
            try:
                self.store._create(p, data, owner=self._session_id)
            except _NodeExists:
                self.store._set(p, data)

    def delete_node(self, path: str) -> None:
        """Delete ``path`` and everything below it; nothing happens if it is absent."""
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            if path == "/":  # the root itself stays, as with ZooKeeper's chroot
                node = self.store._nodes.get(p)
                for child in sorted(node.children if node else ()):
                    self.store._delete_recursive(_join(p, child))
            else:
                self.store._delete_recursive(p)

    def set_data(self, path: str, data: bytes) -> None:
        """Set ``path``'s data; create it and its parents (persistent) if absent."""
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            try:
                self.store._set(p, data)
            except _NoNode:
                self.store._mkdirs(_parent(p))
                self.store._create(p, data)

    def _get_data_locked(self, p: str, watch: bool) -> bytes | None:
        node = self.store._nodes.get(p)
        if watch:
            self.store._data_watches.setdefault(p, set()).add(self)
        return None if node is None else node.data

    def _get_children_locked(self, p: str, watch: bool) -> list[str]:
        node = self.store._nodes.get(p)
        if watch:
            # an absent node gets an exists watch, firing "node-created"
            table = self.store._data_watches if node is None else self.store._child_watches
            table.setdefault(p, set()).add(self)
        return [] if node is None else sorted(node.children)

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        """``path``'s data, or ``None`` if absent.

        :param watch: leave a one-shot watch: ``"node-data-changed"`` or
            ``"node-deleted"``, or ``"node-created"`` if the node is absent.
        """
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            return self._get_data_locked(p, watch)

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        """Names of ``path``'s children, ``[]`` if absent.

        :param watch: leave a one-shot watch: ``"node-children-changed"`` or
            ``"node-deleted"``, or ``"node-created"`` if the node is absent.
        """
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            return self._get_children_locked(p, watch)

    def mkdirs(self, path: str) -> None:
        """Create ``path`` and its missing parents as persistent nodes with empty data."""
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            self.store._mkdirs(p)

    def create_sequential(self, path: str, data: bytes) -> str:
        """Create the persistent node ``path`` + the parent's 10-digit sequence number,
        creating missing parents; returns the created path (relative to the root)."""
        p = self._abs(path)
        with self.store.lock:
            self._check_connected()
            self.store._mkdirs(_parent(p))
            return self._rel(self.store._create(p, data, sequential=True))

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        """Data of each path, ``None`` for absent ones; ``watch`` as in :meth:`get_data`."""
        pairs = [(path, self._abs(path)) for path in paths]
        with self.store.lock:
            self._check_connected()
            return {path: self._get_data_locked(p, watch) for path, p in pairs}

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        """Children of each path, ``[]`` for absent ones; ``watch`` as in :meth:`get_children`."""
        pairs = [(path, self._abs(path)) for path in paths]
        with self.store.lock:
            self._check_connected()
            return {path: self._get_children_locked(p, watch) for path, p in pairs}

    def close(self) -> None:
        """End the session: its ephemeral nodes vanish and its watches are dropped.

        Harmless if repeated."""
        with self.store.lock:
            if self._closed:
                return
            self._closed = True
            self._connected = False
            self.store._end_session(self, self._session_id)
        self._events.put(_STOP)
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(5)

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call ``listener(state)`` on each connection change (on the dispatcher thread)."""
        self._listeners.append(listener)

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    @property
    def connected(self) -> bool:
        """True while the session is connected."""
        return self._connected and not self._closed

    @property
    def session_id(self) -> int:
        """This session's id; it changes after :meth:`expire`."""
        return self._session_id

    # -- test hooks --------------------------------------------------------------------------

    def suspend(self) -> None:
        """Simulate a lost connection: operations raise :class:`NotConnectedError`,
        every watch is dropped (as kazoo drops them), listeners get ``"suspended"``."""
        with self.store.lock:
            if self._closed or not self._connected:
                return
            self._connected = False
            self.store._drop_watches(self)
            self._enqueue_state(SUSPENDED)

    def resume(self) -> None:
        """Reconnect within the same session: listeners get ``"connected"``."""
        with self.store.lock:
            if self._closed or self._connected:
                return
            self._connected = True
            self._enqueue_state(CONNECTED)

    def expire(self) -> None:
        """Simulate a session expiry: watches dropped, ephemeral nodes deleted, listeners
        get ``"lost"`` then ``"connected"`` as a new session starts."""
        with self.store.lock:
            if self._closed:
                return
            self.store._end_session(self, self._session_id)
            self._connected = False
            self._enqueue_state(LOST)
            self._session_id = self.store._new_session_id()
            self._connected = True
            self._enqueue_state(CONNECTED)


def mk_memory_cluster_state(store: MemoryStore | None = None, root: str = "/storm"):
    """A new session on ``store`` (a new, empty store if ``None``), chrooted at ``root``."""
    return MemoryClusterState(MemoryStore() if store is None else store, root)
