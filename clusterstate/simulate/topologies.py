"""The storms the simulated master submits, and the errors their tasks report.

Each topology is a small graph of spouts and bolts shaped like Storm's own
examples (``storm-starter``); :func:`make_error` writes a Java stack trace of
the kind a task of a given component would report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class _Component:
    id: str
    type: str  # "spout" or "bolt"
    weight: int  # share of the storm's tasks
    inputs: tuple = ()  # (component id, stream) pairs it subscribes to
    factor: float = 1.0  # tuples emitted per tuple received (bolts)
    streams: tuple = ("default",)  # streams it emits on; () for a sink
    package: str = "com.example"


@dataclass(frozen=True)
class _Topology:
    name: str
    components: tuple


def _spout(cid, pkg, weight=1, streams=("default",)):
    return _Component(cid, "spout", weight, (), 1.0, streams, pkg)


def _bolt(cid, pkg, weight, inputs, factor=1.0, streams=("default",)):
    inputs = tuple(i if isinstance(i, tuple) else (i, "default") for i in inputs)
    return _Component(cid, "bolt", weight, inputs, factor, streams, pkg)


TOPOLOGIES = (
    _Topology(
        "word-count",
        (
            _spout("sentence-spout", "storm.starter"),
            _bolt("split-bolt", "storm.starter", 3, ["sentence-spout"], 6.0),
            _bolt("count-bolt", "storm.starter", 2, ["split-bolt"], 1.0),
        ),
    ),
    _Topology(
        "click-stream",
        (
            _spout("click-spout", "com.example.clicks", 2),
            _bolt("parse-bolt", "com.example.clicks", 2, ["click-spout"], 1.0),
            _bolt("sessionize-bolt", "com.example.clicks", 3, ["parse-bolt"], 0.2),
            _bolt("db-bolt", "com.example.clicks", 1, ["sessionize-bolt"], 0.0, ()),
        ),
    ),
    _Topology(
        "trending-hashtags",
        (
            _spout("tweet-spout", "com.example.trends"),
            _bolt("hashtag-bolt", "com.example.trends", 2, ["tweet-spout"], 1.5),
            _bolt("rolling-count-bolt", "com.example.trends", 3, ["hashtag-bolt"], 0.5),
            _bolt("rank-bolt", "com.example.trends", 1, ["rolling-count-bolt"], 0.05),
        ),
    ),
    _Topology(
        "log-alerts",
        (
            _spout("log-spout", "com.example.logs", 2),
            _bolt("parse-bolt", "com.example.logs", 3, ["log-spout"], 1.0),
            _bolt("filter-bolt", "com.example.logs", 2, ["parse-bolt"], 0.1, ("alerts",)),
            _bolt("alert-bolt", "com.example.logs", 1, [("filter-bolt", "alerts")], 0.0, ()),
        ),
    ),
    _Topology(
        "fraud-detection",
        (
            _spout("payment-spout", "com.example.fraud"),
            _spout("account-spout", "com.example.fraud"),
            _bolt("enrich-bolt", "com.example.fraud", 2, ["payment-spout", "account-spout"]),
            _bolt("score-bolt", "com.example.fraud", 3, ["enrich-bolt"], 1.0),
            _bolt("alert-bolt", "com.example.fraud", 1, ["score-bolt"], 0.0, ()),
        ),
    ),
    _Topology(
        "etl-pipeline",
        (
            _spout("kafka-spout", "com.example.etl", 2),
            _bolt("transform-bolt", "com.example.etl", 3, ["kafka-spout"], 1.0),
            _bolt("hdfs-bolt", "com.example.etl", 2, ["transform-bolt"], 0.0, ()),
        ),
    ),
)


def _class_name(component_id: str) -> str:
    return "".join(part.capitalize() for part in component_id.split("-"))


# -- errors ------------------------------------------------------------------

_STORM_FRAMES = (
    "\tat backtype.storm.daemon.task$fn__{n1}$tuple_action_fn__{n2}.invoke(task.clj:{l1})\n"
    "\tat backtype.storm.daemon.task$mk_task_receiver$fn__{n3}.invoke(task.clj:{l2})\n"
    "\tat backtype.storm.disruptor$clojure_handler$reify__{n4}.onEvent(disruptor.clj:43)\n"
    "\tat backtype.storm.util$async_loop$fn__{n5}.invoke(util.clj:{l3})\n"
    "\tat clojure.lang.AFn.run(AFn.java:24)\n"
    "\tat java.lang.Thread.run(Thread.java:662)"
)
_SPOUT_FRAMES = (
    "\tat backtype.storm.daemon.task$fn__{n1}$fn__{n2}.invoke(task.clj:{l1})\n"
    "\tat backtype.storm.util$async_loop$fn__{n5}.invoke(util.clj:{l3})\n"
    "\tat clojure.lang.AFn.run(AFn.java:24)\n"
    "\tat java.lang.Thread.run(Thread.java:662)"
)

_BOLT_ERRORS = (
    "java.lang.NullPointerException\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    "\tat backtype.storm.topology.BasicBoltExecutor.execute(BasicBoltExecutor.java:32)\n"
    + _STORM_FRAMES,
    "java.lang.RuntimeException: java.io.IOException: Broken pipe\n"
    "\tat backtype.storm.task.ShellBolt.execute(ShellBolt.java:152)\n"
    + _STORM_FRAMES
    + "\nCaused by: java.io.IOException: Broken pipe\n"
    "\tat java.io.FileOutputStream.writeBytes(Native Method)\n"
    "\tat java.io.FileOutputStream.write(FileOutputStream.java:282)\n"
    "\tat java.io.BufferedOutputStream.flush(BufferedOutputStream.java:123)\n"
    "\tat backtype.storm.utils.ShellProcess.writeMessage(ShellProcess.java:74)\n"
    "\tat backtype.storm.task.ShellBolt.execute(ShellBolt.java:150)\n"
    "\t... 6 more",
    'java.lang.NumberFormatException: For input string: "{value}"\n'
    "\tat java.lang.NumberFormatException.forInputString(NumberFormatException.java:48)\n"
    "\tat java.lang.Long.parseLong(Long.java:410)\n"
    "\tat java.lang.Long.parseLong(Long.java:468)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    "\tat backtype.storm.topology.BasicBoltExecutor.execute(BasicBoltExecutor.java:32)\n"
    + _STORM_FRAMES,
    "java.lang.RuntimeException: java.sql.SQLException: "
    "Communications link failure to db{n6}.example.com:3306\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n"
    + _STORM_FRAMES
    + "\nCaused by: java.sql.SQLException: Communications link failure\n"
    "\tat com.mysql.jdbc.SQLError.createCommunicationsException(SQLError.java:1074)\n"
    "\tat com.mysql.jdbc.MysqlIO.send(MysqlIO.java:3322)\n"
    "\tat com.mysql.jdbc.ConnectionImpl.execSQL(ConnectionImpl.java:2467)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line2})\n"
    "\t... 6 more",
    "java.lang.OutOfMemoryError: GC overhead limit exceeded\n"
    "\tat java.util.HashMap.addEntry(HashMap.java:766)\n"
    "\tat java.util.HashMap.put(HashMap.java:402)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n" + _STORM_FRAMES,
    "java.lang.IllegalStateException: tuple {value} acked twice\n"
    "\tat backtype.storm.task.OutputCollectorImpl.ack(OutputCollectorImpl.java:84)\n"
    "\tat {pkg}.{cls}.execute({cls}.java:{line})\n" + _STORM_FRAMES,
)

_SPOUT_ERRORS = (
    "java.lang.RuntimeException: org.apache.thrift7.transport.TTransportException: "
    "java.net.ConnectException: Connection refused\n"
    "\tat backtype.storm.spout.KestrelThriftSpout.nextTuple(KestrelThriftSpout.java:{line})\n"
    + _SPOUT_FRAMES
    + "\nCaused by: java.net.ConnectException: Connection refused\n"
    "\tat java.net.PlainSocketImpl.socketConnect(Native Method)\n"
    "\tat java.net.Socket.connect(Socket.java:529)\n"
    "\tat org.apache.thrift7.transport.TSocket.open(TSocket.java:178)\n"
    "\t... 4 more",
    "java.lang.RuntimeException: java.util.concurrent.TimeoutException: "
    "no ack for message {value} after 30000 ms\n"
    "\tat {pkg}.{cls}.fail({cls}.java:{line})\n" + _SPOUT_FRAMES,
    "java.lang.NullPointerException\n\tat {pkg}.{cls}.nextTuple({cls}.java:{line})\n"
    + _SPOUT_FRAMES,
)


def make_error(rng: random.Random, component_id: str, component_type: str, package: str):
    """A realistic multi-line Java stack trace for a task of the given component."""
    templates = _SPOUT_ERRORS if component_type == "spout" else _BOLT_ERRORS
    numbers = {f"n{i}": rng.randint(1000, 9999) for i in range(1, 6)}
    return rng.choice(templates).format(
        pkg=package,
        cls=_class_name(component_id),
        line=rng.randint(30, 240),
        line2=rng.randint(30, 240),
        l1=rng.randint(150, 400),
        l2=rng.randint(150, 400),
        l3=rng.randint(300, 400),
        n6=rng.randint(1, 9),
        value=rng.choice(["", "NaN", "12a", "null", str(rng.getrandbits(40))]),
        **numbers,
    )
