"""The ``ClusterState`` protocol: a thin layer over ZooKeeper.

It is the original's nine operations plus what a dashboard needs: sequential
nodes, pipelined reads of many nodes, and connection-state listeners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

NODE_CREATED = "node-created"
NODE_DELETED = "node-deleted"
NODE_DATA_CHANGED = "node-data-changed"
NODE_CHILDREN_CHANGED = "node-children-changed"
EVENT_TYPES = (NODE_CREATED, NODE_DELETED, NODE_DATA_CHANGED, NODE_CHILDREN_CHANGED)

CONNECTED = "connected"
SUSPENDED = "suspended"
LOST = "lost"
CONNECTION_STATES = (CONNECTED, SUSPENDED, LOST)

WatchCallback = Callable[[str, str], None]
ConnectionListener = Callable[[str], None]


@runtime_checkable
class ClusterState(Protocol):
    """Storm's ``ClusterState``. Paths are relative to the root (a chroot)."""

    def set_ephemeral_node(self, path: str, data: bytes) -> None:
        """Create ``path`` as an ephemeral node owned by this session, or set its data."""

    def delete_node(self, path: str) -> None:
        """Delete ``path`` and everything below it; no error if absent."""

    def set_data(self, path: str, data: bytes) -> None:
        """Set ``path``'s data, creating it (persistent) and its parents if absent."""

    def get_data(self, path: str, watch: bool = False) -> bytes | None:
        """``path``'s data, or ``None`` if absent; ``watch`` leaves a one-shot watch."""

    def get_children(self, path: str, watch: bool = False) -> list[str]:
        """``path``'s children names, ``[]`` if absent."""

    def mkdirs(self, path: str) -> None:
        """Create ``path`` and its parents as persistent nodes if absent."""

    def close(self) -> None:
        """Close the session; its ephemeral nodes vanish. Harmless if repeated."""

    def register(self, callback: WatchCallback) -> str:
        """Call ``callback(event_type, path)`` for every fired watch; returns an id."""

    def unregister(self, callback_id: str) -> None:
        """Forget a callback registered with :meth:`register`."""

    def create_sequential(self, path: str, data: bytes) -> str:
        """Create persistent sequential node ``path`` + 10-digit sequence; return its path."""

    def get_data_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, bytes | None]:
        """Data of many nodes read at once (pipelined); absent ones map to ``None``."""

    def get_children_many(self, paths: Iterable[str], watch: bool = False) -> dict[str, list[str]]:
        """Children of many nodes read at once (pipelined); absent ones map to ``[]``."""

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call ``listener(state)`` with ``"connected"``, ``"suspended"`` or ``"lost"``."""

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        """Stop calling ``listener``."""

    @property
    def connected(self) -> bool:
        """True while the session is connected."""
