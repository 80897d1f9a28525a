"""The bridge from ZooKeeper's threads to the sockets: the relay.

The source's mirror tells its subscribers of every change on its own worker
thread. :class:`Relay` takes each change across to the event loop with
``loop.call_soon_threadsafe`` (and nothing else), coalesces bursts there and
sends the result to the channel-layer groups the consumers join. It is the
only caller of ``group_send``.

- A burst of changes becomes one ``cluster`` update and one update per
  affected storm per :data:`UPDATE_SECS`; every :data:`TICK_SECS` all are
  sent again, since liveness and ages move with the clock alone.
- Errors are batched into windows of at most :data:`ERROR_WINDOW_SECS`
  (the first error of a quiet spell goes at once); every one is sent, in
  the order the mirror reported it.
- Each payload is encoded to JSON once, here; consumers send the text as is.
- A storm's page takes the whole storm's update; a component's or task's page takes one
  narrowed to its component, with its tasks' stats (:func:`component_group`). With the
  in-memory layer only the components with a page open are built; with Redis every one.

Without the mirror (``STORMUI_MIRROR=off``) nothing tells of changes: the
relay polls instead. Every :data:`TICK_SECS` it rebuilds the view and sends
every update, as it does anyway; it finds new errors by comparing each storm's
errors (each task's newest ten) with the previous poll's, and ZooKeeper's
connection state with the last one sent. So changes arrive up to a tick late,
and an error reported just before a socket's snapshot may reach it twice.

Which process relays: with the in-memory channel layer (``REDIS_URL`` unset)
nothing outside the serving process can reach its sockets, so daphne relays
itself, starting when the first socket connects (it needs the running loop).
With Redis only the process started by ``manage.py relay`` (or any process
with ``STORMUI_RELAY=true``) relays, so that nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import Counter

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from . import shapes
from .cluster import ErrorView
from .env import env_bool
from .source import get_source

log = logging.getLogger(__name__)

#: every socket joins this group, for ZooKeeper's connection state
STATUS_GROUP = "status"
CLUSTER_GROUP = "cluster"
ERRORS_GROUP = "errors"

#: at most one cluster update, and one update per storm, per this many seconds
UPDATE_SECS = 0.25
#: errors wait at most this long to be batched
ERROR_WINDOW_SECS = 0.025
#: everything is sent again this often: a task dies by the clock, not by a change
TICK_SECS = 5.0

_relay: Relay | None = None
_relay_process = False  # set by `manage.py relay`


def storm_group(storm_id: str) -> str:
    """A storm's group: group names allow only a few ASCII characters, so the id is hashed."""
    return "storm." + hashlib.sha256(storm_id.encode("utf-8")).hexdigest()[:40]


#: (storm id, component id) -> its group, for every component page open in this process
_component_groups: dict[tuple[str, str], str] = {}


def component_group(storm_id: str, component_id: str) -> str:
    """The group of a component's and its tasks' pages: their narrowed storm updates."""
    digest = hashlib.sha256(component_id.encode("utf-8")).hexdigest()[:16]
    group = f"{storm_group(storm_id)}.{digest}"
    _component_groups[(storm_id, component_id)] = group
    return group


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))


def source_token(source) -> str:
    """Names a source across processes: versions compare only within one mirror."""
    return f"{os.getpid()}.{id(source)}"


def source_version(source) -> int:
    return source.mirror.version if source.mirror is not None else 0


def mark_relay_process() -> None:
    """This process is the relay (``manage.py relay``)."""
    global _relay_process
    _relay_process = True


def in_process_layer() -> bool:
    """Whether the channel layer is the in-memory one: every socket lives in this process."""
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return backend.endswith("InMemoryChannelLayer")


def relays_here() -> bool:
    """Whether this process sends ZooKeeper's changes to the groups."""
    # nothing outside this process can reach an in-memory layer's sockets
    return _relay_process or env_bool("STORMUI_RELAY", False) or in_process_layer()


class LocalGroups:
    """Groups of this process's consumers, for the in-memory layer.

    Channels' in-memory layer scans every channel on every send, so one
    ``group_send`` to 500 sockets took about a third of a second: the relay
    falls behind at 20 errors a second. When every socket is in this process
    the relay hands each event to the group's consumers itself, on the loop
    they all share; with Redis the layer's groups are used.
    """

    def __init__(self):
        self.members: dict[str, set] = {}

    def add(self, group: str, consumer) -> None:
        self.members.setdefault(group, set()).add(consumer)

    def discard(self, group: str, consumer) -> None:
        members = self.members.get(group)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self.members[group]

    async def send(self, group: str, event: dict) -> None:
        for consumer in list(self.members.get(group, ())):
            await consumer.relay_event(event)


local_groups = LocalGroups()


