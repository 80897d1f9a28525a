"""One ZooKeeper reader: a follower's mirror reads the leader's copy in Redis.

A leader's ClusterMirror reads a real ZooKeeper through a PublishingState; a
follower's ClusterMirror reads a real Redis through a ReplicaState; the
cluster is written through a StormClusterState of its own. The follower must
read what ZooKeeper holds, as the leader does.
"""

from __future__ import annotations

import json
import threading

import pytest

from bench import live_servers
from clusterstate import StormBase, TaskInfo, mk_distributed_cluster_state
from clusterstate.mirror import ClusterMirror
from clusterstate.protocol import CONNECTED, LOST
from clusterstate.replica import PublishingState, ReadOnlyStateError, ReplicaState
from clusterstate.storm import mk_storm_cluster_state
from tests.clusterstate.mirror_helpers import ChangeLog, wait_mirror_equals
from tests.clusterstate.test_mirror import assignment, heartbeat, populate
from tests.helpers import WAIT, Recorder, delete_roots, wait_for


@pytest.fixture
def cluster(zk_conf):
    """The writing side, the leader's ZooKeeper session, and what to close at the end."""
    opened = []

    def session():
        state = mk_distributed_cluster_state(zk_conf)
        opened.append(state)
        return state

    writer = mk_storm_cluster_state(session())
    yield writer, session
    for thing in reversed(opened):
        thing.close()


@pytest.fixture
def replicas(redis_server):
    """``lead(state)`` and ``follow()``: leader and follower mirrors, stopped at the end."""
    import redis

    stops = []

    def lead(state, seed=None, carry=None):
        client = redis.Redis.from_url(redis_server.url)
        publisher = PublishingState(state, client)
        mirror = ClusterMirror(publisher, heartbeat_secs=0.2)
        publisher.follow(mirror)
        if seed is not None:
            assert mirror.seed(seed)
        if carry is not None:
            assert publisher.carry_on(carry)
        mirror.start(wait=WAIT)
        stops.extend((client.close, publisher.stop, mirror.stop))
        return mirror, publisher

    def follow():
        replica = ReplicaState(redis_server.url, poll_secs=0.2)
        mirror = ClusterMirror(replica, heartbeat_secs=0.2)
        changes = ChangeLog()
        mirror.subscribe(changes)
        connection = Recorder()
        replica.add_connection_listener(connection)
        mirror.start(wait=WAIT)
        assert mirror.connected
        stops.extend((replica.close, mirror.stop))
        return mirror, replica, changes, connection

    yield lead, follow
    for stop in reversed(stops):
        stop()


def test_a_follower_follows_the_leaders_changes(cluster, replicas):
    writer, session = cluster
    lead, follow = replicas
    populate(writer)
    leader, _publisher = lead(session())
    follower, replica, changes, _ = follow()
    wait_mirror_equals(follower, writer)

    # a storm added
    writer.set_task("storm-new", 1, TaskInfo("spout-x", "spout"))
    writer.set_assignment("storm-new", assignment([1]))
    writer.activate_storm("storm-new", StormBase("fresh", 1_300_000_000))
    writer.setup_heartbeats("storm-new")
    writer.set_task_heartbeat("storm-new", 1, heartbeat(emitted=7))
    wait_mirror_equals(follower, writer)
    assert follower.storm_base("storm-new").storm_name == "fresh"

    # an error, delivered once with its text
    writer.report_task_error("storm-1", 2, "boom\n  at replica")
    wait_for(lambda: [e for c in changes.changes if c.kind == "errors" for e in c.errors])
    wait_mirror_equals(follower, writer)
    delivered = [e.error for c in changes.changes if c.kind == "errors" for e in c.errors]
    assert delivered == ["boom\n  at replica"]

    # a heartbeat, and a task's death (its heartbeat node gone)
    writer.set_task_heartbeat("storm-0", 1, heartbeat(time_secs=1_300_000_999, emitted=99))
    writer.remove_task_heartbeat("storm-0", 2)
    wait_mirror_equals(follower, writer)
    assert follower.task_heartbeat("storm-0", 1).time_secs == 1_300_000_999
    assert follower.task_heartbeat("storm-0", 2) is None

    # a storm removed
    writer.deactivate_storm("storm-1")
    writer.remove_storm("storm-1")
    writer.teardown_heartbeats("storm-1")
    writer.teardown_task_errors("storm-1")
    wait_mirror_equals(follower, writer)
    assert "storm-1" not in follower.assignments()

    # the follower read Redis alone, and only writes to ZooKeeper are refused
    assert replica.events_delivered > 0
    with pytest.raises(ReadOnlyStateError):
        replica.set_data("/storms/x", b"")
    wait_mirror_equals(leader, writer)


