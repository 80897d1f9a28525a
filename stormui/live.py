"""The bridge from ZooKeeper's threads to the sockets: the relay.

The source's mirror tells its subscribers of every change on its own worker
thread. :class:`Relay` takes each change across to the event loop with
``loop.call_soon_threadsafe`` (and nothing else), coalesces bursts there and
sends the result to the channel-layer groups the consumers join. It is the
only caller of ``group_send``.

- A burst of changes becomes one ``cluster`` update and one update per
  affected storm per :data:`UPDATE_SECS`; every :data:`TICK_SECS` all are
  sent again, since liveness and ages move with the clock alone, and every
  socket hears a tick (a page that hears nothing for two says it is stale).
  The first change other than heartbeat data and errors in a spell of
  :data:`UPDATE_SECS` (an assignment, a task come or gone...) goes at once,
  however recently heartbeat data was sent: heartbeat polls keep the window
  busy on a large cluster. A storm's own change (its status, a storm come or
  gone) goes at once whatever the window (:data:`_AT_ONCE`): tasks come and go
  all the time on a large cluster, which kept that window busy too. An error
  reaches its sockets at once by itself; the pages' counts of it wait for the
  window.
- Nothing is relayed before the source's first read of the cluster is done.
- Errors are batched into windows of at most :data:`ERROR_WINDOW_SECS`
  (the first error of a quiet spell goes at once); every one is sent, in
  the order the mirror reported it.
- Each page open anywhere (:mod:`stormui.pages` names it by a key) has its
  group. Its update is the page's figures (:mod:`stormui.shapes`) and its
  live regions rendered from the page's own partials (``html``), built once
  per change for the group however many sockets it has, and encoded to JSON
  once, here; consumers send the text as is. Which pages are open the relay
  learns from the consumers' processes (:data:`RELAY_GROUP`): each says which
  of its pages are open when one opens and every tick; a page nobody named
  for three ticks is forgotten, so the set stays bounded.
- Every error message carries the error as the lists render it (``html``).

Without the mirror (``STORMUI_MIRROR=off``) nothing tells of changes: the
relay polls instead. Every :data:`TICK_SECS` it rebuilds the view and sends
every update, as it does anyway; it finds new errors by comparing each storm's
errors (each task's newest ten) with the previous poll's, and ZooKeeper's
connection state with the last one sent. So changes arrive up to a tick late,
and an error reported just before a socket's snapshot may reach it twice.

Which process relays: with the in-process channel layer (``REDIS_URL`` unset,
:mod:`stormui.layers`) nothing outside the serving process can reach its
sockets, so daphne relays itself, starting on its first connection of any
kind (:func:`start_relay_soon`, from :class:`stormui.scheduler.StartsScheduler`;
it needs the running loop): the storms' bases are recorded from then on, not
only once someone opens a live page.
With Redis only the elected leader relays (:mod:`stormui.leader`: every daphne and
``manage.py relay`` stand; ``STORMUI_RELAY=true`` forces a process to relay), so that
nothing is sent twice; a leader that loses its election sends nothing more. One that
leads again with the same relay (its election's session was suspended, then came back)
has every page resync first: no page got what it withheld meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from clusterstate import precedence

from . import bases, leader, pages, shapes
from .cluster import ErrorView
from .history import recorder as history
from .leader import elects, process_local, relays_here  # noqa: F401  (live's own names too)
from .source import current_source, get_source, reset_source

log = logging.getLogger(__name__)

#: every socket joins this group, for ZooKeeper's connection state
STATUS_GROUP = "status"
ERRORS_GROUP = "errors"
#: the timeline's sockets (stormui.history.timeline's events, as the recorder writes them)
TIMELINE_GROUP = "timeline"
#: the relay's own group: the consumers' processes tell it which pages are open
RELAY_GROUP = "relay"

#: at most one update per page per this many seconds
UPDATE_SECS = 0.25
#: a storm's own node (its status: activated, deactivated, killed, rebalancing; a storm come
#: or gone) and the connection are what an operator watches for: they go out at once, not
#: after the window the steady coming and going of tasks keeps busy on a large cluster
_AT_ONCE = frozenset({"storm", "connection"})
#: ... at most once per this many seconds (a burst of them still coalesces)
AT_ONCE_GAP_SECS = 0.05
#: when something was last sent, before it ever was (the monotonic clock may be young)
NEVER = float("-inf")
#: errors wait at most this long to be batched
ERROR_WINDOW_SECS = 0.025
#: everything is sent again this often: a task dies by the clock, not by a change; and every
#: socket hears a tick, so a page that hears nothing for two says it is stale
TICK_SECS = settings.STORMUI_TICK_SECS
#: the tick every socket hears
TICK_TEXT = json.dumps({"type": "tick"})
#: a page nobody has said is open for this many ticks is forgotten
PAGE_TICKS = 3

_relay: Relay | None = None
#: the relay's listener tries to join its group again after this, doubling up to the max
JOIN_RETRY_FIRST_SECS = 0.1
JOIN_RETRY_MAX_SECS = 2.0
#: the task starting the relay in the background (start_relay_soon), held so it is not lost
_starting: asyncio.Task | None = None


def _news(change) -> bool:
    """Whether the relay sends ``change`` as soon as it may: an error, a storm's own change
    (the connection's is its status, sent at once too)."""
    return change.kind in _AT_ONCE or (change.kind == "errors" and bool(change.errors))


def storm_group(storm_id: str) -> str:
    """A storm's group, for its errors and its removal: every page of the storm joins it
    (group names allow only a few ASCII characters, so the id is hashed)."""
    return "storm." + hashlib.sha256(storm_id.encode("utf-8")).hexdigest()[:40]


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))


