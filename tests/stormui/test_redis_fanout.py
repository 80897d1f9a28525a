"""The Redis layer's fan-out (stormui.redislayer.FanOutRedisChannelLayer) against a real
Redis: a group message reaches each process once, through one subscription, and every
attached socket of the process from there; Redis restarted, they resync."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from stormui import metrics
from stormui.redislayer import CONNECTION_ERRORS, RECONNECTED, FanOutRedisChannelLayer
from tests.helpers import WAIT

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


class Process:
    """One daphne's layer and its sockets' handlers (what each was handed, in order)."""

    def __init__(self, url: str):
        self.layer = FanOutRedisChannelLayer(hosts=[url])
        self.got: dict[str, list[dict]] = {}
        self.arrived = asyncio.Event()

    async def socket(self, *groups: str) -> str:
        channel = await self.layer.new_channel()
        got = self.got[channel] = []

        def handler(message):
            got.append(message)
            self.arrived.set()

        self.layer.attach(channel, handler)
        for group in groups:
            await self.layer.group_add(group, channel)
        return channel

    async def until(self, predicate) -> None:
        """Waits (on the handlers' news, not the clock) until ``predicate()`` holds."""
        while not predicate():
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), WAIT)


async def subscribers(url: str, topic: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return dict(await client.pubsub_numsub(topic))[topic.encode()]
    finally:
        await client.aclose()


async def until_subscribers(url: str, topic: str, count: int) -> None:
    """Waits until Redis counts ``count`` subscribers of ``topic`` (an unsubscribe is sent
    at once but run by Redis after the call returns)."""
    async with asyncio.timeout(WAIT):
        while await subscribers(url, topic) != count:
            pass


@pytest_asyncio.fixture
async def processes(redis_server):
    made = []

    def make():
        made.append(Process(redis_server.url))
        return made[-1]

    yield make
    for process in made:
        await process.layer.flush()


async def test_a_group_message_reaches_each_process_once_and_each_socket_from_there(
    redis_server, processes, monkeypatch
):
    here, there, relay = processes(), processes(), processes()
    mine = [await here.socket("errors", "status") for _ in range(3)]
    theirs = [await there.socket("errors") for _ in range(2)]
    listener = await there.layer.new_channel()  # not attached: it receives through Redis
    await there.layer.group_add("errors", listener)
    decoded = []
    decode = here.layer.deserialize
    monkeypatch.setattr(here.layer, "deserialize", lambda data: decoded.append(1) or decode(data))

    await relay.layer.group_send("errors", {"type": "errors.reported", "errors": ["a"]})
    await relay.layer.group_send("errors", {"type": "errors.reported", "errors": ["b"]})
    await here.until(lambda: all(len(here.got[c]) == 2 for c in mine))
    await there.until(lambda: all(len(there.got[c]) == 2 for c in theirs))
    for process, channels in ((here, mine), (there, theirs)):
        for channel in channels:
            assert [m["errors"] for m in process.got[channel]] == [["a"], ["b"]]
    assert len(decoded) == 2  # once per message for the three sockets of the process
    # the listener joined through Redis and gets each message there, once
    for expected in ("a", "b"):
        message = await asyncio.wait_for(there.layer.receive(listener), WAIT)
        assert message["errors"] == [expected]
    # one subscription per process, and no socket is a member of Redis' own group
    assert await subscribers(redis_server.url, here.layer.topic("errors")) == 2
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        members = await client.zrange(here.layer._group_key("errors"), 0, -1)
    finally:
        await client.aclose()
    assert [m.decode() for m in members] == [listener]
    # a message of another group reaches its members alone
    await relay.layer.group_send("status", {"type": "relay.ticked", "text": "t"})
    await here.until(lambda: all(len(here.got[c]) == 3 for c in mine))
    assert all(len(there.got[c]) == 2 for c in theirs)


async def test_a_sockets_join_holds_every_message_sent_after_it(redis_server, processes):
    here, relay = processes(), processes()
    for n in range(20):  # each join subscribes anew: its group had no member here
        channel = await here.socket(f"page.{n}")
        await relay.layer.group_send(f"page.{n}", {"type": "page.changed", "n": n})
        await here.until(lambda channel=channel: here.got[channel])
        assert here.got[channel] == [{"type": "page.changed", "n": n}]


async def test_sockets_joining_all_at_once_share_one_subscription(redis_server, processes):
    here, relay = processes(), processes()
    # as many browsers arriving together: the first joins make the connection meanwhile
    channels = await asyncio.gather(*(here.socket("errors", "status") for _ in range(50)))
    assert await subscribers(redis_server.url, here.layer.topic("errors")) == 1
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        clients = await client.client_list()
    finally:
        await client.aclose()
    assert sum(1 for c in clients if int(c.get("sub", 0))) == 1  # one connection subscribes
    await relay.layer.group_send("errors", {"type": "probe"})
    await here.until(lambda: all(here.got[c] for c in channels))
    assert all(here.got[c] == [{"type": "probe"}] for c in channels)


async def test_the_last_socket_to_leave_a_group_ends_its_subscription(redis_server, processes):
    here, relay = processes(), processes()
    first, second = await here.socket("errors"), await here.socket("errors")
    topic = here.layer.topic("errors")
    await here.layer.group_discard("errors", first)
    assert await subscribers(redis_server.url, topic) == 1  # the second one still listens
    await relay.layer.group_send("errors", {"type": "probe", "n": 1})
    await here.until(lambda: here.got[second])
    assert here.got[first] == []
    await here.layer.group_discard("errors", second)
    await until_subscribers(redis_server.url, topic, 0)
    # a socket joining again subscribes again
    third = await here.socket("errors")
    await relay.layer.group_send("errors", {"type": "probe", "n": 2})
    await here.until(lambda: here.got[third])
    assert here.got[third] == [{"type": "probe", "n": 2}]
    assert here.got[first] == [] and len(here.got[second]) == 1


async def test_a_socket_refused_half_way_leaves_the_groups_it_joined(redis_server, processes):
    here = processes()
    channel = await here.socket("status", "page.x")
    here.layer.forget(channel)
    await until_subscribers(redis_server.url, here.layer.topic("page.x"), 0)
    await until_subscribers(redis_server.url, here.layer.topic("status"), 0)
    assert not here.layer._local


async def test_this_process_alone_is_told_and_a_failing_handler_stops_nobody(
    redis_server, processes
):
    here, there, relay = processes(), processes(), processes()
    broken = await here.layer.new_channel()

    def fails(message):
        raise RuntimeError("a broken socket")

    here.layer.attach(broken, fails)
    await here.layer.group_add("status", broken)
    mine = await here.socket("status")
    theirs = await there.socket("status")
    assert here.layer.tell_group_here("status", {"type": "resync.requested"}) == 2
    assert here.got[mine] == [{"type": "resync.requested"}]
    await relay.layer.group_send("status", {"type": "relay.ticked", "text": "t"})
    await here.until(lambda: len(here.got[mine]) == 2)
    await there.until(lambda: there.got[theirs])
    assert there.got[theirs] == [{"type": "relay.ticked", "text": "t"}]  # not the resync


async def test_after_redis_restarted_every_socket_resyncs_and_messages_flow_again(
    redis_server, processes
):
    here, relay = processes(), processes()
    errors = [await here.socket("errors") for _ in range(2)]
    page = await here.socket("page.x")
    await relay.layer.group_send("errors", {"type": "probe", "n": 1})
    await here.until(lambda: all(here.got[c] for c in errors))
    reconnects = metrics.channel_layer.reconnects

    redis_server.stop()
    redis_server.start()
    await here.until(lambda: all(RECONNECTED in here.got[c] for c in [*errors, page]))
    assert metrics.channel_layer.reconnects == reconnects + 1  # one outage, one reconnect
    for channel in [*errors, page]:
        assert here.got[channel].count(RECONNECTED) == 1
    # Redis has forgotten every subscription: the process has made them again
    while True:
        try:
            await relay.layer.group_send("errors", {"type": "probe", "n": 2})
            break
        except CONNECTION_ERRORS:  # the relay's own pool still held a connection to the old one
            continue
    await here.until(lambda: all(here.got[c][-1] == {"type": "probe", "n": 2} for c in errors))
