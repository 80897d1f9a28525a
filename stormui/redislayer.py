"""The channel layer with ``REDIS_URL``: channels_redis's, living through Redis going away.

channels_redis's :class:`~channels_redis.core.RedisChannelLayer` raises from ``receive``
when Redis goes away; Channels then ends the consumer and daphne closes its socket with a
trace (1011), and the relay's own listener ends for good. And a Redis that comes back
has forgotten every group membership (the dashboard keeps none on disk), so a socket that
simply received again would hear nothing.

:class:`ReconnectingRedisChannelLayer` keeps the process's memberships itself. A
``receive`` that fails waits (backing off up to :data:`RETRY_MAX_SECS`) and tries again;
once Redis answers, one receiver joins every channel of this process to its groups again,
then hands each of them a :data:`RECONNECTED` message, so each socket resyncs with a fresh
snapshot (built after its groups are joined again: no change falls between). A
``group_discard`` while Redis is away is let go (the membership went with Redis, or
expires). :data:`stormui.metrics.channel_layer` counts the failures and the reconnects
(``stormui_channel_layer_up``, ``stormui_channel_layer_reconnects_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from channels_redis.core import RedisChannelLayer
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import metrics

log = logging.getLogger(__name__)

#: what every channel of this process receives once Redis answers again
RECONNECTED = {"type": "layer.reconnected"}
#: Redis is away: what a layer call raises then
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
RETRY_FIRST_SECS = 0.1
RETRY_MAX_SECS = 2.0


class ReconnectingRedisChannelLayer(RedisChannelLayer):
    """channels_redis's layer; after Redis went away, this process's channels join their
    groups again and each receives :data:`RECONNECTED` (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: channel -> its groups, as this process joined them
        self.memberships: dict[str, set[str]] = {}
        self.lost = False
        self._recovery: asyncio.Lock | None = None

    async def group_add(self, group, channel):
        await super().group_add(group, channel)
        self.memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group, channel):
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        try:
            await super().group_discard(group, channel)
        except CONNECTION_ERRORS as exc:
            # Redis away: the membership went with it (or expires); the socket closes cleanly
            self._failed(exc)

    def tell_group_here(self, group: str, message: dict) -> int:
        """Give ``message`` to this process's channels in ``group`` alone, not through Redis
        (what only this process knows: its copy of the cluster was read afresh); on the
        event loop. Returns how many channels got it."""
        told = 0
        for channel, groups in list(self.memberships.items()):
            if group in groups and "!" in channel:  # a process-local channel: a socket's
                self.receive_buffer[channel].put_nowait(dict(message))
                told += 1
        return told

    def forget(self, channel) -> None:
        """``channel`` is gone without leaving its groups (its socket was refused half-way):
        it joins none again."""
        self.memberships.pop(channel, None)

    async def receive(self, channel):
        delay = RETRY_FIRST_SECS
        while True:
            try:
                if self.lost:
                    await self._recover()
                return await super().receive(channel)
            except CONNECTION_ERRORS as exc:
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECS)

    def _failed(self, exc) -> None:
        if not self.lost:
            log.warning("Redis is unreachable (%s); the live sockets wait for it", exc)
        self.lost = True
        metrics.channel_layer.failed()

    async def _recover(self) -> None:
        """Join every channel of this process to its groups again (one receiver does it; the
        others wait), then tell each channel. Raises while Redis is still away."""
        if self._recovery is None:
            self._recovery = asyncio.Lock()
        async with self._recovery:
            if not self.lost:
                return
            # the pools' idle connections are to the Redis that went away: each would fail once
            for index in range(self.ring_size):
                await self.connection(index).connection_pool.disconnect(inuse_connections=False)
            memberships = {channel: set(groups) for channel, groups in self.memberships.items()}
            for channel, groups in memberships.items():
                for group in sorted(groups):
                    await RedisChannelLayer.group_add(self, group, channel)
            self.lost = False
            for channel in memberships:
                if "!" in channel:  # a process-local channel: its receiver waits on this buffer
                    self.receive_buffer[channel].put_nowait(dict(RECONNECTED))
            metrics.channel_layer.reconnected()
            log.warning(
                "Redis answers again: %d channels joined their groups again and resync",
                len(memberships),
            )


#: how long a socket's join waits for Redis to confirm this process's subscription
SUBSCRIBE_TIMEOUT_SECS = 10.0