def source_token(source) -> str:
    """Names a source across processes: versions compare only within one mirror."""
    return f"{os.getpid()}.{id(source)}"


def error_key(error) -> str | None:
    """Names one error node the same in every process (its storm, task and sequence number),
    so that a socket can leave out of another process's batch the errors its snapshot held;
    ``None`` for a bare-named node."""
    if error.seq is None:
        return None
    return f"{error.storm_id}/{error.task_id}/{error.seq}"


def errors_event(token: str, errors: list) -> dict:
    """The relay's message for a batch of errors (``[version, text, key]`` each), with the
    batch's newest version worked out once here, not by each socket it reaches."""
    return {
        "type": "errors.reported",
        "source": token,
        "errors": errors,
        "version": max((e[0] for e in errors), default=None),
    }


#: the source whose copy :func:`watch_copy` watches (a follower's)
_watched = None


def watch_copy(source) -> None:
    """A follower's sockets start again from a snapshot once its copy of the cluster is
    whole again after being lost (the leader changed, or took over afresh: a new generation
    of the copy, read anew). The leader's relay has every page resync as it takes over, but
    a follower's snapshot built then came from its copy still being read again, and what the
    new leader read first never comes as an error batch: without this, such a page would not
    show it until its next snapshot. Idempotent; call on the loop with the source a socket
    uses (a new source is watched anew). Only with a layer that can reach this process's
    sockets alone (Redis: ``ReconnectingRedisChannelLayer.tell_group_here``)."""
    global _watched
    if _watched is source:
        return
    layer = get_channel_layer()
    tell = getattr(layer, "tell_group_here", None)
    if tell is None:
        _watched = source
        return
    loop = asyncio.get_running_loop()
    was_connected = [source.zk_connected]

    def on_change(change) -> None:  # the mirror's thread
        if change.kind != "connection":
            return
        connected = source.zk_connected
        if connected and not was_connected[0] and not relays_here():
            try:
                loop.call_soon_threadsafe(tell, STATUS_GROUP, {"type": "resync.requested"})
            except RuntimeError:  # the loop is closed
                pass
        was_connected[0] = connected

    source.subscribe(on_change)
    _watched = source


def source_version(source) -> int:
    return source.mirror.version if source.mirror is not None else 0


def leads() -> bool:
    """Whether this process leads and has taken over (``stormui_leader``): without an
    election, whether it relays."""
    return relays_here() if not elects() else leader.in_office()


def stand_for_election(loop: asyncio.AbstractEventLoop) -> None:
    """Stand on ``loop``: once elected the relay starts, once deposed it stops."""
    leader.stand(loop, on_elected=take_over, on_deposed=step_down, on_resumed=resume)


async def take_over() -> None:
    # the source's kind follows leadership (the leader mirrors ZooKeeper); a take-over tried
    # again (its relay's first send failed: Redis timing out) keeps the source it read
    source = current_source()
    if source is None or source.replica != "lead":
        # pages and the relay go on at once from the copy this process followed, while the
        # new source reads ZooKeeper whole and tells what differs from it
        await asyncio.to_thread(reset_source, seed_next=True)
        log.info("taking over: the source reads ZooKeeper afresh")
    await resume()