def test_a_new_leader_starts_a_new_generation_and_the_follower_resyncs(cluster, replicas):
    writer, session = cluster
    lead, follow = replicas
    populate(writer, storms=2, tasks=3, errors=1)
    _leader, publisher = lead(session())
    follower, replica, _changes, connection = follow()
    first = replica.generation
    resyncs = follower.resyncs

    publisher.stop()  # the leader goes: its followers are told
    connection.wait_for_event(LOST)
    wait_for(lambda: not follower.connected)
    writer.activate_storm("storm-late", StormBase("late", 1_300_000_000))
    writer.set_assignment("storm-late", assignment([1]))

    _second, publisher2 = lead(session())
    wait_for(lambda: replica.generation == publisher2.generation)
    assert replica.generation != first
    assert connection.events[-1] == CONNECTED and LOST in connection.events
    wait_for(lambda: follower.connected and follower.resyncs > resyncs)
    wait_mirror_equals(follower, writer)
    assert follower.storm_base("storm-late").storm_name == "late"


def test_a_new_leader_seeded_from_its_followers_copy_announces_a_whole_copy(cluster, replicas):
    """A new leader begins with the copy it followed (at once) and reads ZooKeeper whole
    behind it: what it announces to the followers holds every node, those it knew too."""
    writer, session = cluster
    lead, follow = replicas
    populate(writer, storms=2, tasks=3, errors=2)
    _leader, publisher = lead(session())
    successor, _replica, _changes, _connection = follow()
    wait_mirror_equals(successor, writer)
    publisher.stop()  # the leader goes
    wait_for(lambda: not successor.connected)
    writer.report_task_error("storm-0", 1, "while nobody led")

    # (its copy gone with the leader, the follower's mirror still holds what it last read)
    new, publisher2 = lead(session(), seed=successor)
    wait_for(lambda: publisher2.announced)
    assert new.resyncs == 1  # announced once it had read ZooKeeper whole, not before
    wait_mirror_equals(new, writer)
    # a follower that comes now reads the new copy whole: the errors and heartbeats the
    # seed knew (and the new leader did not need to learn) are in it
    late, replica, _changes, _connection = follow()
    assert replica.generation == publisher2.generation
    wait_mirror_equals(late, writer)


class _Held:
    """A ClusterState whose reads wait until :attr:`released` is set."""

    def __init__(self, state):
        self.state = state
        self.released = threading.Event()

    def _wait(self):
        assert self.released.wait(WAIT), "never released"

    def get_children_many(self, paths, watch=False):
        self._wait()
        return self.state.get_children_many(paths, watch)

    def get_data_many(self, paths, watch=False):
        self._wait()
        return self.state.get_data_many(paths, watch)

    def __getattr__(self, name):
        return getattr(self.state, name)


class _LeaderGone:
    """Two followers of a leader that went: ``successor`` (whose copy a new leader begins
    with) and ``other``; ``last`` is the gone leader's generation, ``resyncs`` the other's
    mirror's whole reads so far, ``changes`` and ``connection`` what the other was told."""

    def __init__(self, cluster, replicas, **populated):
        writer, session = cluster
        lead, follow = replicas
        populate(writer, **populated)
        _leader, publisher = lead(session())
        self.successor, successor_replica, _changes, _connection = follow()
        self.other, self.other_replica, self.changes, self.connection = follow()
        wait_mirror_equals(self.successor, writer)
        wait_mirror_equals(self.other, writer)
        self.last, self.resyncs = successor_replica.last_generation, self.other.resyncs
        publisher.stop()  # the leader goes
        wait_for(lambda: not self.other.connected and not self.successor.connected)
        assert successor_replica.last_generation == self.last


def test_a_new_leader_carries_on_the_last_copy_for_its_followers_at_once(cluster, replicas):
    """The followers adopt the new leader's copy in the time of the take-over: it begins as
    the last leader's (copied in Redis), and what changed meanwhile comes as changes once the
    new leader has read ZooKeeper, each told once."""
    writer, session = cluster
    lead, follow = replicas
    gone = _LeaderGone(cluster, replicas, storms=2, tasks=3, errors=2)
    successor, other, other_replica = gone.successor, gone.other, gone.other_replica
    last, changes = gone.last, gone.changes
    writer.report_task_error("storm-0", 1, "while nobody led")
    changes.clear()

    held = _Held(session())
    try:
        new, publisher2 = lead(held, seed=successor, carry=last)
        # announced while the new leader's reads of ZooKeeper still wait
        wait_for(lambda: publisher2.announced)
        assert new.resyncs == 0 and publisher2.generation != last
        wait_for(lambda: other_replica.generation == publisher2.generation and other.connected)
        # the other follower read the copy carried on: whole, as the last leader left it
        before = [e.error for e in successor.task_errors("storm-0", 1)]
        assert [e.error for e in other.task_errors("storm-0", 1)] == before
        assert other.task_errors("storm-0", 2) == successor.task_errors("storm-0", 2)
        assert not changes.of("errors")
    finally:
        held.released.set()
    wait_mirror_equals(new, writer)
    wait_mirror_equals(other, writer)
    # what came meanwhile reached the follower as a change, once; nothing held before again
    assert [e.error for c in changes.of("errors") for e in c.errors] == ["while nobody led"]
    # and a follower that comes now reads the whole cluster
    late, _replica, _changes, _connection = follow()
    wait_mirror_equals(late, writer)


def test_a_follower_of_the_last_copy_carries_on_with_what_it_read(cluster, replicas):
    """A follower that had every change of the last leader's copy does not read the new
    leader's copy whole (seconds at 20,000 tasks, its sockets waiting): the copy begins as
    that one, so it is connected again at once with what it holds, and what changed meanwhile
    comes as changes, once."""
    writer, session = cluster
    lead, _follow = replicas
    gone = _LeaderGone(cluster, replicas, storms=2, tasks=3, errors=2)
    other, other_replica, changes, connection = (
        gone.other,
        gone.other_replica,
        gone.changes,
        gone.connection,
    )
    writer.report_task_error("storm-0", 1, "while nobody led")
    writer.activate_storm("storm-late", StormBase("late", 1_300_000_000))
    writer.set_assignment("storm-late", assignment([1]))
    changes.clear()

    new, publisher2 = lead(session(), seed=gone.successor, carry=gone.last)
    wait_for(lambda: other_replica.generation == publisher2.generation and other.connected)
    assert other_replica.resumed and connection.events[-2:] == [LOST, CONNECTED]
    wait_mirror_equals(new, writer)
    wait_mirror_equals(other, writer)
    assert other.resyncs == gone.resyncs  # nothing read whole again
    assert [e.error for c in changes.of("errors") for e in c.errors] == ["while nobody led"]
    assert other.storm_base("storm-late").storm_name == "late"
    # and it follows the new copy's changes
    writer.report_task_error("storm-1", 2, "after")
    wait_mirror_equals(other, writer)
    assert other.task_errors("storm-1", 2)[-1].error == "after"


def test_changes_read_before_a_carried_copy_is_announced_reach_a_follower_carrying_on(
    cluster, replicas, redis_server
):
    """The new leader's read may find what changed meanwhile before its copy is announced:
    those changes are published after the announcement, not dropped, or a follower carrying
    on with what it held would never learn of them."""
    import redis

    writer, session = cluster
    gone = _LeaderGone(cluster, replicas, storms=1, tasks=2, errors=1)
    other, other_replica, changes = gone.other, gone.other_replica, gone.changes
    writer.report_task_error("storm-0", 1, "while nobody led")
    changes.clear()

    client = redis.Redis.from_url(redis_server.url)
    publisher2 = PublishingState(session(), client)
    new = ClusterMirror(publisher2, heartbeat_secs=0.2)
    publisher2.follow(new)
    assert new.seed(gone.successor)
    try:
        with publisher2._writing:  # its writer waits: nothing is written or announced yet
            assert publisher2._carry_on(gone.last)
            new.start(wait=None)
            wait_for(lambda: new.resyncs == 1)  # the changes it read are recorded
            assert not publisher2.announced
        wait_for(lambda: other_replica.generation == publisher2.generation and other.connected)
        assert other_replica.resumed
        wait_mirror_equals(other, writer)
        assert [e.error for c in changes.of("errors") for e in c.errors] == ["while nobody led"]
    finally:
        new.stop()
        publisher2.stop()
        client.close()


def test_a_follower_that_missed_a_change_of_the_last_copy_reads_the_next_whole(cluster, replicas):
    writer, session = cluster
    lead, _follow = replicas
    gone = _LeaderGone(cluster, replicas, storms=1, tasks=2, errors=1)
    other, other_replica, last = gone.other, gone.other_replica, gone.last
    # a change of the last copy told after the follower let it go (a deposed leader still
    # writing): nobody applied it
    other_replica._on_message(json.dumps({"g": last, "e": [["node-data-changed", "/x"]]}))

    _new, publisher2 = lead(session(), seed=gone.successor, carry=last)
    wait_for(lambda: other_replica.generation == publisher2.generation)
    assert not other_replica.resumed
    wait_for(lambda: other.connected and other.resyncs > gone.resyncs)
    wait_mirror_equals(other, writer)


def test_a_leader_killed_silently_is_noticed_when_its_announcement_expires(
    cluster, replicas, monkeypatch
):
    from clusterstate import replica as replica_module

    monkeypatch.setattr(replica_module, "LEADER_TTL_SECS", 1)
    writer, session = cluster
    lead, follow = replicas
    populate(writer, storms=1, tasks=2, errors=0)
    _leader, publisher = lead(session())
    follower, _replica, _changes, connection = follow()
    # the writer dies without a word (as a SIGKILLed process would): nothing is withdrawn
    monkeypatch.setattr(publisher, "_withdraw", lambda: None)
    publisher.stop()
    connection.wait_for_event(LOST)
    wait_for(lambda: not follower.connected)


def test_the_follower_reconnects_after_a_redis_restart(cluster, replicas, redis_server):
    writer, session = cluster
    lead, follow = replicas
    populate(writer, storms=2, tasks=3, errors=1)
    _leader, publisher = lead(session())
    follower, replica, _changes, connection = follow()
    first = publisher.generation

    redis_server.stop()
    connection.wait_for_event(LOST)
    wait_for(lambda: not follower.connected)
    writer.activate_storm("storm-meanwhile", StormBase("meanwhile", 1_300_000_000))
    writer.set_assignment("storm-meanwhile", assignment([1]))
    redis_server.start()

    # the restarted Redis is empty: the leader writes its copy again, as a new generation
    wait_for(lambda: publisher.generation != first and publisher.announced)
    wait_for(lambda: follower.connected and replica.generation == publisher.generation)
    wait_mirror_equals(follower, writer)
    assert follower.storm_base("storm-meanwhile").storm_name == "meanwhile"
    # and follows changes again
    writer.report_task_error("storm-0", 1, "after the restart")
    wait_mirror_equals(follower, writer)


def _mntr(zk_server) -> dict[str, str]:
    from clusterstate.zkserver import four_letter_word

    text = four_letter_word(zk_server.host, zk_server.port, "mntr")
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def test_a_follower_daphne_serves_the_relays_copy_without_reading_zookeeper(
    zk_server, tmp_path, server_database_factory, redis_server
):
    """`manage.py relay` leads; a daphne with REDIS_URL follows: it shows a storm the writer
    creates, and opened no ZooKeeper session of its own meanwhile."""
    import json
    import urllib.request
    import uuid

    import redis

    from tests.helpers import storm_conf
    from tests.stormui.conftest import write_known_cluster

    root = f"/t/{uuid.uuid4().hex}"
    conf = storm_conf(zk_server, root)
    known = write_known_cluster(conf)
    procs = []
    client = redis.Redis.from_url(redis_server.url)
    try:
        env = live_servers.server_env(
            zk_server.connect_string,
            root,
            server_database_factory(tmp_path),
            REDIS_URL=redis_server.url,
            STORMUI_SCHEDULER_THREAD="false",
        )
        live_servers.migrate(env)
        procs.append(live_servers.start_relay(env, tmp_path))
        wait_for(lambda: client.get("stormui:replica:leader"), message="no leader's copy")
        sessions = int(_mntr(zk_server)["zk_num_alive_connections"])

        proc, url = live_servers.start_daphne(env, tmp_path, name="follower")
        procs.append(proc)
        wait_for(
            lambda: b"reading the leader's generation" in (tmp_path / "follower.log").read_bytes()
        )
        writer = known.writer
        writer.activate_storm("replicated-1", StormBase("replicated", 1_300_000_000))
        writer.set_task("replicated-1", 1, TaskInfo("spout-x", "spout"))
        writer.set_assignment("replicated-1", assignment([1]))
        live_servers.wait_http(f"{url}/api/v1/topology/replicated-1", proc, timeout=WAIT)
        with urllib.request.urlopen(f"{url}/api/v1/topology/replicated-1", timeout=WAIT) as r:
            assert json.load(r)["name"] == "replicated"

        # the follower's pages came from Redis: ZooKeeper saw one new session only, the
        # follower's candidacy in the election (stormui.leader), and no mirror's
        assert int(_mntr(zk_server)["zk_num_alive_connections"]) == sessions + 1
    finally:
        for proc in reversed(procs):
            live_servers.stop(proc)
        client.close()
        known.writer.disconnect()
        known.writer.cluster_state.close()
        delete_roots(conf, root)


