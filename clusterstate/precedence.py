"""News first: background work steps aside while a change is on its way to the pages.

One process does everything in the dashboard: the mirror's worker follows
ZooKeeper's watches (an error, a storm's change), and beside it threads do work
nobody waits for this instant (the heartbeat poller decoding thousands of
heartbeats, the view builder rebuilding the whole cluster's figures, the
history's writer). All of them share one interpreter lock. CPython hands the
lock over every switch interval (5 ms) at best, so a change that takes three
hops (ZooKeeper's reply, the mirror's worker, the relay's build and send)
while two or three busy threads compete waits several intervals at each hop:
on a 5,000-task cluster a storm's change took 40 to 90 ms to reach the
browser, most of it waiting for the lock.

The operating system's thread priorities cannot help (the lock is not theirs
to give), and a lock-free design is not on offer in CPython; so the background
work yields of its own accord. A :class:`Gate` counts the news on its way:
:meth:`Gate.begin` when it arrives (the mirror's watch callback), :meth:`Gate.end`
when the hop that had it is done with it (the mirror once it has told its
listeners, the relay once its pages' messages are sent). Background loops call
:meth:`Gate.step_aside` at points where pausing costs them nothing (between
storms, between batches): while news is on its way it waits until there is
none, for at most ``max_wait`` seconds, and after a wait it runs at least
``max_wait`` before it waits again: background work keeps at least half its pace
under a stream of news, and a news hop that never ended (a bug) would cost no
more than that.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

#: the longest one checkpoint waits for the news to pass
MAX_WAIT_SECS = 0.1


class Gate:
    """News on its way, counted; background work waits at its checkpoints while any is.

    :param max_wait: the longest :meth:`step_aside` waits, in seconds.
    """

    def __init__(self, max_wait: float = MAX_WAIT_SECS):
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._pending = 0
        self._clear = threading.Event()
        self._clear.set()
        self._local = threading.local()  # per background thread: when its last wait ended
        #: threads waiting at a checkpoint now
        self.waiting = 0
        #: checkpoints that waited
        self.waits = 0

    @property
    def pending(self) -> int:
        """News begun and not ended."""
        return self._pending

    def begin(self, count: int = 1) -> None:
        """``count`` pieces of news are on their way (from any thread)."""
        if count <= 0:
            return
        with self._lock:
            self._pending += count
            self._clear.clear()

    def end(self, count: int = 1) -> None:
        """``count`` pieces of news begun earlier have gone their way (from any thread)."""
        if count <= 0:
            return
        with self._lock:
            self._pending = max(0, self._pending - count)
            if self._pending == 0:
                self._clear.set()

    @contextmanager
    def ending(self, count: int):
        """A ``with`` block after which ``count`` pieces of news have gone (however it ends)."""
        try:
            yield
        finally:
            self.end(count)

    def step_aside(self) -> float:
        """From background work: wait while news is on its way, at most ``max_wait``, unless
        this thread's last wait ended less than ``max_wait`` ago.

        :returns: the seconds waited (0.0 at once when no news is pending).
        """
        if self._clear.is_set():
            return 0.0
        started = time.monotonic()
        if started - getattr(self._local, "resumed", float("-inf")) < self.max_wait:
            return 0.0
        with self._lock:
            self.waiting += 1
        try:
            self._clear.wait(self.max_wait)
        finally:
            resumed = self._local.resumed = time.monotonic()
            waited = resumed - started
            with self._lock:
                self.waiting -= 1
                self.waits += 1
        return waited


#: the process's gate: the mirror begins news, the relay ends it, background work yields
NEWS = Gate()