class FanOutRedisChannelLayer(ReconnectingRedisChannelLayer):
    """:class:`ReconnectingRedisChannelLayer` whose group messages reach this process's
    sockets through one Redis subscription per group, not one Redis list per socket.

    channels_redis delivers a group message by pushing a copy onto every member channel's
    list in Redis (one Lua call writing N entries), and every socket's receive loop pops its
    copy and decodes it: at 2,000 sockets and 20 errors a second that is 40,000 pushes, pops
    and decodes a second, about half of a daphne's cost per frame (``docs/benchmarks.md``).
    A channel :meth:`attach`-ed to a handler (each live socket's consumer does, as with
    :class:`stormui.layers.FanOutChannelLayer`) joins its groups here instead: the process
    subscribes to one Redis pub/sub topic per group that any of its sockets joined, each
    ``group_send`` publishes the message once, and this process decodes it once and hands
    the same (read-only) message to every member's handler. Channels not attached (the
    relay's own listener) join through Redis as before, and ``group_send`` still reaches
    them; a message goes to each member one way only.

    A join returns once Redis has confirmed the subscription (a PING on the subscription's
    connection, answered in order after it), so no message published after it is missed:
    a socket's snapshot, built after its joins, is followed by every later change. Pub/sub
    keeps nothing for a connection that is away: when the subscription's connection is made
    again (Redis restarted, or the connection dropped for a slow reader), each attached
    channel is handed :data:`RECONNECTED` once its topics are subscribed again, and
    resyncs; counted as a reconnect in :data:`stormui.metrics.channel_layer`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: channel -> the handler its group messages go to
        self._handlers: dict[str, object] = {}
        #: group -> this process's attached channels in it
        self._local: dict[str, set[str]] = {}
        #: shard index -> this process's subscriptions on it
        self._subscribers: dict[int, _Subscriptions] = {}
        self._topic_prefix = f"{self.prefix}:fanout:"  # (:meth:`topic`)

    def attach(self, channel: str, handler) -> None:
        """Hand ``channel``'s group messages to ``handler(message)`` (on the loop, at once;
        the message is shared with the group's other members: read it, do not change it).
        Call before the channel's first :meth:`group_add`."""
        self.require_valid_channel_name(channel)
        self._handlers[channel] = handler

    def detach(self, channel: str) -> None:
        self._handlers.pop(channel, None)

    def topic(self, group: str) -> str:
        """The Redis pub/sub channel a group's messages are published on."""
        return f"{self._topic_prefix}{group}"

    def _subscriptions(self, group: str) -> _Subscriptions:
        index = self.consistent_hash(group)
        subscriptions = self._subscribers.get(index)
        if subscriptions is None:
            subscriptions = self._subscribers[index] = _Subscriptions(self, index)
        return subscriptions

    async def group_add(self, group, channel):
        if channel not in self._handlers:
            await super().group_add(group, channel)
            return
        self.require_valid_group_name(group)
        members = self._local.setdefault(group, set())
        members.add(channel)
        try:
            await self._subscriptions(group).join(self.topic(group))
        except BaseException:
            self._leave(group, channel)
            raise

    async def group_discard(self, group, channel):
        if channel in self._local.get(group, ()):
            if self._leave(group, channel):
                try:
                    await self._subscriptions(group).leave(self.topic(group))
                except CONNECTION_ERRORS as exc:
                    self._failed(exc)  # the subscription went with the connection
            return
        await super().group_discard(group, channel)

    def _leave(self, group: str, channel: str) -> bool:
        """Takes ``channel`` out of the group here; True if it was the group's last here."""
        members = self._local.get(group)
        if members is None:
            return False
        members.discard(channel)
        if members:
            return False
        del self._local[group]
        return True

    def forget(self, channel) -> None:
        super().forget(channel)
        self.detach(channel)
        for group in [g for g, members in self._local.items() if channel in members]:
            if self._leave(group, channel):
                self._subscriptions(group).leave_soon(self.topic(group))

    async def group_send(self, group, message):
        data = self.serialize(message)
        index = self.consistent_hash(group)
        await self.connection(index).publish(self.topic(group), data)
        await super().group_send(group, message)  # members joined through Redis

    def tell_group_here(self, group: str, message: dict) -> int:
        told = super().tell_group_here(group, message)
        for channel in list(self._local.get(group, ())):
            self._hand(channel, dict(message))
            told += 1
        return told

    def _deliver(self, topic: str, data: bytes) -> None:
        """A group's message from Redis: decoded once, handed to every member here."""
        group = topic.removeprefix(self._topic_prefix)
        members = self._local.get(group)
        if not members:
            return
        message = self.deserialize(data)
        for channel in list(members):
            self._hand(channel, message)

    def _hand(self, channel: str, message: dict) -> None:
        handler = self._handlers.get(channel)
        if handler is None:
            return
        try:
            handler(message)
        except Exception:  # one socket's fault must not stop the others' messages
            log.exception("a socket's handler failed on %s", message.get("type"))

    def _reconnected(self, topics: set[str]) -> None:
        """The subscription's connection was made again and ``topics`` are subscribed again:
        what was published meanwhile is lost, so their members start again from a snapshot."""
        channels = {
            channel
            for group, members in self._local.items()
            if self.topic(group) in topics
            for channel in members
        }
        for channel in channels:
            self._hand(channel, dict(RECONNECTED))
        if metrics.channel_layer.up:  # made again before a read failed: lost all the same
            metrics.channel_layer.failed()
        metrics.channel_layer.reconnected()
        log.warning("Redis answers the subscriptions again: %d sockets resync", len(channels))

    async def flush(self):
        await self._close_subscriptions()
        await super().flush()

    async def close_pools(self):
        await self._close_subscriptions()
        await super().close_pools()

    async def _close_subscriptions(self) -> None:
        subscribers, self._subscribers = list(self._subscribers.values()), {}
        for subscriptions in subscribers:
            await subscriptions.close()
        self._local.clear()


