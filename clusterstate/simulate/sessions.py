"""The simulator's ClusterState sessions, and the gate that lets one be shut safely."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from ..errors import NotConnectedError
from ..storm import mk_storm_cluster_state

log = logging.getLogger(__name__)


class _Shut(Exception):
    """The session or storm a write needs has been shut; the write is dropped."""


class _Gate:
    """Counts the writes in flight on something that may be shut (a session, a storm)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._inflight = 0
        self.closed = False

    @contextmanager
    def enter(self):
        with self._cond:
            if self.closed:
                raise _Shut()
            self._inflight += 1
        try:
            yield
        finally:
            with self._cond:
                self._inflight -= 1
                if not self._inflight:
                    self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new writes and wait (up to ``timeout``) for those in flight."""
        with self._cond:
            self.closed = True
            if not self._cond.wait_for(lambda: not self._inflight, timeout):
                log.warning("gave up waiting for %d writes in flight", self._inflight)


class _Session:
    """One ClusterState session from the factory, opened on first use."""

    RETRY_SECS = 2.0

    def __init__(self, factory, name: str, time_fn=time.time):
        self.name = name
        self._factory = factory
        self._time = time_fn  # names the error nodes it writes
        self._gate = _Gate()
        self._open_lock = threading.Lock()
        self._state = None
        self._scs = None
        self._retry_at = 0.0

    @property
    def closed(self) -> bool:
        return self._gate.closed

    @contextmanager
    def use(self):
        """The session's StormClusterState, for one write; raises _Shut once closed."""
        with self._gate.enter():
            yield self._open()

    def _open(self):
        scs = self._scs
        if scs is not None:
            return scs
        with self._open_lock:
            if self._scs is None:
                if time.monotonic() < self._retry_at:
                    raise NotConnectedError(f"{self.name}: session not open yet")
                try:
                    state = self._factory()
                except Exception:
                    self._retry_at = time.monotonic() + self.RETRY_SECS
                    raise
                try:
                    self._scs = mk_storm_cluster_state(state, time_fn=self._time)
                except Exception:
                    state.close()
                    raise
                self._state = state
            return self._scs

    def close(self) -> None:
        """Close the session (its ephemeral nodes vanish). Harmless if repeated."""
        self._gate.close()
        with self._open_lock:
            scs, state = self._scs, self._state
            self._scs = self._state = None
        for what, fn in (("disconnect", scs and scs.disconnect), ("close", state and state.close)):
            if fn:
                try:
                    fn()
                except Exception:
                    log.warning("%s: %s failed", self.name, what, exc_info=True)
