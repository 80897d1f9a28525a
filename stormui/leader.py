"""Which process leads: the one that mirrors Storm's ZooKeeper, relays and writes the history.

With the in-process channel layer (``REDIS_URL`` unset) nothing outside the serving
process reaches its sockets, so the one daphne leads itself, with no election.

With Redis every process is a candidate: every daphne from its first connection of any
kind (:func:`stormui.live.start_relay_soon`; a load balancer's health check gives it
one at once) and ``manage.py relay``, which leads without serving. They are elected
through ZooKeeper with kazoo's :class:`~kazoo.recipe.election.Election` under
``STORMUI_ZK_DASHBOARD_ROOT`` (outside Storm's root), each in a :class:`Candidate`
with a ZooKeeper session of its own: Storm's session times out after 10 s, while a
leader killed outright must lose its ephemeral node within ``STORMUI_LEADER_SESSION_SECS``
(default 4) so that another leads well within 10 s.

kazoo's threads only flip :attr:`Candidate.leading` and hand over to the event loop
(``loop.call_soon_threadsafe``). A leader whose session is suspended stops at once
(its relay sends nothing more: :func:`is_leader` is read before every send), since it
cannot know whether the session still holds its node; if the same session comes back
it leads again, and if the session is lost it stands again. On the loop one task
(:meth:`Candidate._steward`) takes each change in turn:

- taking over: the source is started afresh (its kind depends on leading), the relay,
  the bases' and the history's writers start on the loop, and every page resyncs
  (``resync.requested`` to every socket): what it had came from another leader;
- stepping down: the relay stops, then the writers (the history's run is closed as it
  stops; a killed leader's run is closed by the next at its last alive time), and the
  source is started afresh.

A process that ends normally (SIGTERM) withdraws at exit, deleting its node, so another
leads at once rather than after the session's timeout.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import threading

from channels.layers import get_channel_layer
from django.conf import settings

from .env import env_bool

log = logging.getLogger(__name__)

#: a candidate that could not reach ZooKeeper tries again after this
RETRY_SECS = 1.0

_lock = threading.Lock()
_candidate: Candidate | None = None


def process_local(layer) -> bool:
    """Whether every socket ``layer`` reaches lives in this process."""
    return getattr(layer, "process_local", False)


def elects() -> bool:
    """Whether the relaying process is elected (this module): with a shared layer,
    unless ``STORMUI_RELAY=true`` forces this process to relay."""
    # nothing outside this process can reach a process-local layer's sockets
    return not (env_bool("STORMUI_RELAY", False) or process_local(get_channel_layer()))


def relays_here() -> bool:
    """Whether this process leads now: it mirrors ZooKeeper and sends its changes to the
    groups, and writes the history. Read before every send."""
    return not elects() or is_leader()


def election_path() -> str:
    return settings.STORMUI_ZK_DASHBOARD_ROOT + "/leader"


def is_leader() -> bool:
    """Whether this process holds the election now (False when it does not stand)."""
    candidate = _candidate
    return candidate is not None and candidate.leading


def in_office() -> bool:
    """Whether this process holds the election and has taken over."""
    candidate = _candidate
    return candidate is not None and candidate.in_office


def current_candidate() -> Candidate | None:
    return _candidate


def stand(loop: asyncio.AbstractEventLoop, *, on_elected, on_deposed, on_resumed=None) -> Candidate:
    """Stand for election, leading on ``loop`` once elected; returns at once. A candidate
    already standing on ``loop`` is kept; one on another loop (tests) withdraws first.

    ``on_elected`` and ``on_deposed`` are the caller's (:mod:`stormui.live`: the relay
    starts and stops), so this module knows nothing of what leading means."""
    global _candidate
    with _lock:
        candidate = _candidate
        if candidate is not None and candidate.loop is loop and not candidate.withdrawn:
            return candidate
        if candidate is not None:
            candidate.withdraw()
        _candidate = Candidate(
            loop, on_elected=on_elected, on_deposed=on_deposed, on_resumed=on_resumed
        )
        _candidate.start()
        if candidate is None:
            # a process that ends (SIGTERM) deletes its node: another leads at once
            atexit.register(withdraw)
        return _candidate


def withdraw() -> None:
    """Stop standing: the leader steps down and its node is deleted, so another leads now."""
    global _candidate
    with _lock:
        if _candidate is not None:
            _candidate.withdraw()
        _candidate = None


class Candidate:
    """One process's candidacy, on its own ZooKeeper session.

    :param loop: the event loop the relay runs on once this process leads.
    :param on_elected: coroutine function run on the loop on taking over.
    :param on_deposed: coroutine function run on the loop on stepping down.
    :param on_resumed: coroutine function run on the loop when it leads again after its
        session was suspended and came back while the loop still led (a blip too short for
        the loop to step down): whatever was not sent meanwhile must reach the pages.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        session_secs: float | None = None,
        on_elected,
        on_deposed,
        on_resumed=None,
    ):
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self.loop = loop
        # coroutine functions run on the loop as leadership changes
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_resumed = on_resumed
        self.identifier = f"{socket.gethostname()}:{os.getpid()}"
        #: the election's session timeout: how long a killed leader keeps its node
        self.session_secs = (
            settings.STORMUI_LEADER_SESSION_SECS if session_secs is None else session_secs
        )
        self.client = KazooClient(
            hosts=",".join(settings.STORMUI_ZK_SERVERS),
            timeout=self.session_secs,
            connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
            command_retry=KazooRetry(max_tries=-1, max_delay=1.0),
        )
        #: flipped on kazoo's threads and this candidate's, read anywhere
        self.leading = False
        #: times this process took over (tests, logs)
        self.terms = 0
        #: times ``leading`` changed (a blip the loop slept through shows here alone)
        self.flips = 0
        self.withdrawn = False
        self._held = False  # the election's node is ours (our session holds it)
        self._state_lock = threading.Lock()
        self._lost = threading.Event()  # the session that held the node is gone
        self._stop = threading.Event()
        self._election = None
        self._thread: threading.Thread | None = None
        self._changed = asyncio.Event()  # touched on the loop only
        self._steward_task: asyncio.Task | None = None
        self._applied = False  # the loop has taken over (touched on the loop only)

    @property
    def in_office(self) -> bool:
        """Elected, and taken over on the loop (the relay runs)."""
        return self.leading and self._applied

    def start(self) -> None:
        self.client.add_listener(self._on_state)
        self._steward_task = self.loop.create_task(self._steward(), name="stormui-leadership")
        self._thread = threading.Thread(target=self._campaign, name="stormui-election", daemon=True)
        self._thread.start()

    def withdraw(self) -> None:
        self.withdrawn = True
        self._set_leading(False)
        self._stop.set()
        self._lost.set()
        election = self._election
        if election is not None:
            election.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2 * self.session_secs)
        try:
            self.client.stop()
            self.client.close()
        except Exception:
            log.exception("closing the election's session failed")

    # -- kazoo's threads: flip and hand over, never block or call ZooKeeper ------------------

    def _on_state(self, state) -> None:
        from kazoo.protocol.states import KazooState

        with self._state_lock:
            if state == KazooState.LOST:
                self._held = False
                self._lost.set()
            if state == KazooState.CONNECTED:
                # the same session is back with our node (a lost one said LOST first)
                self._set_leading(self._held and not self.withdrawn)
            else:
                self._set_leading(False)

    def _set_leading(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        self.flips += 1
        log.warning(
            "this process %s (%s)", "leads" if leading else "no longer leads", self.identifier
        )
        try:
            self.loop.call_soon_threadsafe(self._changed.set)
        except RuntimeError:  # the loop is closed: nothing left to lead
            pass

    # -- the election's thread ----------------------------------------------------------------

    def _campaign(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.start(timeout=max(self.session_secs, 5.0))
                break
            except Exception as exc:
                log.warning("the election cannot reach ZooKeeper (%s); trying again", exc)
                self._stop.wait(RETRY_SECS)
        while not self._stop.is_set():
            self._lost.clear()
            self._election = self.client.Election(election_path(), self.identifier)
            try:
                self._election.run(self._lead)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("the election failed (%s); standing again", exc)
                    self._stop.wait(RETRY_SECS)

    def _lead(self) -> None:
        """Elected (the election's thread): lead until the session is lost or we withdraw."""
        from kazoo.protocol.states import KazooState

        with self._state_lock:
            if self._lost.is_set():
                # a session was lost while we stood: the node may have gone with it; stand anew
                return
            self._held = True
            self.terms += 1
            self._set_leading(self.client.state == KazooState.CONNECTED and not self.withdrawn)
        self._lost.wait()
        with self._state_lock:
            self._held = False
            self._set_leading(False)
        # returning releases the node: gone with a lost session, deleted when withdrawing

    # -- the loop -------------------------------------------------------------------------------

    async def _steward(self) -> None:
        """Carries out each change of leadership in turn, on the loop. A change that came and
        went while the loop was busy (suspended and back, or during a take-over) is not
        lost: the loop, leading still, runs ``on_resumed``."""
        applied_flips = 0
        while True:
            await self._changed.wait()
            self._changed.clear()
            leading, flips = self.leading, self.flips
            try:
                if leading != self._applied:
                    if leading:
                        await self.on_elected()
                    else:
                        await self.on_deposed()
                    self._applied = leading
                elif leading and flips != applied_flips and self.on_resumed is not None:
                    await self.on_resumed()
                applied_flips = flips
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("changing leadership failed; trying again")
                await asyncio.sleep(RETRY_SECS)
                self._changed.set()
