"""The live pages' sockets: ``/ws/cluster/``, ``/ws/storms/<id>/`` and ``/ws/errors/``.

Each socket joins its groups, then sends a snapshot of what its page shows,
then one message per change as :mod:`stormui.live` relays them. Messages
come pre-encoded from the relay and are sent as they are. A page's socket
names its page (:mod:`stormui.pages`: which page, which storm, component,
task or supervisor, which window) from its query; its process tells the relay
which pages are open (:func:`page_opened`).

A slow socket must not hold up the others: each keeps a bounded
:class:`Outbox` drained by its own task. When it overflows, what was queued
is dropped and one fresh snapshot is sent instead; a socket whose send is
stuck for :data:`SEND_TIMEOUT_SECS` is closed (the browser reconnects and
resyncs). Daphne's own ping timeout closes sockets that stop reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import connection

from clusterstate.paths import check_id, check_task_id

from . import charts, live, metrics, pages, paging, redislayer, shapes
from .cluster import page_window
from .forms import parse_error_filter
from .history import timeline
from .source import get_source

log = logging.getLogger(__name__)

#: queued messages (or batches of errors) per socket before it is resynced instead
OUTBOX_LIMIT = 200
#: a send stuck this long closes the socket
SEND_TIMEOUT_SECS = 10.0
#: the errors a feed's snapshot holds at most (as the page does)
ERRORS_SNAPSHOT_LIMIT = 200

CLOSE_LOGGED_OUT = 4401
CLOSE_NOT_FOUND = 4404
#: how often a socket that needed a login checks that its session still stands
LOGIN_RECHECK_SECS = 3.0
CLOSE_TOO_SLOW = 4408
#: the channel layer (Redis) is away: the socket is refused (RFC 6455's "try again later";
#: closed before its handshake is accepted, daphne answers it 403) and the page tries again
CLOSE_TRY_AGAIN = 1013

# snapshots are built once per view and shared by every socket that asks for the same
_snapshots = live.PerView()
#: the error feed's: its text and the errors it holds
_feed_snapshots = live.PerView()


def _shared_snapshot(key: tuple, view, build) -> str:
    return _snapshots.get(key, view, lambda: live.encode(build()))


#: this process's open pages: how many sockets each has
_open_pages: Counter = Counter()
_announcer: asyncio.Task | None = None


async def page_opened(layer, key: pages.PageKey) -> None:
    """A socket of page ``key`` opened here: the relay hears of it now, and every tick while
    any of its sockets stays open."""
    global _announcer
    _open_pages[key] += 1
    loop = asyncio.get_running_loop()
    if _announcer is None or _announcer.done() or _announcer.get_loop() is not loop:
        _announcer = loop.create_task(_announce_pages(layer), name="stormui-open-pages")
    if _open_pages[key] == 1:
        await _tell_relay(layer, [key])


def page_closed(key: pages.PageKey) -> None:
    _open_pages[key] -= 1
    if _open_pages[key] <= 0:
        del _open_pages[key]


async def _tell_relay(layer, keys) -> None:
    try:
        await layer.group_send(
            live.RELAY_GROUP, {"type": "pages.open", "keys": [list(k) for k in keys]}
        )
    except Exception:  # the relay hears again next tick
        log.exception("telling the relay which pages are open failed")


_announcing: asyncio.Task | None = None


def announce_soon(layer) -> None:
    """Tell the relay of this process's open pages now, once however many sockets ask: a
    new leader's relay knows of none."""
    global _announcing
    if _open_pages and (_announcing is None or _announcing.done()):
        _announcing = asyncio.get_running_loop().create_task(
            _tell_relay(layer, list(_open_pages)), name="stormui-announce-pages"
        )


async def _announce_pages(layer) -> None:
    while True:
        await asyncio.sleep(live.TICK_SECS)
        if _open_pages:
            await _tell_relay(layer, list(_open_pages))


def _query(scope) -> dict[str, str]:
    """The socket's query string: the first of each parameter."""
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
    return {name: values[0] for name, values in query.items()}


def still_logged_in(scope) -> bool:
    """Whether the session a socket was opened with still logs in an active user."""
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.utils.crypto import constant_time_compare

    session, user = scope.get("session"), scope.get("user")
    if session is None or user is None or not user.is_authenticated:
        return False
    fresh = session.__class__(session_key=session.session_key)  # read again, not the cached one
    if str(fresh.get(SESSION_KEY)) != str(user.pk):
        return False
    current = get_user_model()._default_manager.filter(pk=user.pk).first()
    if current is None or not current.is_active:
        return False
    return constant_time_compare(fresh.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash())


