"""Records stored in ZooKeeper, as frozen dataclasses, and their JSON codec.

Each record's fields are its JSON keys, in the order of
``docs/contract/cluster-state.md`` ("Data"). Constructors
normalise (task-id keys become ints, ``task_node_port`` values
``(node_id, port)`` tuples, ``worker_ports`` a tuple of ints) so that a record
read back equals the record written. Unknown JSON keys are ignored; data that
does not fit the schema raises :class:`~clusterstate.errors.UnreadableNodeError`
naming the node. Nothing is ever pickled or evaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import UnreadableNodeError
from .paths import check_task_id

WINDOWS = ("600", "10800", "86400", "all-time")
STAT_COUNTS = ("emitted", "transferred", "acked", "failed")
COMPONENT_TYPES = ("spout", "bolt")


# Storm's writers are Java: an integer is a long, a number a long or a finite double. Bounding
# every number to a long keeps sums over a whole cluster (and latency times count) finite.
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer")
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError(f"{what} is out of range")
    return value


def _str(value, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _number(value, what: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number")
    # NaN fails both comparisons
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError(f"{what} is out of range")
    return value


def _not_json(constant: str):
    # Python's reader takes NaN and Infinity, which are not JSON
    raise ValueError(f"{constant} is not a JSON number")


# one reader for every node: json.loads with an argument builds a new one per call
_JSON = json.JSONDecoder(parse_constant=_not_json)


def _dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    return value


def _task_key(key, what: str) -> int:
    try:
        return check_task_id(key)
    except ValueError:
        raise ValueError(f"{what} has a key that is not a task id: {key!r}") from None


class _Record:
    """JSON conversion shared by every record."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (``None`` fields left out)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = self._encode_field(f.name, value)
        return out

    def _encode_field(self, name, value):
        return value

    @classmethod
    def from_json(cls, obj):
        """Build the record from a decoded JSON object; unknown keys are ignored.

        :raises ValueError: if ``obj`` does not fit the schema.
        """
        obj = _dict(obj, cls.__name__)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass(frozen=True)
class StormBase(_Record):
    storm_name: str
    launch_time_secs: int

    def __post_init__(self):
        _str(self.storm_name, "storm_name")
        _int(self.launch_time_secs, "launch_time_secs")


@dataclass(frozen=True)
class Assignment(_Record):
    master_code_dir: str
    node_host: dict
    task_node_port: dict
    task_start_time_secs: dict

    def __post_init__(self):
        _str(self.master_code_dir, "master_code_dir")
        node_host = {
            _str(k, "node_host key"): _str(v, "node_host value")
            for k, v in _dict(self.node_host, "node_host").items()
        }
        tnp = {}
        for k, v in _dict(self.task_node_port, "task_node_port").items():
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ValueError("task_node_port values must be [node_id, port]")
            tnp[_task_key(k, "task_node_port")] = (
                _str(v[0], "task_node_port node"),
                _int(v[1], "task_node_port port"),
            )
        starts = {
            _task_key(k, "task_start_time_secs"): _int(v, "task_start_time_secs value")
            for k, v in _dict(self.task_start_time_secs, "task_start_time_secs").items()
        }
        object.__setattr__(self, "node_host", node_host)
        object.__setattr__(self, "task_node_port", tnp)
        object.__setattr__(self, "task_start_time_secs", starts)

    def _encode_field(self, name, value):
        if name == "task_node_port":
            return {str(k): [n, p] for k, (n, p) in value.items()}
        if name == "task_start_time_secs":
            return {str(k): v for k, v in value.items()}
        return value


@dataclass(frozen=True)
class TaskInfo(_Record):
    component_id: str
    component_type: str | None = None

    def __post_init__(self):
        _str(self.component_id, "component_id")
        if self.component_type is not None and self.component_type not in COMPONENT_TYPES:
            raise ValueError("component_type must be 'spout' or 'bolt'")


@dataclass(frozen=True)
class SupervisorInfo(_Record):
    time_secs: int
    hostname: str
    worker_ports: tuple
    uptime_secs: int

    def __post_init__(self):
        _int(self.time_secs, "time_secs")
        _str(self.hostname, "hostname")
        if not isinstance(self.worker_ports, (list, tuple)):
            raise ValueError("worker_ports must be a list")
        ports = tuple(_int(p, "worker_ports entry") for p in self.worker_ports)
        object.__setattr__(self, "worker_ports", ports)
        _int(self.uptime_secs, "uptime_secs")

    def _encode_field(self, name, value):
        return list(value) if name == "worker_ports" else value


def _numbers_fine(values) -> bool:
    for n in values:
        # type(), not isinstance(): a bool is not a count
        if type(n) is not int and type(n) is not float or not _LONG_MIN <= n <= _LONG_MAX:
            return False
    return True


def _stats_fine(stats) -> bool:
    """The quick yes of :func:`check_stats`: every heartbeat is checked, so no message is
    built unless something is wrong."""
    if type(stats) is not dict:
        return False
    kind = stats.get("type")
    if kind not in COMPONENT_TYPES:
        return False
    if "rate" in stats and not _numbers_fine((stats["rate"],)):
        return False
    latency_key = "complete_latencies" if kind == "spout" else "process_latencies"
    for key in (*STAT_COUNTS, latency_key):
        windows = stats.get(key)
        if windows is None:
            continue
        if type(windows) is not dict:
            return False
        by_input = kind == "bolt" and key not in ("emitted", "transferred")
        for per in windows.values():
            if type(per) is not dict:
                return False
            if by_input:
                for v in per.values():
                    if type(v) is not dict or not _numbers_fine(v.values()):
                        return False
            elif not _numbers_fine(per.values()):
                return False
    return True


