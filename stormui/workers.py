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