class Item:
    """A queued message: its text, and the relay's source and version to tell stale ones."""

    __slots__ = ("source", "version", "texts", "strict", "keep")

    def __init__(self, texts, source=None, version=None, strict=False, keep=False):
        self.texts = texts
        self.source = source
        self.version = version
        # an error already in the snapshot must not come again: equal versions are stale too
        self.strict = strict
        # a snapshot does not replace it (ZooKeeper's connection going down or up is news)
        self.keep = keep


class ErrorBatch(Item):
    """A relay batch of errors: ``(version, text, key)`` entries (``key``:
    :func:`stormui.live.error_key`, may be absent), each sent as its own message."""

    __slots__ = ("errors",)

    def __init__(self, errors, source, version=None):
        if version is None and errors:
            version = max(e[0] for e in errors)
        super().__init__(None, source, version, strict=True)
        self.errors = errors

    def texts_after(self, mark, held=frozenset()) -> list[str]:
        """The texts a socket whose last snapshot is ``mark`` and held the errors ``held``
        (their keys) has yet to get."""
        token, version = mark
        if self.source != token or version is None:
            # another process's relay (the leader's, to a follower's socket): its versions
            # do not compare with the snapshot's, the errors it held do
            return [e[1] for e in self.errors if len(e) < 3 or e[2] is None or e[2] not in held]
        return [e[1] for e in self.errors if e[0] > version]


def _message_count(items) -> int:
    return sum(
        len(item.errors) if isinstance(item, ErrorBatch) else len(item.texts) for item in items
    )