def check_stats(stats) -> dict:
    """Validate a heartbeat's stats object (the Stats shape of ``docs/contract/cluster-state.md``).

    :returns: ``stats`` unchanged.
    :raises ValueError: if it does not fit.
    """
    if _stats_fine(stats):
        return stats
    # the slow walk, to say exactly what is wrong
    _dict(stats, "stats")
    kind = stats.get("type")
    if kind not in COMPONENT_TYPES:
        raise ValueError("stats.type must be 'spout' or 'bolt'")
    if "rate" in stats:
        _number(stats["rate"], "stats.rate")
    latency_key = "complete_latencies" if kind == "spout" else "process_latencies"
    for key in (*STAT_COUNTS, latency_key):
        windows = stats.get(key)
        if windows is None:
            continue
        for window, per in _dict(windows, f"stats.{key}").items():
            for k, v in _dict(per, f"stats.{key}.{window}").items():
                if kind == "bolt" and key not in ("emitted", "transferred"):
                    for stream, n in _dict(v, f"stats.{key}.{window}.{k}").items():
                        _number(n, f"stats.{key}.{window}.{k}.{stream}")
                else:
                    _number(v, f"stats.{key}.{window}.{k}")
    return stats


@dataclass(frozen=True)
class TaskHeartbeat(_Record):
    time_secs: int
    uptime_secs: int
    stats: dict | None = None

    def __post_init__(self):
        _int(self.time_secs, "time_secs")
        _int(self.uptime_secs, "uptime_secs")
        if self.stats is not None:
            check_stats(self.stats)

    def to_json(self):
        # stats is always present on the wire, null when there are none
        return {"time_secs": self.time_secs, "uptime_secs": self.uptime_secs, "stats": self.stats}


@dataclass(frozen=True)
class TaskError:
    """One error of a task. ``seq`` is its node's sequence number (``{time-secs}-{seq}``
    names; ``None`` for the original's bare ``{time-secs}`` and for errors built by hand):
    what tells how many errors ZooKeeper trimmed between two read. It is left out of
    comparisons, so an error equals the same text at the same time however it was read."""

    error: str
    time_secs: int
    seq: int | None = field(default=None, compare=False)


def encode(record: _Record) -> bytes:
    """Serialise ``record`` to UTF-8 JSON bytes."""
    return json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True).encode("utf-8")


def decode(cls, data: bytes | None, path: str):
    """Deserialise node data into a record of type ``cls``.

    :param cls: the record class.
    :param data: the node's bytes, or ``None`` for a missing node.
    :param path: the node's path, named in any error.
    :returns: the record, or ``None`` if ``data`` is ``None``.
    :raises UnreadableNodeError: if the data is not JSON fitting the schema.
    """
    if data is None:
        return None
    try:
        obj = _JSON.decode(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: nested deeper than the reader goes ([[[[...)
        raise UnreadableNodeError(path, f"not UTF-8 JSON ({exc})") from None
    try:
        return cls.from_json(obj)
    except (TypeError, ValueError) as exc:
        raise UnreadableNodeError(path, str(exc)) from None


# -- task error nodes ------------------------------------------------------

_ERROR_NAME = re.compile(r"^(\d{1,12})(?:-(\d{10,}))?$")
# the last second of year 9999: a later time is no writer's clock, and no date can show it
MAX_ERROR_TIME_SECS = 253402300799


def parse_error_name(name: str) -> tuple[int, int | None] | None:
    """Split an error node name into ``(time_secs, sequence)``.

    ``{time-secs}-{sequence}`` (this port's sequential nodes) gives both;
    the original's bare ``{time-secs}`` gives ``(time_secs, None)``; anything
    else (a time past year 9999 too) gives ``None``.
    """
    m = _ERROR_NAME.match(name)
    if not m or int(m.group(1)) > MAX_ERROR_TIME_SECS:
        return None
    seq = m.group(2)
    return int(m.group(1)), (int(seq) if seq is not None else None)


def error_sort_key(name: str):
    """Oldest-first order of error node names: bare names first by time, then by sequence."""
    parsed = parse_error_name(name)
    if parsed is None:
        return (2, 0, name)
    time_secs, seq = parsed
    return (0, time_secs, name) if seq is None else (1, seq, name)


def ordered_error_names(names) -> list[str]:
    """The recognised error node names in ``names``, oldest first."""
    return sorted((n for n in names if parse_error_name(n) is not None), key=error_sort_key)


def decode_error(name: str, data: bytes, path: str) -> TaskError:
    """Build a :class:`TaskError` from an error node's name and UTF-8 text.

    Undecodable bytes are replaced rather than refused: an error's text is
    shown to people, never parsed.
    """
    parsed = parse_error_name(name)
    if parsed is None:
        raise UnreadableNodeError(path, "not an error node name")
    return TaskError(
        error=data.decode("utf-8", errors="replace"), time_secs=parsed[0], seq=parsed[1]
    )