async def resume() -> None:
    """Leading (again): the relay runs, and every page starts again from a snapshot, since
    what it had came from another leader or was sent while this one was suspended."""
    await ensure_relay()
    relay = current_relay()
    if relay is None or relay.done:
        # leadership flipped while the relay was being started: the candidate's steward
        # calls this again once it settles
        log.warning("leading, but the relay did not start: waiting for leadership to settle")
        return
    # sent even if leadership flipped meanwhile: the relay then withholds it and has every
    # page resync with its next send (Relay._send)
    await relay._send(STATUS_GROUP, {"type": "resync.requested"})
    log.info("leading: the relay runs and every page resyncs")


async def step_down() -> None:
    stop_relaying()
    await asyncio.to_thread(stop_writers)
    await asyncio.to_thread(reset_source)


class PerView:
    """What is built from a view, by key, built once per view however many threads ask.

    A view is immutable and replaced whole on each change, so an entry is good while the
    view it was built from is the one asked about. Threads asking for the same key and
    view while it is being built wait for that build rather than build it again. Keys of
    pages nobody shows any more go when there are more than :attr:`bound`, with the rest.
    """

    def __init__(self, bound: int = 1000):
        self.bound = bound
        self._built: dict = {}
        self._building: dict = {}
        self._lock = threading.Lock()

    def get(self, key, view, build):
        with self._lock:
            hit = self._built.get(key)
            if hit is not None and hit[0] is view:
                return hit[1]
            lock = self._building.setdefault(key, threading.Lock())
        with lock:  # one builds, the others asking for the same key wait for it
            with self._lock:
                hit = self._built.get(key)
            if hit is not None and hit[0] is view:
                return hit[1]
            value = build()
            with self._lock:
                if len(self._built) > self.bound:
                    self._built.clear()
                    self._building.clear()
                self._built[key] = (view, value)
            return value


#: each page's regions as last rendered, with the view they were rendered from
_rendered = PerView()


def page_regions(key: pages.PageKey, view) -> dict[str, str] | None:
    """A page's regions from ``view``, rendered once per view however many ask (the relay's
    update and every snapshot of it, from several threads); None when the page shows nothing
    there."""

    def render():
        ctx = pages.context(key, view)
        return pages.render_regions(key[0], ctx) if ctx is not None else None

    return _rendered.get(key, view, render)


def page_message(key: pages.PageKey, view, data: dict | None = None) -> dict | None:
    """A page's message: its figures and its regions, from ``view``; None when the page shows
    nothing there (its storm, component, task or supervisor is gone)."""
    html = page_regions(key, view)
    if html is None:
        return None
    if data is None:
        data = page_data(key, view)
    return {**data, "html": html}


def page_data(key: pages.PageKey, view, *, snapshot: bool = False) -> dict:
    """A page's figures, as its socket has always sent them (``snapshot``: the first)."""
    kind = key[0]
    if kind in pages.STORM_PAGES:
        storm = view.storms[key[1]]
        component_id = None
        if kind == "component":
            component_id = key[2]
        elif kind == "task":
            task = storm.tasks.get(int(key[2]))
            component_id = task.component_id if task is not None else None
        build = shapes.storm_snapshot if snapshot else shapes.storm_update
        return build(
            storm,
            zk_connected=view.zk_connected,
            synced_at=view.synced_at,
            component_id=component_id,
        )
    return shapes.cluster_snapshot(view) if snapshot else shapes.cluster_update(view)


async def ensure_relay():
    """The process's source, with the relay running on this loop if this process relays.

    Called by each consumer as it connects, and in the background on the process's first
    connection (:func:`start_relay_soon`); the source may take a while to start, so it is
    started off the loop.
    """
    global _relay
    source = await sync_to_async(get_source, thread_sensitive=False)()
    # nothing is relayed, recorded or snapshotted from a cluster still being read
    await wait_synced(source)
    watch_copy(source)
    if relays_here():
        loop = asyncio.get_running_loop()
        relay = _relay
        # a new loop or a new source (tests switch both) needs a new relay
        if relay is None or relay.loop is not loop or relay.source is not source or relay.done:
            if relay is not None:
                relay.stop()
            _relay = Relay(source, get_channel_layer(), loop)
            _relay.start()
        # the relaying process alone keeps the storms' bases for activate (stormui.bases)
        bases.ensure_recorder(source)
        # and alone writes the history (stormui.history)
        history.ensure_recorder(source)
        # a page named before the relay listens would wait a tick for its first update
        await _relay.listening.wait()
    return source


