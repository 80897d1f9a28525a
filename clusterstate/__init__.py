"""A Python port of Storm's ``backtype.storm.cluster``: its cluster state in ZooKeeper."""

from importlib import import_module

from .errors import NotConnectedError, UnreadableNodeError
from .protocol import ClusterState
from .reader import StormReader
from .records import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskError,
    TaskHeartbeat,
    TaskInfo,
)

_LAZY = {
    "mk_distributed_cluster_state": "zkstate",
    "DistributedClusterState": "zkstate",
    "MemoryStore": "memstate",
    "MemoryClusterState": "memstate",
    "mk_memory_cluster_state": "memstate",
    "StormClusterState": "storm",
    "mk_storm_cluster_state": "storm",
}

__all__ = [
    "Assignment",
    "ClusterState",
    "NotConnectedError",
    "StormBase",
    "StormReader",
    "SupervisorInfo",
    "TaskError",
    "TaskHeartbeat",
    "TaskInfo",
    "UnreadableNodeError",
    *_LAZY,
]


def __getattr__(name):
    # the implementations load on first use, so importing the records stays cheap
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
