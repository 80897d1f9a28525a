"""``ClusterState`` over ZooKeeper with kazoo: Storm's ``mk-distributed-cluster-state``.

Differences from the original, on purpose:

- one kazoo client for the state's lifetime: kazoo reconnects by itself, and
  opens a new session after an expiry (the original made a new client on
  every disconnect);
- no operation waits for a reconnect: when the client is not connected it
  raises :class:`~clusterstate.errors.NotConnectedError` at once, and a reply
  that does not come within ``request_timeout`` raises it too;
- writes try first and handle ``NodeExistsError``/``NoNodeError`` rather than
  checking then acting;
- sequential nodes, pipelined reads of many nodes, and connection listeners.

Watches are ZooKeeper's, one shot. kazoo drops every watch on any disconnect:
after a ``"connected"`` report, re-read and re-arm.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    ConnectionClosedError,
    ConnectionLoss,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
    SessionMovedError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KazooState
from kazoo.retry import KazooRetry

from .errors import NotConnectedError
from .memstate import check_node_path
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

DEFAULT_PORT = 2181
DEFAULT_ROOT = "/storm"
DEFAULT_SESSION_TIMEOUT_MS = 20000
CHUNK = 2000  # requests in flight at once in a pipelined read

_EVENT_TYPES = {
    EventType.CREATED: NODE_CREATED,
    EventType.DELETED: NODE_DELETED,
    EventType.CHANGED: NODE_DATA_CHANGED,
    EventType.CHILD: NODE_CHILDREN_CHANGED,
}
_STATES = {
    KazooState.CONNECTED: CONNECTED,
    KazooState.SUSPENDED: SUSPENDED,
    KazooState.LOST: LOST,
}
_DISCONNECTED = (
    ConnectionLoss,
    SessionExpiredError,
    ConnectionClosedError,
    SessionMovedError,
    OperationTimeoutError,
)


def zk_hosts(conf) -> str:
    """The kazoo host string (no chroot) for a Storm conf.

    Each entry of ``storm.zookeeper.servers`` may carry its own ``host:port``,
    which overrides ``storm.zookeeper.port`` for it.
    """
    servers = conf.get("storm.zookeeper.servers") or ["127.0.0.1"]
    if isinstance(servers, str):
        servers = [servers]
    port = int(conf.get("storm.zookeeper.port") or DEFAULT_PORT)
    hosts = []
    for server in servers:
        server = str(server).strip()
        if server.startswith("["):  # [v6] or [v6]:port
            hosts.append(server if "]:" in server else f"{server}:{port}")
        elif server.count(":") == 1:  # host:port
            hosts.append(server)
        elif ":" in server:  # a bare IPv6 address
            hosts.append(f"[{server}]:{port}")
        else:
            hosts.append(f"{server}:{port}")
    return ",".join(hosts)


def zk_root(conf) -> str:
    """``storm.zookeeper.root``, checked, without a trailing slash."""
    root = conf.get("storm.zookeeper.root") or DEFAULT_ROOT
    if root != "/":
        root = root.rstrip("/")
    return check_node_path(root)


class DistributedClusterState:
    """A ``ClusterState`` session on ZooKeeper; see :func:`mk_distributed_cluster_state`."""

    def __init__(self, conf, *, timeout: float = 15.0, request_timeout: float | None = None):
        self.hosts = zk_hosts(conf)
        self.root = zk_root(conf)
        session_timeout = (
            int(conf.get("storm.zookeeper.session.timeout") or DEFAULT_SESSION_TIMEOUT_MS) / 1000
        )
        self.request_timeout = session_timeout if request_timeout is None else request_timeout
        self._callbacks: dict[str, WatchCallback] = {}
        self._listeners: list[ConnectionListener] = []
        self._lock = threading.Lock()
        self._closed = False

        # as the original: create the root without a chroot, then chroot to it
        if self.root != "/":
            boot = self._make_client(self.hosts, session_timeout)
            try:
                self._start(boot, timeout)
                boot.ensure_path(self.root)
            finally:
                boot.stop()
                boot.close()

        chroot = "" if self.root == "/" else self.root
        self._client = self._make_client(self.hosts + chroot, session_timeout)
        self._client.add_listener(self._on_state)
        try:
            self._start(self._client, timeout)
        except BaseException:
            self._client.stop()
            self._client.close()
            raise

    @staticmethod
    def _make_client(hosts: str, session_timeout: float) -> KazooClient:
        return KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            # kazoo's default backs off towards an hour between tries
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
            command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0, deadline=10),
        )

    def _start(self, client: KazooClient, timeout: float) -> None:
        try:
            client.start(timeout=timeout)
        except KazooTimeoutError as exc:
            client.stop()
            raise NotConnectedError(f"could not connect to ZooKeeper at {self.hosts}") from exc

    # -- kazoo callbacks (kazoo's threads) -------------------------------------------------

    def _watcher(self, event) -> None:
        event_type = _EVENT_TYPES.get(event.type)
        if event_type is None or self._closed:  # NONE: kazoo dropped the watch on disconnect
            return
        for callback in list(self._callbacks.values()):
            try:
                callback(event_type, event.path)
            except Exception:
                log.exception("watch callback %r failed on %s %s", callback, event_type, event.path)

    def _on_state(self, state) -> None:
        # kazoo's connection thread: never call ZooKeeper from here
        name = _STATES.get(state)
        if name is None or self._closed:
            return
        for listener in list(self._listeners):
            try:
                listener(name)
            except Exception:
                log.exception("connection listener %r failed on %s", listener, name)

    # -- requests --------------------------------------------------------------------------

    def _check_connected(self) -> None:
        if self._closed:
            raise NotConnectedError("the cluster state is closed")
        if not self._client.connected:
            raise NotConnectedError(f"not connected to ZooKeeper at {self.hosts}")

    def _wait(self, async_result):
        """The result of a kazoo async call, mapping disconnections to NotConnectedError."""
        try:
            return async_result.get(timeout=self.request_timeout)
        except KazooTimeoutError as exc:
            raise NotConnectedError(
                f"no reply from ZooKeeper within {self.request_timeout:g}s"
            ) from exc
        except _DISCONNECTED as exc:
            raise NotConnectedError(f"lost the connection to ZooKeeper: {exc!r}") from exc
        except NoChildrenForEphemeralsError as exc:
            raise ValueError(f"an ephemeral node cannot have children: {exc!r}") from exc
        except BadArgumentsError as exc:
            raise ValueError(f"ZooKeeper refused the request: {exc!r}") from exc

    def _call(self, method, *args, **kwargs):
        self._check_connected()
        return self._wait(method(*args, **kwargs))

    def _many(self, method, paths: list[str], **kwargs) -> list:
        """Issue ``method(path)`` for every path in chunks; each item a value or an exception."""
        self._check_connected()
        results = []
        for start in range(0, len(paths), CHUNK):
            pending = [method(path, **kwargs) for path in paths[start : start + CHUNK]]
            for async_result in pending:
                # replies come in order: each may take request_timeout after the last
                try:
                    results.append(self._wait(async_result))
                except (NoNodeError, NotEmptyError) as exc:
                    results.append(exc)
        return results

    # -- ClusterState ----------------------------------------------------------------------

    def register(self, callback: WatchCallback) -> str:
        """Call ``callback(event_type, path)`` on kazoo's watch thread for every fired watch.

        It must return quickly and never raise (exceptions are logged).

        :returns: an id for :meth:`unregister`.
        """
        callback_id = uuid.uuid4().hex
        self._callbacks[callback_id] = callback
        return callback_id

    def unregister(self, callback_id: str) -> None:
        """Forget a callback; unknown ids are ignored."""
        self._callbacks.pop(callback_id, None)

    def set_ephemeral_node(self, path: str, data: bytes) -> None:
        """Create ``path`` as an ephemeral node of this session (parents persistent), or set
        its data if it exists.

        :raises NotConnectedError: if not connected.
        :raises ValueError: if the parent is an ephemeral node.
        """
        check_node_path(path)
        # a heartbeat usually finds its node there: set first, create only when it is missing
        while True:
            try:
                self._call(self._client.set_async, path, data)
                return
            except NoNodeError:
                pass
            try:
                self._call(self._client.create_async, path, data, ephemeral=True, makepath=True)
                return
            except NodeExistsError:  # created in between: set again
                continue

    def delete_node(self, path: str) -> None:
        """Delete ``path`` and everything below it; nothing happens if it is absent.

        Concurrent deleters are tolerated; children created meanwhile are deleted too.
        """
        check_node_path(path)
        while True:
            levels = [[path]]
            while levels[-1]:
                below = []
                children = self._many(self._client.get_children_async, levels[-1])
                for parent, names in zip(levels[-1], children, strict=True):
                    if isinstance(names, list):
                        below.extend(parent.rstrip("/") + "/" + name for name in names)
                levels.append(below)
            if path == "/":
                levels = levels[1:]  # the root itself stays, as in ZooKeeper
            retry = False
            for level in reversed(levels):
                for result in self._many(self._client.delete_async, level):
                    retry = retry or isinstance(result, NotEmptyError)
            if not retry:
                return

    def set_data(self, path: str, data: bytes) -> None:
        """Set ``path``'s data; create it and its parents (persistent) if absent.

        :raises NotConnectedError: if not connected.
        """
        check_node_path(path)
        while True:
            try:
                self._call(self._client.set_async, path, data)
                return
            except NoNodeError:
                pass
            try:
                self._call(self._client.create_async, path, data, makepath=True)
                return
            except NodeExistsError:  # created in between: set again
                continue

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        """``path``'s data, or ``None`` if absent.

        :param watch: leave a one-shot watch: ``"node-data-changed"`` or
            ``"node-deleted"``, or ``"node-created"`` if the node is absent.
        :raises NotConnectedError: if not connected.
        """
        return self.get_data_many([path], watch)[path]

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        """Names of ``path``'s children, ``[]`` if absent.

        :param watch: leave a one-shot watch: ``"node-children-changed"`` or
            ``"node-deleted"``, or ``"node-created"`` if the node is absent.
        :raises NotConnectedError: if not connected.
        """
        return self.get_children_many([path], watch)[path]

    def mkdirs(self, path: str) -> None:
        """Create ``path`` and its missing parents as persistent nodes with empty data."""
        check_node_path(path)
        self._call(self._client.ensure_path_async, path)

    def create_sequential(self, path: str, data: bytes) -> str:
        """Create the persistent node ``path`` + ZooKeeper's 10-digit sequence number,
        creating missing parents.

        :returns: the created path, relative to the root.
        """
        check_node_path(path)
        return self._call(self._client.create_async, path, data, sequence=True, makepath=True)

    def _read_many(self, method, paths: Iterable[str], watch: bool, absent, value):
        paths = list(dict.fromkeys(check_node_path(p) for p in paths))
        watcher = self._watcher if watch else None
        out = {}
        while paths:
            results = self._many(method, paths, watch=watcher)
            missing = []
            for p, result in zip(paths, results, strict=True):
                if isinstance(result, NoNodeError):
                    missing.append(p)
                else:
                    out[p] = value(result)
            paths = []
            if missing and watch:
                # leave an exists watch (fires "node-created"); read again any that appeared
                stats = self._many(self._client.exists_async, missing, watch=watcher)
                for p, stat in zip(missing, stats, strict=True):
                    if stat is None:
                        out[p] = absent
                    else:
                        paths.append(p)
            else:
                out.update((p, absent) for p in missing)
        return out

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        """Data of each path, read pipelined; ``None`` for absent ones.

        :param watch: as in :meth:`get_data`, for each path.
        """
        return self._read_many(self._client.get_async, paths, watch, None, lambda r: r[0])

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        """Children of each path, read pipelined; ``[]`` for absent ones.

        :param watch: as in :meth:`get_children`, for each path.
        """
        return self._read_many(self._client.get_children_async, paths, watch, [], list)

    def close(self) -> None:
        """Close the session: its ephemeral nodes vanish. Harmless if repeated."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._client.stop()
        finally:
            self._client.close()

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call ``listener(state)`` with ``"connected"``, ``"suspended"`` or ``"lost"``.

        It runs on kazoo's connection thread: it must return quickly and must
        not call ZooKeeper. ``"connected"`` follows every reconnect, including
        the new session kazoo opens after ``"lost"`` (whose ephemeral nodes and
        watches are gone).
        """
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
        return not self._closed and self._client.connected

    @property
    def session_id(self) -> int | None:
        """The current ZooKeeper session id; it changes after an expiry."""
        client_id = self._client.client_id
        return client_id[0] if client_id else None

    @property
    def client(self) -> KazooClient:
        """The kazoo client. For tests only (e.g. to expire the session)."""
        return self._client


def mk_distributed_cluster_state(
    conf, *, timeout: float = 15.0, request_timeout: float | None = None
) -> DistributedClusterState:
    """Connect to ZooKeeper as Storm's ``mk-distributed-cluster-state`` does.

    :param conf: a Storm conf: ``storm.zookeeper.servers`` (hosts, each may be
        ``host:port``), ``storm.zookeeper.port`` (2181), ``storm.zookeeper.root``
        (``/storm``, created if absent and used as a chroot),
        ``storm.zookeeper.session.timeout`` (ms, 20000).
    :param timeout: seconds to wait for the first connection.
    :param request_timeout: seconds to wait for a reply before raising
        :class:`NotConnectedError`; the session timeout if ``None``.
    :raises NotConnectedError: if ZooKeeper cannot be reached within ``timeout``.
    """
    return DistributedClusterState(conf, timeout=timeout, request_timeout=request_timeout)
