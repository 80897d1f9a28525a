"""The in-process channel layer: the stock in-memory layer's behaviour, without its sweeps.

Time is a fake clock the tests move; "nothing more arrived" is shown by a marker sent after,
which must be the next message received.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

from stormui.layers import FanOutChannelLayer

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

MARKER = {"type": "test.marker"}
# expiry without the periodic sweep: the lazy checks alone must do it
NEVER = math.inf


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(n: int) -> dict:
    return {"type": "test.message", "n": n}


async def received(layer, channel: str, count: int) -> list:
    return [await layer.receive(channel) for _ in range(count)]


async def assert_nothing_more(layer, channel: str) -> None:
    await layer.send(channel, MARKER)
    assert await layer.receive(channel) == MARKER


async def test_every_member_receives_each_message_once_in_order():
    layer = FanOutChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("g", channel)
    for n in range(5):
        await layer.group_send("g", message(n))
    for channel in channels:
        assert await received(layer, channel, 5) == [message(n) for n in range(5)]
        await assert_nothing_more(layer, channel)


async def test_a_waiting_receiver_gets_a_group_message():
    layer = FanOutChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    waiting = asyncio.create_task(layer.receive(channel))
    while channel not in layer.channels:  # the receiver waits on its queue
        await asyncio.sleep(0)
    await layer.group_send("g", message(1))
    assert await waiting == message(1)


async def test_a_group_message_is_copied_once_from_its_sender():
    layer = FanOutChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    for channel in (a, b):
        await layer.group_add("g", channel)
    sent = {"type": "test.message", "items": [1]}
    await layer.group_send("g", sent)
    sent["items"].append(2)  # the sender's later change reaches nobody
    first, second = await layer.receive(a), await layer.receive(b)
    assert first == second == {"type": "test.message", "items": [1]}
    # one copy for every member: a group message is read-only to its receivers
    assert first is second
    # a message sent to one channel is its own copy
    await layer.send(a, sent)
    assert (await layer.receive(a)) is not sent


async def test_discard_stops_delivery():
    layer = FanOutChannelLayer()
    kept, dropped = await layer.new_channel(), await layer.new_channel()
    for channel in (kept, dropped):
        await layer.group_add("g", channel)
    await layer.group_send("g", message(1))
    await layer.group_discard("g", dropped)
    await layer.group_send("g", message(2))
    assert await received(layer, kept, 2) == [message(1), message(2)]
    assert await layer.receive(dropped) == message(1)
    await assert_nothing_more(layer, dropped)
    await layer.group_discard("g", kept)
    assert "g" not in layer.groups


async def test_a_full_channel_misses_messages_alone():
    layer = FanOutChannelLayer(capacity=2)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, fast):
        await layer.group_add("g", channel)
    for n in range(5):
        await layer.group_send("g", message(n))
        assert await layer.receive(fast) == message(n)
    with pytest.raises(ChannelFull):
        await layer.send(slow, MARKER)
    assert await received(layer, slow, 2) == [message(0), message(1)]
    await assert_nothing_more(layer, slow)
    # the full channel stayed in the group
    await layer.group_send("g", message(5))
    assert await layer.receive(slow) == message(5)


async def test_channel_capacity_globs():
    layer = FanOutChannelLayer(capacity=5, channel_capacity={"small.*": 1})
    await layer.send("small.a", message(1))
    with pytest.raises(ChannelFull):
        await layer.send("small.a", message(2))
    for n in range(5):
        await layer.send("large.a", message(n))
    with pytest.raises(ChannelFull):
        await layer.send("large.a", message(5))


async def test_a_channel_that_does_not_receive_in_time_leaves_its_groups():
    clock = Clock()
    layer = FanOutChannelLayer(expiry=60, clean_interval=NEVER, clock=clock)
    stuck, live = await layer.new_channel(), await layer.new_channel()
    for channel in (stuck, live):
        await layer.group_add("g", channel)
        await layer.group_add("h", channel)
    await layer.group_send("g", message(1))
    assert await layer.receive(live) == message(1)
    clock.now += 59
    await layer.group_send("g", message(2))  # still in time: delivered to both
    assert await layer.receive(live) == message(2)
    clock.now += 2  # message 1 on `stuck` expired
    await layer.group_send("g", message(3))
    assert await layer.receive(live) == message(3)
    assert set(layer.groups["g"]) == set(layer.groups["h"]) == {live}
    # message 2 expires later than message 1: it is still there
    assert await layer.receive(stuck) == message(2)
    await assert_nothing_more(layer, stuck)


async def test_an_expired_message_is_not_received():
    clock = Clock()
    layer = FanOutChannelLayer(expiry=10, clean_interval=NEVER, clock=clock)
    channel = await layer.new_channel()
    await layer.send(channel, message(1))
    clock.now += 11
    await layer.send(channel, message(2))
    assert await layer.receive(channel) == message(2)
    await assert_nothing_more(layer, channel)


async def test_the_sweep_drops_channels_nobody_touches():
    clock = Clock()
    layer = FanOutChannelLayer(expiry=10, clean_interval=5, clock=clock)
    forgotten, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", forgotten)
    await layer.send(forgotten, message(1))
    clock.now += 11
    await layer.send(other, message(2))  # due: sweeps every channel
    assert forgotten not in layer.channels
    assert "g" not in layer.groups


async def test_no_sweep_between_intervals():
    # the stock layer sweeps every channel on each receive and group_send: O(N²) per fan-out
    clock = Clock()
    layer = FanOutChannelLayer(clean_interval=5, clock=clock)
    sweeps = []
    sweep = layer._clean_expired
    layer._clean_expired = lambda now=None: (sweeps.append(now), sweep(now))
    channels = [await layer.new_channel() for _ in range(50)]
    for channel in channels:
        await layer.group_add("g", channel)
    for n in range(10):
        await layer.group_send("g", message(n))
        for channel in channels:
            assert await layer.receive(channel) == message(n)
    assert sweeps == []
    clock.now += 5
    await layer.group_send("g", message(10))
    assert sweeps == [clock.now]


async def test_memberships_expire():
    clock = Clock()
    layer = FanOutChannelLayer(group_expiry=100, clean_interval=NEVER, clock=clock)
    old, new = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", old)
    clock.now += 50
    await layer.group_add("g", new)
    clock.now += 51
    await layer.group_send("g", message(1))
    assert await layer.receive(new) == message(1)
    await assert_nothing_more(layer, old)
    assert set(layer.groups["g"]) == {new}


async def test_new_channel_round_trip():
    layer = FanOutChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    assert a != b
    assert "!" in a
    await layer.send(a, message(1))
    assert await layer.receive(a) == message(1)
    assert a not in layer.channels  # an emptied channel holds nothing


async def test_a_cancelled_receive_leaves_nothing_behind():
    layer = FanOutChannelLayer()
    channel = await layer.new_channel()
    waiting = asyncio.create_task(layer.receive(channel))
    while channel not in layer.channels:
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert channel not in layer.channels


async def test_flush():
    layer = FanOutChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, message(1))
    await layer.flush()
    assert layer.channels == {} and layer.groups == {}
    await assert_nothing_more(layer, channel)


async def test_names_are_checked():
    layer = FanOutChannelLayer()
    with pytest.raises(TypeError):
        await layer.send("no spaces", message(1))
    with pytest.raises(TypeError):
        await layer.group_add("no spaces", "ok")


async def test_configured_in_channel_layers(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "stormui.layers.FanOutChannelLayer", "CONFIG": {"capacity": 7}}
    }
    layer = get_channel_layer()
    assert isinstance(layer, FanOutChannelLayer) and layer.capacity == 7
    assert getattr(layer, "process_local", False)
    assert not getattr(InMemoryChannelLayer(), "process_local", False)


async def test_an_attached_handler_takes_the_channels_messages_at_once():
    layer = FanOutChannelLayer()
    attached, queued = await layer.new_channel(), await layer.new_channel()
    for channel in (attached, queued):
        await layer.group_add("g", channel)
    taken: list = []
    layer.attach(attached, taken.append)
    await layer.group_send("g", message(1))
    await layer.send(attached, message(2))
    # handed over as sent, nothing queued for receive; the other member's queue as before
    assert taken == [message(1), message(2)]
    assert attached not in layer.channels
    assert await layer.receive(queued) == message(1)
    # detached: back to the queue
    layer.detach(attached)
    await layer.group_send("g", message(3))
    assert await layer.receive(attached) == message(3)
    assert taken == [message(1), message(2)]