class Outbox:
    """A socket's bounded queue, drained by its own task."""

    def __init__(self, consumer, limit: int, timeout: float):
        self.consumer = consumer
        self.limit = limit
        self.timeout = timeout
        self.items: deque[Item] = deque()
        self.need_snapshot = False
        self.resync = False
        self.overflows = 0
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._drain())
        # a send stuck for ``timeout`` closes the socket: one timer per socket and period
        # looks, not one per send (asyncio.timeout around each send was a timer armed and
        # cancelled per frame: 7 % of a daphne's CPU with 500 sockets, docs/benchmarks.md)
        self._sending_since: float | None = None
        self._stuck = False
        self._watch = loop.call_later(timeout, self._look)

    def _outlives_snapshot(self, item: Item) -> bool:
        """Whether ``item`` stays queued when a snapshot is asked for: another process's
        errors (the leader's, to a follower's socket). The snapshot comes from this process's
        own copy of the cluster, which may not hold them yet; those it holds are left out
        after it (:meth:`ErrorBatch.texts_after`)."""
        if not isinstance(item, ErrorBatch):
            return False
        source = self.consumer.source
        return source is None or item.source != live.source_token(source)

    def put(self, item: Item) -> None:
        if self.need_snapshot and not item.keep and not self._outlives_snapshot(item):
            return  # the snapshot about to be built holds this too
        if len(self.items) >= self.limit and not item.keep:
            self.overflows += 1
            lost = [i for i in self.items if not i.keep]
            metrics.messages.add("dropped", _message_count(lost) + _message_count([item]))
            self.request_snapshot(resync=True, overflowed=True)
            return
        self.items.append(item)
        self._wake.set()

    def request_snapshot(self, *, resync: bool, overflowed: bool = False) -> None:
        # a socket too slow for its queue loses all of it; otherwise what the snapshot may
        # not hold stays
        self.items = deque(
            item
            for item in self.items
            if item.keep or (not overflowed and self._outlives_snapshot(item))
        )
        self.need_snapshot = True
        self.resync = self.resync or resync
        self._wake.set()

    def close(self) -> None:
        self._watch.cancel()
        self._task.cancel()

    def _look(self) -> None:
        """Closes the socket if a send has been stuck for ``timeout``; else looks again."""
        loop = asyncio.get_running_loop()
        since = self._sending_since
        waited = 0.0 if since is None else loop.time() - since
        if waited >= self.timeout:
            self._stuck = True
            self._task.cancel()
            return
        self._watch = loop.call_later(self.timeout - waited, self._look)

    async def _drain(self) -> None:
        consumer = self.consumer
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.need_snapshot or self.items:
                    if self.items and self.items[0].keep:
                        texts = self.items.popleft().texts
                    elif self.need_snapshot:
                        self.need_snapshot, resync, self.resync = False, self.resync, False
                        texts = [await consumer.snapshot_text(resync=resync)]
                    else:
                        item = self.items.popleft()
                        if isinstance(item, ErrorBatch):
                            texts = item.texts_after(consumer.snapshot_mark, consumer.snapshot_held)
                        elif consumer.is_stale(item):
                            continue
                        else:
                            texts = item.texts
                    self._sending_since = asyncio.get_running_loop().time()
                    for text in texts:
                        await consumer.send(text_data=text)
                    self._sending_since = None
                    metrics.messages.add("sent", len(texts))
        except asyncio.CancelledError:
            if not self._stuck:
                raise
            log.warning("closing a socket stuck for %ss", self.timeout)
            metrics.messages.add("dropped", _message_count(self.items))
            await self._close(CLOSE_TOO_SLOW)
        except Exception:
            log.exception("live socket failed; closing it")
            await self._close(1011)

    async def _close(self, code: int) -> None:
        try:
            await asyncio.wait_for(self.consumer.close(code=code), 1.0)
        except Exception:
            pass


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """What the three sockets share; subclasses name their group and build their snapshot."""

    source = None
    outbox: Outbox | None = None
    #: the page this socket serves (None: the error feed, which every feed socket shares)
    page_key: pages.PageKey | None = None
    login_guard: asyncio.Task | None = None
    outbox_limit = OUTBOX_LIMIT
    send_timeout = SEND_TIMEOUT_SECS
    #: names the socket in stormui_sockets_open (stormui.metrics); counted while open
    kind = "cluster"
    counted = False

    async def connect(self):
        user = self.scope.get("user")
        if settings.STORMUI_LOGIN_REQUIRED and not (user is not None and user.is_authenticated):
            # accepted only to say why, with nothing sent: the page offers the login (a
            # refused handshake would look like a network fault and be retried forever)
            await self.accept()
            await self.close(code=CLOSE_LOGGED_OUT)
            return
        self.snapshot_mark = (None, None)
        self.snapshot_held = frozenset()  # the errors the last snapshot held, by key
        self.source = await live.ensure_relay()
        if not await self.admit():
            return
        # join before the snapshot is built, so that no change falls between the two
        groups = [live.STATUS_GROUP, *self.page_groups()]
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:  # both of the project's layers hand group messages over at once
            attach(self.channel_name, self.take_event)
        try:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
        except redislayer.CONNECTION_ERRORS as exc:
            # Redis away: refused without a trace; the page tries again with its backoff
            log.warning("refusing a socket: the channel layer is unreachable (%s)", exc)
            forget = getattr(self.channel_layer, "forget", None)
            if forget is not None:
                forget(self.channel_name)
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        self.groups = groups  # Channels leaves them on disconnect
        if self.page_key is not None:
            await page_opened(self.channel_layer, self.page_key)
        await self.accept()
        self.outbox = Outbox(self, self.outbox_limit, self.send_timeout)
        self.outbox.request_snapshot(resync=False)
        metrics.sockets_open.add(self.kind)
        self.counted = True
        if settings.STORMUI_LOGIN_REQUIRED:
            self.login_guard = asyncio.get_running_loop().create_task(self._guard_login())

    async def _guard_login(self) -> None:
        # a login is checked at connect; an account disabled or logged out later must not
        # keep receiving the cluster's data on a socket opened before
        while True:
            await asyncio.sleep(LOGIN_RECHECK_SECS)
            try:
                allowed = await database_sync_to_async(still_logged_in)(self.scope)
            except Exception:
                log.exception("re-checking a socket's login failed")
                allowed = False
            if not allowed:
                if self.outbox is not None:
                    self.outbox.close()
                    self.outbox = None
                await self.close(code=CLOSE_LOGGED_OUT)
                return

    async def admit(self) -> bool:
        return True

    def page_groups(self) -> list[str]:
        return [pages.page_group(self.page_key)]

    async def dispatch(self, message):
        # Channels closes stale database connections in a thread before every handler; the
        # relay's events touch no database, and at hundreds of sockets that hop per message
        # through one thread was the bottleneck
        if message["type"] in _RELAY_EVENTS:
            await self.relay_event(message)
        else:
            await super().dispatch(message)

    async def relay_event(self, event):
        """Take one of the relay's events from the layer's receive loop (from a layer that
        does not hand them over)."""
        self.take_event(event)

    def take_event(self, event) -> None:
        """Take one of the relay's events: queue it on the socket's outbox. Both layers
        (in-process and Redis) call this themselves for each group message (``attach``)."""
        if self.outbox is not None:
            _RELAY_EVENTS[event["type"]](self, event)

    async def disconnect(self, code):
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        if self.login_guard is not None:
            self.login_guard.cancel()
        if self.page_key is not None and self.outbox is not None:
            page_closed(self.page_key)
        if self.outbox is not None:
            self.outbox.close()
        if self.counted:
            self.counted = False
            metrics.sockets_open.add(self.kind, -1)

    async def receive_json(self, content, **kwargs):
        pass  # the pages only listen

    # -- snapshots ---------------------------------------------------------------

    async def snapshot_text(self, *, resync: bool) -> str:
        token, version, text = await sync_to_async(self._snapshot, thread_sensitive=False)(resync)
        live.watch_copy(self.source)  # a source started afresh (leadership changed) too
        self.snapshot_mark = (token, version)
        return text

    def _snapshot(self, resync: bool) -> tuple[str, int, str]:
        # the process's source is started afresh when its leadership changes
        source = self.source = get_source()
        # read the version first: the view then holds at least every change up to it
        version = live.source_version(source)
        view = source.cluster_view()
        return live.source_token(source), version, self.build_snapshot(view, resync)

    def build_snapshot(self, view, resync: bool) -> str:
        key = self.page_key

        def build():
            data = live.page_data(key, view, snapshot=True)
            return live.page_message(key, view, data) or data

        return _shared_snapshot(key, view, build)

    def is_stale(self, item: Item) -> bool:
        token, version = self.snapshot_mark
        if item.version is None or item.source != token or version is None:
            return False
        return item.version <= version if item.strict else item.version < version

    # -- group events, from the relay ---------------------------------------------

    def status_changed(self, event):
        self.outbox.put(Item([event["text"]], keep=True))

    def relay_ticked(self, event):
        # no news, but news that the relay is there: a page hearing nothing says it is stale
        self.outbox.put(Item([event["text"]]))

    def resync_requested(self, event):
        self.outbox.request_snapshot(resync=True)
        announce_soon(self.channel_layer)

    def page_changed(self, event):
        self.outbox.put(Item([event["text"]], event["source"], event["version"]))

    def errors_reported(self, event):
        # one batch is one entry, so a burst never overflows a socket that keeps up; each
        # error is still its own message, and those the last snapshot holds are left out
        self.outbox.put(ErrorBatch(event["errors"], event["source"], event.get("version")))


