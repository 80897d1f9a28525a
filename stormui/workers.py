"""The one running writer of a kind per process (the base recorder, the history's writer).

Both are started by the relaying process for its source (:func:`stormui.live.ensure_relay`,
asked again by every socket that connects) and stopped with the relay; a new source (tests
switch sources) or a writer whose thread ended gets a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings


class OnePerProcess:
    """Keeps one started writer made by ``start(source)`` while the setting ``enabled`` (a
    name in Django's settings, true when absent) holds. A writer has ``source``,
    ``running`` and ``stop(timeout)``."""

    def __init__(self, enabled: str, start: Callable):
        self.enabled = enabled
        self.start = start
        self._guard = threading.Lock()
        self.current = None

    def ensure(self, source):
        """The writer of ``source``, started unless it runs already; ``None`` when disabled."""
        if not getattr(settings, self.enabled, True):
            return None
        with self._guard:
            writer = self.current
            if writer is None or writer.source is not source or not writer.running:
                if writer is not None:
                    writer.stop()
                self.current = self.start(source)
            return self.current

    def stop(self, timeout: float | None = None) -> None:
        with self._guard:
            if self.current is not None:
                self.current.stop(timeout)
            self.current = None


class ListeningThread:
    """A writer's life: it listens to ``source``'s changes (``_on_change``, on the mirror's
    thread) and works on a thread of its own (``_run``), woken by ``_wake`` and ended by
    ``_stop``. Subclasses set :attr:`thread_name` and call ``super().__init__(source)``."""

    thread_name = "stormui-writer"

    def __init__(self, source):
        self.source = source
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        self._unsubscribe = self.source.subscribe(self._on_change)
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop listening and end the thread (waiting up to ``timeout`` seconds if given)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        self._wake.set()
        if timeout is not None and self._thread is not None:
            self._thread.join(timeout)

    def _on_change(self, change) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError
