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
import logging

from channels_redis.core import RedisChannelLayer
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
