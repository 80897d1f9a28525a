"""The in-process channel layer: Channels' in-memory layer with a fan-out that scales.

Channels' :class:`~channels.layers.InMemoryChannelLayer` (4.3) runs its
expiry sweep, which walks every channel's queue and every group's members,
on every ``receive`` and every ``group_send``. Each socket's consumer calls
``receive`` again after each message, so one ``group_send`` to N sockets
costs N sweeps of N channels: O(N²). At 500 sockets one ``group_send`` and
its 500 receives took 70 to 110 ms on a quiet core here, and about a third of a
second in a loaded daphne, and the relay fell behind at 20 errors a second
(``bench/layer_fanout.py`` measures it). Its ``group_send`` also makes an
``asyncio`` task per member.

:class:`FanOutChannelLayer` keeps the stock layer's semantics (and
``new_channel``, the name checks, the capacities) but does O(1) work per
recipient: a send only looks at the head of its own channel's queue, and the
full sweep runs at most once per ``clean_interval``. The rest of the code
uses ``group_add`` / ``group_send`` / ``group_discard`` with it exactly as
with Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class FanOutChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer with O(1) work per recipient.

    As the stock layer: a channel holds at most its capacity (a full one
    raises :class:`~channels.exceptions.ChannelFull` on ``send`` and is
    skipped by ``group_send``); a message not received within ``expiry``
    seconds is dropped and its channel leaves every group; a membership
    ends ``group_expiry`` seconds after ``group_add``.

    Differences: a ``group_send`` copies its message once, and every member
    receives that copy: a group message is read-only to its receivers (this
    project's consumers only read them; a copy per member was a deep copy per
    socket per message, the largest cost of a fan-out to hundreds of sockets).
    A consumer may :meth:`attach` a handler to its channel: the layer then
    hands it each message at once instead of queueing it for ``receive`` (the
    Channels receive loop's task and wait per message per socket were the
    rest of that cost). Expired messages are dropped when their channel is next
    sent to or received from, and by a sweep of every channel and group at
    most once per ``clean_interval`` seconds (for channels nobody touches
    again); a group's expired members are skipped by ``group_send`` at once.
    ``channel_capacity`` globs work (the stock in-memory layer never compiles
    them). ``clock`` (seconds, like :func:`time.time`) lets tests move time.
    """

    #: every consumer of this layer lives in this process (Redis' layer has no such attribute)
    process_local = True

    def __init__(
        self,
        expiry=60,
        group_expiry=86400,
        capacity=100,
        channel_capacity=None,
        clean_interval=1.0,
        clock=time.time,
        **kwargs,
    ):
        super().__init__(expiry=expiry, group_expiry=group_expiry, capacity=capacity, **kwargs)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.clean_interval = clean_interval
        self.clock = clock
        self._next_clean = clock() + clean_interval
        # receive() calls waiting on each channel: their queue must stay the channel's queue
        self._receiving: Counter[str] = Counter()
        #: channel -> the handler its messages go to instead of its queue
        self._handlers: dict[str, object] = {}

    def attach(self, channel: str, handler) -> None:
        """Hand each message for ``channel`` to ``handler(message)`` from now on, on the
        sender's loop, instead of queueing it. ``handler`` must not block: it takes the
        message (read-only, shared with the group's other members) and returns."""
        self.require_valid_channel_name(channel)
        self._handlers[channel] = handler

    def detach(self, channel: str) -> None:
        self._handlers.pop(channel, None)

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        now = self.clock()
        self._maybe_clean(now)
        self._expire(channel, now)
        self._put(channel, message, now)

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        now = self.clock()
        self._maybe_clean(now)
        self._expire(channel, now)
        queue = self._queue(channel)
        self._receiving[channel] += 1
        try:
            _, message = await queue.get()
        finally:
            self._receiving[channel] -= 1
            if not self._receiving[channel]:
                del self._receiving[channel]
                if queue.empty() and self.channels.get(channel) is queue:
                    del self.channels[channel]
        return message

    async def group_add(self, group, channel):
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = self.clock()

    async def group_send(self, group, message):
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        now = self.clock()
        self._maybe_clean(now)
        members = self.groups.get(group)
        if not members:
            return
        joined_after = now - self.group_expiry
        shared = deepcopy(message)  # the sender's later changes reach nobody
        for channel, joined in list(members.items()):
            if joined < joined_after:
                members.pop(channel, None)
            elif self._expire(channel, now):
                pass  # it left its groups: it did not receive in time
            else:
                try:
                    self._put(channel, shared, now, copy=False)
                except ChannelFull:
                    pass  # this channel only misses the message
        if not members:
            self.groups.pop(group, None)

    async def flush(self):
        await super().flush()
        self._next_clean = self.clock() + self.clean_interval

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _put(self, channel: str, message: dict, now: float, *, copy: bool = True) -> None:
        if copy:
            message = deepcopy(message)
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(message)
            return
        try:
            self._queue(channel).put_nowait((now + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    def _expire(self, channel: str, now: float) -> bool:
        """Drops the channel's expired messages; if any, it leaves every group. O(1) if none."""
        queue = self.channels.get(channel)
        # the queue is in expiry order: looking at its head is enough
        if queue is None or queue.empty() or queue._queue[0][0] >= now:
            return False
        while not queue.empty() and queue._queue[0][0] < now:
            queue.get_nowait()
        self._remove_from_groups(channel)
        if queue.empty() and channel not in self._receiving:
            del self.channels[channel]
        return True

    def _maybe_clean(self, now: float) -> None:
        if now >= self._next_clean:
            self._next_clean = now + self.clean_interval
            self._clean_expired(now)

    def _clean_expired(self, now: float | None = None) -> None:
        """The stock layer's sweep: every channel's expired messages, every expired membership."""
        if now is None:
            now = self.clock()
        for channel in list(self.channels):
            self._expire(channel, now)
        joined_after = now - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined in list(members.items()):
                if joined < joined_after:
                    del members[channel]
            if not members:
                del self.groups[group]