async def wait_synced(source) -> None:
    """Until the source's first read of the cluster is done (at once if it is, or without
    the mirror), holding no thread meanwhile: its end is a change the source tells of."""
    if not source.reading:
        return
    loop = asyncio.get_running_loop()
    synced = asyncio.Event()

    def on_change(change) -> None:
        if not source.reading:
            loop.call_soon_threadsafe(synced.set)

    unsubscribe = source.subscribe(on_change)
    try:
        if source.reading:  # it may have ended before the subscription
            await synced.wait()
    finally:
        unsubscribe()


def start_relay_soon() -> None:
    """Start the relay and the base recorder on the running loop in the background, if this
    process relays and they neither run nor are starting on this loop; returns at once.

    Called on every connection, HTTP or socket: the first one starts them, without waiting
    for the source to connect. A socket's consumer awaits :func:`ensure_relay` as well; both
    settle on one relay, since nothing awaits between its check and its start.
    """
    global _starting
    loop = asyncio.get_running_loop()
    relay, starting = _relay, _starting
    if relay is not None and relay.loop is loop and not relay.done:
        return
    if starting is not None and starting.get_loop() is loop and not starting.done():
        return
    if elects():
        stand_for_election(loop)  # once per loop; the election starts the relay once it is won
    elif relays_here():
        _starting = loop.create_task(_start_relay(), name="stormui-relay-start")


async def _start_relay() -> None:
    try:
        await ensure_relay()
    except Exception:
        log.exception("starting the relay failed; the next connection tries again")


def stop_relay() -> None:
    stop_relaying()
    stop_writers()


def stop_relaying() -> None:
    """Stop the relay (on its loop, or once the loop is closed)."""
    global _relay, _starting
    if _starting is not None and not _starting.done():
        try:
            _starting.cancel()
        except RuntimeError:  # its loop is closed already
            pass
    _starting = None
    if _relay is not None:
        _relay.stop()
        _relay = None


def stop_writers() -> None:
    """Stop the bases' and the history's writers (blocks while the history's writer ends)."""
    bases.stop_recorder()
    history.stop_recorder(timeout=5)


def current_relay() -> Relay | None:
    return _relay


#: past this many events in one pass, the timeline's sockets take a fresh snapshot instead
TIMELINE_BATCH = 200


def publish_timeline(events) -> None:
    """Send timeline events just written (the recorder's thread, after its commit) to the
    timeline's sockets, each rendered as the page lists it. A no-op when nothing relays."""
    now = time.time()
    items = [[e.id, e.storm_id, e.kind, encode(timeline_message(e, now))] for e in events]
    _send_timeline({"type": "timeline.events", "events": items})


def resync_timeline() -> None:
    """A burst too large to send event by event (a storm's tasks dying at once): the
    timeline's sockets take a fresh snapshot."""
    _send_timeline({"type": "resync.requested"})


def _send_timeline(event: dict) -> None:
    relay = _relay
    if relay is not None and not relay.done:
        asyncio.run_coroutine_threadsafe(relay._send(TIMELINE_GROUP, event), relay.loop)