# -- a follower's sockets once its copy is whole again ------------------------------------------


class _CopySource:
    """What :func:`stormui.live.watch_copy` reads of a source: its connection and changes."""

    def __init__(self):
        self.zk_connected = True
        self.listeners = []

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def say(self, connected: bool) -> None:  # as the mirror's thread tells it
        from clusterstate.mirror import MirrorChange

        self.zk_connected = connected
        for listener in list(self.listeners):
            listener(MirrorChange("connection"))


@pytest.mark.asyncio
@pytest.mark.parametrize("leads", [False, True])
async def test_a_followers_sockets_resync_once_its_copy_is_whole_again(monkeypatch, leads):
    """A follower's copy lost and read again (a new leader's generation): its own sockets,
    and only its own, get a resync once it is whole; a leader's relay does that itself."""
    import asyncio
    import threading

    from stormui import live

    told = []

    class Layer:  # the one method watch_copy needs; the real one is tested below
        def tell_group_here(self, group, message):
            told.append((group, message))

    monkeypatch.setattr(live, "get_channel_layer", Layer)
    monkeypatch.setattr(live, "relays_here", lambda: leads)
    monkeypatch.setattr(live, "_watched", None)
    source = _CopySource()
    live.watch_copy(source)
    live.watch_copy(source)  # once however often a socket asks
    assert len(source.listeners) == 1
    source.say(True)  # no change of state: nothing to do
    loop = asyncio.get_running_loop()
    handed = asyncio.Event()

    def mirror_thread():  # the copy lost and whole again; then a mark, handed over after it
        source.say(False)
        source.say(True)
        loop.call_soon_threadsafe(handed.set)

    thread = threading.Thread(target=mirror_thread)
    thread.start()
    await asyncio.wait_for(handed.wait(), WAIT)  # what the thread handed over before ran
    thread.join()
    expected = [] if leads else [(live.STATUS_GROUP, {"type": "resync.requested"})]
    assert told == expected


@pytest.mark.asyncio
async def test_the_redis_layer_tells_this_process_sockets_alone(redis_server):
    import asyncio

    from stormui.redislayer import ReconnectingRedisChannelLayer

    layer = ReconnectingRedisChannelLayer(hosts=[redis_server.url])
    other = ReconnectingRedisChannelLayer(hosts=[redis_server.url])  # another process's
    mine, elsewhere, outside = (
        await layer.new_channel(),
        await other.new_channel(),
        await layer.new_channel(),
    )
    try:
        await layer.group_add("status", mine)
        await other.group_add("status", elsewhere)
        await layer.group_add("other", outside)
        assert layer.tell_group_here("status", {"type": "resync.requested"}) == 1
        assert await asyncio.wait_for(layer.receive(mine), WAIT) == {"type": "resync.requested"}
        # nothing went through Redis: the other process's channel and the other group's
        # get nothing (what a group_send then brings comes first)
        await other.group_send("status", {"type": "probe"})
        assert await asyncio.wait_for(other.receive(elsewhere), WAIT) == {"type": "probe"}
        await layer.group_send("other", {"type": "probe"})
        assert await asyncio.wait_for(layer.receive(outside), WAIT) == {"type": "probe"}
    finally:
        for channel, owner in ((mine, layer), (elsewhere, other), (outside, layer)):
            for group in ("status", "other"):
                await owner.group_discard(group, channel)
        await layer.flush()
        await other.flush()


@pytest.mark.asyncio
async def test_an_idle_channel_outlives_the_layers_blocking_receive(redis_server, monkeypatch):
    """A socket on a quiet cluster hears nothing for longer than channels_redis blocks a
    receive (5 s): the layer must not take that for Redis gone (and resync every socket)."""
    import asyncio

    from stormui import metrics
    from stormui.env import redis_hosts
    from stormui.redislayer import ReconnectingRedisChannelLayer

    layer = ReconnectingRedisChannelLayer(hosts=redis_hosts(redis_server.url))
    channel = await layer.new_channel()
    empty = asyncio.Event()
    blocking = layer._brpop_with_clean

    async def counted(*args, **kwargs):
        result = await blocking(*args, **kwargs)
        if result is None:  # a whole blocking receive ran out with nothing
            empty.set()
        return result

    monkeypatch.setattr(layer, "_brpop_with_clean", counted)
    failures = metrics.channel_layer.failures
    receiving = asyncio.ensure_future(layer.receive(channel))
    try:
        await asyncio.wait_for(empty.wait(), WAIT)
        assert not layer.lost and metrics.channel_layer.failures == failures
        await layer.send(channel, {"type": "probe"})
        assert await asyncio.wait_for(receiving, WAIT) == {"type": "probe"}
    finally:
        receiving.cancel()
        await layer.flush()


def test_a_copy_gone_from_redis_is_not_carried_on(cluster, redis_server):
    import redis

    _writer, session = cluster
    client = redis.Redis.from_url(redis_server.url)
    publisher = PublishingState(session(), client)
    try:
        assert not publisher.carry_on("no-such-generation")
        assert publisher.generation == "" and publisher.generations == 0
        assert not client.keys("stormui:replica:*:data")  # nothing copied, nothing left
        publisher.get_children("/")  # once something was read, it is too late
        with pytest.raises(RuntimeError):
            publisher.carry_on("no-such-generation")
    finally:
        publisher.stop()
        client.close()


def test_a_new_leaders_source_begins_with_the_last_view_of_the_copy_it_followed(
    zk_server, zk_conf, redis_server, settings, monkeypatch
):
    """A new leader's pages and snapshots need no whole build first (seconds at 20,000
    tasks): its source begins with the view its follower's source had built, and rebuilds
    only the storms its read of ZooKeeper finds changed."""
    from stormui import leader
    from stormui.source import Seed, Source

    settings.STORMUI_ZK_SERVERS = [zk_server.connect_string]
    settings.STORMUI_ZK_ROOT = zk_conf["storm.zookeeper.root"]
    settings.STORMUI_STORE = "zookeeper"
    settings.STORMUI_MIRROR = True
    settings.REDIS_URL = redis_server.url
    monkeypatch.setattr(leader, "relays_here", lambda: True)
    # (no background builds: the views looked at are the ones pages would get on demand)
    monkeypatch.setattr(Source, "_build_loop", lambda self: None)
    writer = mk_storm_cluster_state(mk_distributed_cluster_state(zk_conf))
    populate(writer, storms=3, tasks=2, errors=1)
    followed = ClusterMirror(mk_distributed_cluster_state(zk_conf), heartbeat_secs=60)
    followed.start(wait=WAIT)
    from stormui import cluster

    last = cluster.build_cluster_view(
        followed,
        now=1_300_000_000,
        connected=True,
        synced_at=followed.synced_at,
        task_timeout=30,
        supervisor_timeout=60,
    )
    followed.stop()
    writer.report_task_error("storm-1", 1, "while nobody led")

    source = Source(seed=Seed(followed, None, last))
    try:
        assert source.replica == "lead" and not source.syncing
        # at once: the view it began with
        assert source.cluster_view().storms["storm-0"] is last.storms["storm-0"]
        # once its read has told what differs, that storm alone is built again
        wait_for(lambda: source.mirror.resyncs == 1)
        now = source.cluster_view()
        assert now.storms["storm-0"] is last.storms["storm-0"]
        assert now.storms["storm-1"] is not last.storms["storm-1"]
        assert "while nobody led" in [e.error for e in now.storms["storm-1"].errors]
    finally:
        source.close()
        followed._state.close()
        writer.disconnect()
        writer.cluster_state.close()