_RELAY_EVENTS = {
    "status.changed": LiveConsumer.status_changed,
    "relay.ticked": LiveConsumer.relay_ticked,
    "resync.requested": LiveConsumer.resync_requested,
    "page.changed": LiveConsumer.page_changed,
    "storm.removed": LiveConsumer.page_changed,
    "errors.reported": LiveConsumer.errors_reported,
    # Redis came back (stormui.redislayer): the groups are joined again, what was sent
    # meanwhile is lost, so the socket starts again from a snapshot
    "layer.reconnected": LiveConsumer.resync_requested,
}


class ClusterConsumer(LiveConsumer):
    """The cluster's page, the supervisors' (``?page=supervisors``) or one supervisor's
    (``?supervisor=<id>``): each takes the cluster's figures and its own regions."""

    async def admit(self) -> bool:
        query = _query(self.scope)
        if query.get("supervisor"):
            try:
                supervisor_id = check_id(query["supervisor"], "supervisor id")
            except ValueError:
                supervisor_id = None
            view = await sync_to_async(self.source.cluster_view, thread_sensitive=False)()
            if supervisor_id is None or supervisor_id not in view.supervisors:
                await self.accept()
                await self.close(code=CLOSE_NOT_FOUND)
                return False
            self.page_key = ("supervisor", supervisor_id)
        elif query.get("page") == "supervisors":
            self.page_key = ("supervisors", *paging.key_part(paging.parse(query, "supervisors")))
        else:
            self.page_key = ("cluster", *paging.key_part(paging.parse(query, "cluster")))
        return True


class StormConsumer(LiveConsumer):
    """A storm's page; with ``?component=`` a component's, with ``?task=`` a task's (both
    narrowed to the component); ``?window=`` the page's window."""

    kind = "storm"
    storm_id = None
    component_id = None

    async def admit(self) -> bool:
        try:
            self.storm_id = check_id(self.scope["url_route"]["kwargs"]["storm_id"], "storm id")
        except ValueError:
            self.storm_id = None
        view = await sync_to_async(self.source.cluster_view, thread_sensitive=False)()
        if self.storm_id is None or self.storm_id not in view.storms:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        storm = view.storms[self.storm_id]
        query = _query(self.scope)
        window = page_window(query.get("window"))
        task_id = None
        try:
            task_id = check_task_id(query["task"]) if "task" in query else None
        except ValueError:
            pass
        component_id = query.get("component", "")
        if task_id is not None and task_id in storm.tasks:
            self.component_id = storm.tasks[task_id].component_id
            self.page_key = ("task", self.storm_id, str(task_id))
        elif component_id in storm.components:
            self.component_id = component_id
            tables = paging.key_part(paging.parse(query, "component"))
            key = ("component", self.storm_id, component_id, window, *tables)
            self.page_key = pages.with_chart_range(key, charts.parse_range(query.get("range")))
        else:
            # an unknown component's page gets the whole storm's figures, as before
            key = ("storm", self.storm_id, window)
            self.page_key = pages.with_chart_range(key, charts.parse_range(query.get("range")))
        return True

    def page_groups(self) -> list[str]:
        return [pages.page_group(self.page_key), live.storm_group(self.storm_id)]

    def build_snapshot(self, view, resync):
        if self.storm_id not in view.storms:
            return live.encode(shapes.storm_removed(self.storm_id, view.as_of))
        return super().build_snapshot(view, resync)


class ErrorsConsumer(LiveConsumer):
    """The error feed: every error, as it is reported; its snapshot narrowed by the page's
    filters, as the page is (the feed filters the rest in the browser), and its page
    (``?errors_page=``: the newest errors stream into the first alone)."""

    kind = "errors"
    feed_page = 1

    async def connect(self):
        self.error_filter = parse_error_filter(_query(self.scope))
        self.feed_page = paging.parse_page(_query(self.scope).get("errors_page"))
        await super().connect()

    def page_groups(self) -> list[str]:
        return [live.ERRORS_GROUP]

    def build_snapshot(self, view, resync):
        def build():
            st = pages.status(view.as_of, view.zk_connected, view.synced_at)
            ctx = pages.errors_context(view, st, self.error_filter, self.feed_page)
            errors = ctx["errors"][:ERRORS_SNAPSHOT_LIMIT]
            data = shapes.errors_snapshot(view, errors, resync=resync)
            text = live.encode({**data, "html": pages.render_regions("errors", ctx)})
            # the errors it holds, as the relay names them: none may come again after it
            held = frozenset(k for k in map(live.error_key, errors) if k is not None)
            return text, held

        key = ("errors", self.error_filter, self.feed_page, resync)
        text, self.snapshot_held = _feed_snapshots.get(key, view, build)
        return text


class TimelineConsumer(LiveConsumer):
    """The timeline's first page (``?storm=&kind=`` as the page's filters): its snapshot is
    the page's list; then each new event the filters keep, rendered as the list renders it."""

    kind = "timeline"
    query = None

    async def admit(self) -> bool:
        try:
            self.query = timeline.parse_query(_query(self.scope))
        except timeline.BadQuery:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        return True

    def page_groups(self) -> list[str]:
        return [live.TIMELINE_GROUP]

    def build_snapshot(self, view, resync):
        st = pages.status(view.as_of, view.zk_connected, view.synced_at)
        try:
            html = pages.render_regions("timeline", timeline.timeline_context(self.query, st))
        finally:
            # a worker thread of the pool, not Channels' database thread: leave no connection
            connection.close()
        return live.encode(
            {
                "type": "snapshot",
                "as_of": view.as_of,
                "zk_connected": view.zk_connected,
                "resync": resync,
                "html": html,
            }
        )

    def timeline_events(self, event):
        storm, kind = self.query.storm, self.query.kind
        texts = [
            text
            for _id, storm_id, event_kind, text in event["events"]
            if (storm is None or storm_id == storm) and (kind is None or event_kind == kind)
        ]
        if texts:
            self.outbox.put(Item(texts))


_RELAY_EVENTS["timeline.events"] = TimelineConsumer.timeline_events