def timeline_message(event, now: float) -> dict:
    return {"type": "event", "id": event.id, "html": pages.render_timeline_event(event, now)}


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
        update_secs: float | None = None,
        error_window: float = ERROR_WINDOW_SECS,
        tick_secs: float | None = None,
    ):
        self.source = source
        self.layer = layer
        self.loop = loop
        self.token = source_token(source)
        self.update_secs = UPDATE_SECS if update_secs is None else update_secs
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
        self._tick_due = False
        self._sent_storms: set[str] = set()
        self._was_connected = source.zk_connected
        self._last_update = NEVER
        self._last_urgent = NEVER  # when a change other than heartbeat data was last sent
        self._urgent = False  # such a change waits
        self._at_once = False  # a storm's own change waits (see _AT_ONCE)
        self._last_at_once = NEVER
        self._last_errors = NEVER
        self._withheld = False  # something was not sent since this process did not lead
        # news held (clusterstate.precedence) until the next send of errors, of updates
        self._news_errors = 0
        self._news_changes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listener: asyncio.Task | None = None
        self.listening = asyncio.Event()
        self._unsubscribe = None
        #: the pages open anywhere, by key: when one was last named (monotonic)
        self.pages: dict[pages.PageKey, float] = {}
        self.sent = {"cluster": 0, "storm": 0, "errors": 0, "status": 0}

    @property
    def done(self) -> bool:
        return self._task is None or self._task.done()

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name="stormui-relay")
        self._listener = self.loop.create_task(self._listen(), name="stormui-relay-pages")
        self._unsubscribe = self.source.subscribe(self._on_change)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        held, self._news_errors, self._news_changes = self._news_errors + self._news_changes, 0, 0
        precedence.NEWS.end(held)
        for task in (self._task, self._listener):
            if task is not None and not task.done():
                try:
                    task.cancel()
                except RuntimeError:  # its loop is closed already
                    pass

    # -- the mirror's thread ---------------------------------------------------

    def _on_change(self, change) -> None:
        # news (an error, a storm's own change) is held until its messages are sent, from
        # before the mirror lets go of it: background work steps aside meanwhile
        news = _news(change)
        if news:
            precedence.NEWS.begin()
        # hand off and return: the mirror's worker must not wait on us
        try:
            self.loop.call_soon_threadsafe(self._take, change, news)
        except RuntimeError:  # the loop is closed: this relay is over
            if news:
                precedence.NEWS.end()

    # -- the loop ----------------------------------------------------------------

    def _take(self, change, news: bool = False) -> None:
        if news:
            if change.kind == "errors":
                self._news_errors += 1
            else:
                self._news_changes += 1
        kind = change.kind
        if kind == "errors" and change.errors:
            for e in change.errors:
                self._errors.append((change.version, change.storm_id, change.task_id, e))
        if kind == "connection":
            self._status_dirty = True
        if kind in _AT_ONCE:
            self._at_once = True
        elif kind != "errors" and not (kind == "heartbeats" and change.storm_id is None):
            # an error goes to its sockets at once anyway (_send_errors): the pages' counts
            # of it may wait for the window, as tasks' comings and goings do
            self._urgent = True
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
                self._cluster_dirty = self._all_storms = self._tick_due = True
                next_tick = now + self.tick_secs
                self._forget_pages()
                if self.source.zk_connected != self._was_connected:
                    self._status_dirty = True  # without the mirror, nothing else tells
            errors_due = self._last_errors + self.error_window if self._errors else None
            update_due = (
                self._last_update + self.update_secs
                if self._cluster_dirty or self._all_storms or self._storms_dirty
                else None
            )
            if update_due is not None and self._urgent:
                update_due = min(update_due, self._last_urgent + self.update_secs)
            if update_due is not None and self._at_once:
                update_due = min(update_due, self._last_at_once + AT_ONCE_GAP_SECS)
            due = min(d for d in (next_tick, errors_due, update_due) if d is not None)
            if self._status_dirty or self._tick_due:
                due = now
            if due > now:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), due - now)
                except TimeoutError:
                    pass
                continue
            try:
                if self._tick_due:
                    self._tick_due = False
                    await self._send(STATUS_GROUP, {"type": "relay.ticked", "text": TICK_TEXT})
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
        if not relays_here():  # no longer the leader: another sends from now on
            self._withheld = True
            return
        if self._withheld:
            # it leads again with this relay (its election's session came back): what it
            # withheld meanwhile no page got, so every page starts again from a snapshot
            self._withheld = False
            await self.layer.group_send(STATUS_GROUP, {"type": "resync.requested"})
        await self.layer.group_send(group, event)

    async def _send_status(self) -> None:
        self._status_dirty = False
        connected = self.source.zk_connected
        synced_at = self.source.synced_at
        message = shapes.status_message(connected, synced_at)
        zk = pages.render_status(pages.status(time.time(), connected, synced_at))["zk-status"]
        text = encode({**message, "html": {"zk-status": zk}})
        await self._send(STATUS_GROUP, {"type": "status.changed", "text": text})
        self.sent["status"] += 1
        if connected and not self._was_connected:
            # watches were lost while disconnected: every page starts again from a snapshot
            await self._send(STATUS_GROUP, {"type": "resync.requested"})
        self._was_connected = connected

    async def _send_errors(self) -> None:
        held, self._news_errors = self._news_errors, 0
        with precedence.NEWS.ending(held):
            await self._send_errors_now()

    async def _send_errors_now(self) -> None:
        batch, self._errors = self._errors, []
        self._last_errors = time.monotonic()
        everything = []
        by_storm: dict[str, list] = {}
        for version, storm_id, task_id, record in batch:
            if isinstance(record, ErrorView):  # found by a poll, complete already
                view = record
            else:
                view = self._error_view(storm_id, task_id, record)
            html = pages.render_error_item(view, self._storm_name(storm_id), time.time())
            item = [version, encode({**shapes.error_message(view), "html": html}), error_key(view)]
            everything.append(item)
            by_storm.setdefault(storm_id, []).append(item)
        await self._send(ERRORS_GROUP, errors_event(self.token, everything))
        for storm_id, items in by_storm.items():
            await self._send(storm_group(storm_id), errors_event(self.token, items))
        self.sent["errors"] += len(everything)

    def _storm_name(self, storm_id: str) -> str | None:
        try:
            base = self.source.reader.storm_base(storm_id)
        except Exception:  # unreadable: the error names the storm by its id
            return None
        return base.storm_name if base is not None else None

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
            storm_id, task_id, component_id, record.time_secs, record.error, host, port, record.seq
        )

    async def _send_updates(self) -> None:
        held, self._news_changes = self._news_changes, 0
        with precedence.NEWS.ending(held):
            await self._send_updates_now()

    async def _send_updates_now(self) -> None:
        self._last_update = time.monotonic()
        if self._urgent:
            self._urgent = False
            self._last_urgent = self._last_update
        if self._at_once:
            self._at_once = False
            self._last_at_once = self._last_update
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
        head = {"type": "page.changed", "source": self.token, "version": version}
        events = []
        cluster_data = None
        for key in self._open_pages():
            storm_id = pages.storm_of(key)
            if storm_id is not None:
                if storm_id not in view.storms or not (all_storms or storm_id in dirty):
                    continue
                data = None
            else:
                if cluster_data is None:
                    cluster_data = shapes.cluster_update(view)
                data = cluster_data
            message = page_message(key, view, data)
            if message is not None:
                events.append((pages.page_group(key), {**head, "text": encode(message)}))
        # a storm gone: every page of it learns so from the storm's group
        candidates = self._sent_storms if all_storms else dirty & self._sent_storms
        for storm_id in sorted(candidates - set(view.storms)):
            text = encode(shapes.storm_removed(storm_id, view.as_of))
            events.append((storm_group(storm_id), {**head, "type": "storm.removed", "text": text}))
        self._sent_storms = set(view.storms)
        self.sent["cluster"] += 1
        self.sent["storm"] += len(events)
        return events, errors

    # -- which pages are open -------------------------------------------------------------

    async def _listen(self) -> None:
        """Take the consumers' word of which pages are open."""
        channel = await self.layer.new_channel()
        delay = JOIN_RETRY_FIRST_SECS
        while True:
            try:
                await self.layer.group_add(RELAY_GROUP, channel)
                break
            except Exception as exc:
                # Redis away for a moment (a timeout seen right after a take-over): a relay
                # that never listens would leave its take-over waiting for good
                log.warning("the relay could not join its group (%s); trying again", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, JOIN_RETRY_MAX_SECS)
        self.listening.set()
        try:
            while True:
                message = await self.layer.receive(channel)
                if message.get("type") == "pages.open":
                    self._pages_opened([tuple(k) for k in message.get("keys", ())])
        finally:
            try:
                await self.layer.group_discard(RELAY_GROUP, channel)
            except Exception:
                pass

    def _pages_opened(self, keys) -> None:
        now = time.monotonic()
        fresh = False
        for key in keys:
            if key not in self.pages:
                fresh = True
                storm_id = pages.storm_of(key)
                if storm_id is not None:
                    self._storms_dirty.add(storm_id)
            self.pages[key] = now
        if fresh:
            # a page's snapshot may predate what the relay sends next: send it soon
            self._cluster_dirty = True
            self._wake.set()

    def _open_pages(self) -> list:
        """The pages named in the last few ticks (read off the loop: a copy)."""
        horizon = time.monotonic() - PAGE_TICKS * self.tick_secs
        return [key for key, seen in list(self.pages.items()) if seen >= horizon]

    def _forget_pages(self) -> None:
        horizon = time.monotonic() - PAGE_TICKS * self.tick_secs
        for key in [k for k, seen in self.pages.items() if seen < horizon]:
            del self.pages[key]

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