async def ensure_relay():
    """The process's source, with the relay running on this loop if this process relays.

    Called by each consumer as it connects; the source may take a while to start,
    so it is started off the loop.
    """
    global _relay
    source = await sync_to_async(get_source, thread_sensitive=False)()
    if relays_here():
        loop = asyncio.get_running_loop()
        relay = _relay
        # a new loop or a new source (tests switch both) needs a new relay
        if relay is None or relay.loop is not loop or relay.source is not source or relay.done:
            if relay is not None:
                relay.stop()
            _relay = Relay(source, get_channel_layer(), loop)
            _relay.start()
    return source


def stop_relay() -> None:
    global _relay
    if _relay is not None:
        _relay.stop()
        _relay = None


def current_relay() -> Relay | None:
    return _relay


class Relay:
    """Sends the source's changes to the channel layer's groups, from one loop.

    :param source: a :class:`stormui.source.Source`.
    :param layer: the channel layer.
    :param loop: the running event loop everything happens on.
    """

    def __init__(
        self,
        source,
        layer,
        loop: asyncio.AbstractEventLoop,
        *,
        update_secs: float = UPDATE_SECS,
        error_window: float = ERROR_WINDOW_SECS,
        tick_secs: float | None = None,
    ):
        self.source = source
        self.layer = layer
        self.loop = loop
        self.token = source_token(source)
        self.update_secs = update_secs
        self.error_window = error_window
        self.tick_secs = tick_secs if tick_secs is not None else TICK_SECS
        # no mirror, no change notifications: poll (see the module's docstring)
        self.polling = not source.mirrored
        self._polls = 0
        self._seen_errors: dict[str, Counter] | None = None  # by storm, as of the last poll
        # touched on the loop only
        self._errors: list[tuple[int, str, int, object]] = []
        # without the mirror the first poll comes at once: it learns which errors are there
        self._cluster_dirty = self._all_storms = self.polling
        self._storms_dirty: set[str] = set()
        self._status_dirty = False
        self._sent_storms: set[str] = set()
        self._was_connected = source.zk_connected
        self._last_update = 0.0
        self._last_errors = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._unsubscribe = None
        self.sent = {"cluster": 0, "storm": 0, "errors": 0, "status": 0}

    @property
    def done(self) -> bool:
        return self._task is None or self._task.done()

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name="stormui-relay")
        self._unsubscribe = self.source.subscribe(self._on_change)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None and not self._task.done():
            try:
                self._task.cancel()
            except RuntimeError:  # its loop is closed already
                pass

    # -- the mirror's thread ---------------------------------------------------

    def _on_change(self, change) -> None:
        # hand off and return: the mirror's worker must not wait on us
        try:
            self.loop.call_soon_threadsafe(self._take, change)
        except RuntimeError:  # the loop is closed: this relay is over
            pass

    # -- the loop ----------------------------------------------------------------

    def _take(self, change) -> None:
        kind = change.kind
        if kind == "errors" and change.errors:
            for e in change.errors:
                self._errors.append((change.version, change.storm_id, change.task_id, e))
        if kind == "connection":
            self._status_dirty = True
        if kind in ("resync", "connection") or (kind == "heartbeats" and change.storm_id is None):
            self._all_storms = True
        elif change.storm_id is not None:
            self._storms_dirty.add(change.storm_id)
        self._cluster_dirty = True
        self._wake.set()

    async def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_secs
        while True:
            now = time.monotonic()
            if now >= next_tick:
                self._cluster_dirty = self._all_storms = True
                next_tick = now + self.tick_secs
                if self.source.zk_connected != self._was_connected:
                    self._status_dirty = True  # without the mirror, nothing else tells
            errors_due = self._last_errors + self.error_window if self._errors else None
            update_due = (
                self._last_update + self.update_secs
                if self._cluster_dirty or self._all_storms or self._storms_dirty
                else None
            )
            due = min(d for d in (next_tick, errors_due, update_due) if d is not None)
            if self._status_dirty:
                due = now
            if due > now:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), due - now)
                except TimeoutError:
                    pass
                continue
            try:
                if self._status_dirty:
                    await self._send_status()
                if errors_due is not None and now >= errors_due:
                    await self._send_errors()
                if update_due is not None and now >= update_due:
                    await self._send_updates()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay failed to send; trying again shortly")
                await asyncio.sleep(1.0)

    async def _send(self, group: str, event: dict) -> None:
        if in_process_layer():
            await local_groups.send(group, event)
        else:
            await self.layer.group_send(group, event)

    async def _send_status(self) -> None:
        self._status_dirty = False
        connected = self.source.zk_connected
        text = encode(shapes.status_message(connected, self.source.synced_at))
        await self._send(STATUS_GROUP, {"type": "status.changed", "text": text})
        self.sent["status"] += 1
        if connected and not self._was_connected:
            # watches were lost while disconnected: every page starts again from a snapshot
            await self._send(STATUS_GROUP, {"type": "resync.requested"})
        self._was_connected = connected

    async def _send_errors(self) -> None:
        batch, self._errors = self._errors, []
        self._last_errors = time.monotonic()
        everything = []
        by_storm: dict[str, list] = {}
        for version, storm_id, task_id, record in batch:
            if isinstance(record, ErrorView):  # found by a poll, complete already
                view = record
            else:
                view = self._error_view(storm_id, task_id, record)
            item = [version, encode(shapes.error_message(view))]
            everything.append(item)
            by_storm.setdefault(storm_id, []).append(item)
        await self._send(
            ERRORS_GROUP, {"type": "errors.reported", "source": self.token, "errors": everything}
        )
        for storm_id, items in by_storm.items():
            await self._send(
                storm_group(storm_id),
                {"type": "errors.reported", "source": self.token, "errors": items},
            )
        self.sent["errors"] += len(everything)

    def _error_view(self, storm_id: str, task_id: int, record) -> ErrorView:
        # the mirror's reads are dict lookups: cheap enough for the loop
        reader = self.source.reader
        component_id = host = port = None
        try:
            info = reader.task_info(storm_id, task_id)
            component_id = info.component_id if info is not None else None
        except Exception:  # unreadable: the error is still worth telling
            pass
        try:
            assignment = reader.assignment_info(storm_id)
            node_port = assignment.task_node_port.get(task_id) if assignment else None
            if node_port is not None:
                node, port = node_port
                host = assignment.node_host.get(node)
        except Exception:
            pass
        return ErrorView(
            storm_id, task_id, component_id, record.time_secs, record.error, host, port
        )

    async def _send_updates(self) -> None:
        self._last_update = time.monotonic()
        all_storms, dirty = self._all_storms, self._storms_dirty
        self._cluster_dirty = self._all_storms = False
        self._storms_dirty = set()
        # building a large cluster's view takes a while: not on the loop
        events, errors = await asyncio.to_thread(self._build_updates, all_storms, dirty)
        for group, event in events:
            await self._send(group, event)
        if errors:
            self._errors.extend(errors)
            await self._send_errors()

    def _build_updates(self, all_storms: bool, dirty: set[str]) -> tuple[list, list]:
        version = source_version(self.source)
        view = self.source.cluster_view()
        errors = self._poll_errors(view) if self.polling else []
        head = {"source": self.token, "version": version}
        events = [
            (
                CLUSTER_GROUP,
                {"type": "cluster.changed", **head, "text": encode(shapes.cluster_update(view))},
            )
        ]
        ids = (set(view.storms) | self._sent_storms) if all_storms else dirty
        for storm_id in sorted(ids):
            storm = view.storms.get(storm_id)
            if storm is None:
                payload = shapes.storm_removed(storm_id, view.as_of)
            else:
                payload = shapes.storm_update(
                    storm, zk_connected=view.zk_connected, synced_at=view.synced_at
                )
            # "whole": the storm page's message; a component's page takes its own instead
            event = {"type": "storm.changed", **head, "text": encode(payload)}
            events.append((storm_group(storm_id), {**event, "whole": storm is not None}))
            for component_id in self._open_components(storm_id, storm):
                payload = shapes.storm_update(
                    storm,
                    zk_connected=view.zk_connected,
                    synced_at=view.synced_at,
                    component_id=component_id,
                )
                event = {"type": "storm.changed", **head, "text": encode(payload)}
                events.append((component_group(storm_id, component_id), event))
        self._sent_storms = set(view.storms)
        self.sent["cluster"] += 1
        self.sent["storm"] += len(events) - 1
        return events, errors

    def _poll_errors(self, view) -> list:
        """The errors in ``view`` that the previous poll's did not hold, oldest first."""
        self._polls += 1
        seen = {}
        new = []
        for storm_id, storm in view.storms.items():
            keys = Counter((e.task_id, e.time_secs, e.error) for e in storm.errors)
            before = (self._seen_errors or {}).get(storm_id, Counter())
            fresh = keys - before
            for e in reversed(storm.errors):  # oldest first, as the mirror reports them
                key = (e.task_id, e.time_secs, e.error)
                if fresh[key] > 0:
                    fresh[key] -= 1
                    # the poll count orders them after any snapshot's version (0 without a mirror)
                    new.append((self._polls, storm_id, e.task_id, e))
            seen[storm_id] = keys
        first = self._seen_errors is None
        self._seen_errors = seen
        return [] if first else new  # the first poll only learns what is there

    def _open_components(self, storm_id: str, storm) -> list[str]:
        """The components whose pages may be open: only this process's, when it holds them all."""
        if storm is None:
            return []  # the whole storm's message says it is gone
        if in_process_layer():
            return sorted(
                c
                for (s, c), group in list(_component_groups.items())
                if s == storm_id and group in local_groups.members
            )
        return sorted(storm.components)