class _Subscriptions:
    """This process's pub/sub connection to one Redis shard and its reader.

    redis-py's pub/sub connects again by itself (its retries) and subscribes again to what
    it had (``on_connect``): silently, though what was published meanwhile is lost.
    :class:`_PubSub` notices each connection after the first; this process's members of the
    topics are then told to resync, once a PING sent after the re-subscription is answered.
    """

    def __init__(self, layer: FanOutRedisChannelLayer, index: int):
        self.layer = layer
        self.index = index
        self.topics: set[str] = set()
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._pings: dict[str, asyncio.Future] = {}
        #: a join was confirmed: from then on a new connection may have missed messages
        self._confirmed_once = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def _open(self) -> _PubSub:
        if self._pubsub is None:
            client = self.layer.connection(self.index)
            self._pubsub = _PubSub(client.connection_pool, on_connect=self._on_connect)
        return self._pubsub

    def _on_connect(self) -> None:
        if self._confirmed_once:  # a socket may have missed something since
            self._spawn(self._after_reconnect())

    async def join(self, topic: str) -> None:
        """Subscribed to ``topic`` (if not yet), and Redis has confirmed it."""
        if topic not in self.topics:
            self.topics.add(topic)
            try:
                await self._send(lambda pubsub: pubsub.subscribe(topic))
            except BaseException:
                self.topics.discard(topic)
                raise
        await self._confirmed()

    async def leave(self, topic: str) -> None:
        if topic in self.topics:
            self.topics.discard(topic)
            await self._send(lambda pubsub: pubsub.unsubscribe(topic))

    async def _send(self, command) -> None:
        """Runs ``command(pubsub)``, one at a time: redis-py's pub/sub makes its connection
        on the first command, and two made at once would each make one."""
        async with self._lock:
            await command(self._open())
            if self._reader is None or self._reader.done():  # a connection to read, now
                self._reader = asyncio.get_running_loop().create_task(
                    self._read(), name="stormui-layer-subscriptions"
                )

    def leave_soon(self, topic: str) -> None:
        async def leave():
            try:
                await self.leave(topic)
            except CONNECTION_ERRORS as exc:
                self.layer._failed(exc)

        self._spawn(leave())

    async def _confirmed(self) -> None:
        """Every command sent on the connection before this has been run by Redis: it
        answers a PING after them, in order, on the same connection."""
        token = uuid.uuid4().hex
        answered = self._pings[token] = asyncio.get_running_loop().create_future()
        try:
            await self._send(lambda pubsub: pubsub.ping(token))
            await asyncio.wait_for(answered, SUBSCRIBE_TIMEOUT_SECS)
        finally:
            self._pings.pop(token, None)
        self._confirmed_once = True

    async def _after_reconnect(self) -> None:
        try:
            await self._confirmed()
        except CONNECTION_ERRORS:
            return  # away again: the next connection tells them
        self.layer._reconnected(set(self.topics))

    async def _read(self) -> None:
        delay = RETRY_FIRST_SECS
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except Exception as exc:  # never end: every socket of the process hears here
                if isinstance(exc, CONNECTION_ERRORS):
                    self.layer._failed(exc)
                else:
                    log.exception("reading the layer's subscriptions failed")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECS)
                continue
            delay = RETRY_FIRST_SECS
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                self.layer._deliver(channel, message["data"])
            elif kind == "pong":
                data = message["data"]
                token = data.decode() if isinstance(data, bytes) else data
                answered = self._pings.get(token)
                if answered is not None and not answered.done():
                    answered.set_result(None)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in [self._reader, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._reader, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, *CONNECTION_ERRORS):
                    await task
        if self._pubsub is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._pubsub.aclose()
        self._pubsub = None
        self.topics.clear()


class _PubSub(PubSub):
    """redis-py's pub/sub, calling ``on_connect()`` after it subscribed again on a new
    connection (redis-py keeps its connect callbacks as weak references to methods: hence
    a subclass, not a wrapped function)."""

    def __init__(self, connection_pool, *, on_connect):
        super().__init__(connection_pool)
        self._on_connect = on_connect

    async def on_connect(self, connection):
        # redis-py registers this after its first connection is made: it runs on the
        # connections made again (a first one made some other way is harmless, see below)
        await super().on_connect(connection)
        self._on_connect()
