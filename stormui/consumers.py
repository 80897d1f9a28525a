"""The live pages' sockets: ``/ws/cluster/``, ``/ws/storms/<id>/`` and ``/ws/errors/``.

Each socket joins its groups, then sends a snapshot of what its page shows,
then one message per change as :mod:`stormui.live` relays them. Messages
come pre-encoded from the relay and are sent as they are.

A slow socket must not hold up the others: each keeps a bounded
:class:`Outbox` drained by its own task. When it overflows, what was queued
is dropped and one fresh snapshot is sent instead; a socket whose send is
stuck for :data:`SEND_TIMEOUT_SECS` is closed (the browser reconnects and
resyncs). Daphne's own ping timeout closes sockets that stop reading.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import deque

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from clusterstate.paths import check_id

from . import live, shapes
from .forms import parse_error_filter

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

# snapshots are built once per view and shared by every socket that asks for the same
_snapshots: dict[tuple, tuple[object, str]] = {}
_snapshots_lock = threading.Lock()


def _shared_snapshot(key: tuple, view, build) -> str:
    with _snapshots_lock:
        hit = _snapshots.get(key)
        if hit is not None and hit[0] is view:
            return hit[1]
    text = live.encode(build())
    with _snapshots_lock:
        if len(_snapshots) > 1000:
            _snapshots.clear()
        _snapshots[key] = (view, text)
    return text


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
    """A relay batch of errors: ``(version, text)`` pairs, each sent as its own message."""

    __slots__ = ("errors",)

    def __init__(self, errors, source):
        super().__init__(None, source, max(v for v, _ in errors) if errors else None, strict=True)
        self.errors = errors

    def texts_after(self, mark) -> list[str]:
        token, version = mark
        if self.source != token or version is None:
            return [text for _, text in self.errors]
        return [text for v, text in self.errors if v > version]


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
        self._task = asyncio.get_running_loop().create_task(self._drain())

    def put(self, item: Item) -> None:
        if self.need_snapshot and not item.keep:
            return  # the snapshot about to be built holds this too
        if len(self.items) >= self.limit and not item.keep:
            self.overflows += 1
            self.request_snapshot(resync=True)
            return
        self.items.append(item)
        self._wake.set()

    def request_snapshot(self, *, resync: bool) -> None:
        self.items = deque(item for item in self.items if item.keep)
        self.need_snapshot = True
        self.resync = self.resync or resync
        self._wake.set()

    def close(self) -> None:
        self._task.cancel()

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
                            texts = item.texts_after(consumer.snapshot_mark)
                        elif consumer.is_stale(item):
                            continue
                        else:
                            texts = item.texts
                    # one timer for the lot: wait_for would make a task for every message
                    async with asyncio.timeout(self.timeout):
                        for text in texts:
                            await consumer.send(text_data=text)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.warning("closing a socket stuck for %ss", self.timeout)
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

    group_name = ""
    extra_groups: list = []
    source = None
    outbox: Outbox | None = None
    local_groups: list = []
    login_guard: asyncio.Task | None = None
    outbox_limit = OUTBOX_LIMIT
    send_timeout = SEND_TIMEOUT_SECS

    async def connect(self):
        user = self.scope.get("user")
        if settings.STORMUI_LOGIN_REQUIRED and not (user is not None and user.is_authenticated):
            await self.close()  # before accept: the handshake is refused
            return
        self.snapshot_mark = (None, None)
        self.source = await live.ensure_relay()
        if not await self.admit():
            return
        # join before the snapshot is built, so that no change falls between the two
        groups = [live.STATUS_GROUP, self.group_name, *self.extra_groups]
        if live.in_process_layer():
            for group in groups:
                live.local_groups.add(group, self)
            self.local_groups = groups
        else:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
            self.groups = groups  # Channels leaves them on disconnect
        await self.accept()
        self.outbox = Outbox(self, self.outbox_limit, self.send_timeout)
        self.outbox.request_snapshot(resync=False)
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

    async def dispatch(self, message):
        # Channels closes stale database connections in a thread before every handler; the
        # relay's events touch no database, and at hundreds of sockets that hop per message
        # through one thread was the bottleneck
        if message["type"] in _RELAY_EVENTS:
            await self.relay_event(message)
        else:
            await super().dispatch(message)

    async def relay_event(self, event):
        """Take one of the relay's events, from the layer or straight from the relay."""
        if self.outbox is not None:
            await _RELAY_EVENTS[event["type"]](self, event)

    async def disconnect(self, code):
        if self.login_guard is not None:
            self.login_guard.cancel()
        for group in self.local_groups:
            live.local_groups.discard(group, self)
        self.local_groups = []
        if self.outbox is not None:
            self.outbox.close()

    async def receive_json(self, content, **kwargs):
        pass  # the pages only listen

    # -- snapshots ---------------------------------------------------------------

    async def snapshot_text(self, *, resync: bool) -> str:
        token, version, text = await sync_to_async(self._snapshot, thread_sensitive=False)(resync)
        self.snapshot_mark = (token, version)
        return text

    def _snapshot(self, resync: bool) -> tuple[str, int, str]:
        source = self.source
        # read the version first: the view then holds at least every change up to it
        version = live.source_version(source)
        view = source.cluster_view()
        return live.source_token(source), version, self.build_snapshot(view, resync)

    def build_snapshot(self, view, resync: bool) -> str:
        raise NotImplementedError

    def is_stale(self, item: Item) -> bool:
        token, version = self.snapshot_mark
        if item.version is None or item.source != token or version is None:
            return False
        return item.version <= version if item.strict else item.version < version

    # -- group events, from the relay ---------------------------------------------

    async def status_changed(self, event):
        self.outbox.put(Item([event["text"]], keep=True))

    async def resync_requested(self, event):
        self.outbox.request_snapshot(resync=True)

    async def cluster_changed(self, event):
        self.outbox.put(Item([event["text"]], event["source"], event["version"]))

    async def storm_changed(self, event):
        if event.get("whole") and getattr(self, "component_id", None) is not None:
            return  # this page takes its component's narrowed update instead
        self.outbox.put(Item([event["text"]], event["source"], event["version"]))

    async def errors_reported(self, event):
        # one batch is one entry, so a burst never overflows a socket that keeps up; each
        # error is still its own message, and those the last snapshot holds are left out
        self.outbox.put(ErrorBatch(event["errors"], event["source"]))


_RELAY_EVENTS = {
    "status.changed": LiveConsumer.status_changed,
    "resync.requested": LiveConsumer.resync_requested,
    "cluster.changed": LiveConsumer.cluster_changed,
    "storm.changed": LiveConsumer.storm_changed,
    "errors.reported": LiveConsumer.errors_reported,
}


class ClusterConsumer(LiveConsumer):
    group_name = live.CLUSTER_GROUP

    def build_snapshot(self, view, resync):
        return _shared_snapshot(("cluster",), view, lambda: shapes.cluster_snapshot(view))


class StormConsumer(LiveConsumer):
    """A storm's page, or (``?component=``) a component's or task's page, narrowed to it."""

    storm_id = None
    component_id = None

    async def admit(self) -> bool:
        from urllib.parse import parse_qs

        try:
            self.storm_id = check_id(self.scope["url_route"]["kwargs"]["storm_id"], "storm id")
        except ValueError:
            self.storm_id = None
        view = await sync_to_async(self.source.cluster_view, thread_sensitive=False)()
        if self.storm_id is None or self.storm_id not in view.storms:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        self.group_name = live.storm_group(self.storm_id)
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        component_id = (query.get("component") or [""])[0]
        # an unknown component's page gets the whole storm's figures, as before
        if component_id in view.storms[self.storm_id].components:
            self.component_id = component_id
            self.extra_groups = [live.component_group(self.storm_id, component_id)]
        return True

    def build_snapshot(self, view, resync):
        storm = view.storms.get(self.storm_id)
        if storm is None:
            return live.encode(shapes.storm_removed(self.storm_id, view.as_of))
        return _shared_snapshot(
            ("storm", self.storm_id, self.component_id),
            view,
            lambda: shapes.storm_snapshot(
                storm,
                zk_connected=view.zk_connected,
                synced_at=view.synced_at,
                component_id=self.component_id,
            ),
        )


class ErrorsConsumer(LiveConsumer):
    group_name = live.ERRORS_GROUP

    async def connect(self):
        # the page's filters narrow the snapshot, as they narrow the page; the feed filters the rest
        from urllib.parse import parse_qs

        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        # the first of a repeated parameter, as the socket has always read it
        self.error_filter = dataclasses.replace(
            parse_error_filter({name: values[0] for name, values in query.items()}),
            limit=ERRORS_SNAPSHOT_LIMIT,
        )
        await super().connect()

    def build_snapshot(self, view, resync):
        def build():
            return shapes.errors_snapshot(view, self.error_filter.select(view), resync=resync)

        return _shared_snapshot(("errors", self.error_filter, resync), view, build)
