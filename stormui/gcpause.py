"""Keeping CPython's full garbage collections from pausing the dashboard.

A mirror of a large cluster is millions of long-lived objects, and a full
collection (generation 2) walks every one of them while holding the GIL: the
mirror's worker, the relay and every socket stop meanwhile. Measured in a
daphne under ``bench.live_latency``'s load (5,000 tasks heartbeating every
3 s): a full collection every 8 s or so, each 115 to 318 ms, freeing next to
nothing (the mirror's and the views' data hold no reference cycles; reference
counting frees them); they were most of the p99 of a change's way to a page.

So the view builder calls :meth:`Tender.tend` after each build: every
:data:`FREEZE_SECS` it moves what has survived so far into the permanent
generation (``gc.freeze()``), which collections skip; the young generations
are still collected as usual. Frozen objects are still freed by reference
counting when no longer used; only reference cycles that became garbage while
frozen wait, until the full collection that every :data:`THAW_SECS` thaws
everything first (``gc.unfreeze()``), so nothing is kept for good. CPython's
own thresholds are left alone: tuning them only spaces the same pauses out.
The thaw's whole collection is one such pause, every ten minutes.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

#: what has survived is frozen this often (seconds): a full collection then walks only what
#: the last few seconds left (15 to 80 ms each, measured, when this was 10 s)
FREEZE_SECS = 2.0
#: ... and everything thawed and collected whole this often
THAW_SECS = 600.0


class Tender:
    """Freezes and thaws on a schedule; :meth:`tend` is cheap when nothing is due."""

    def __init__(self, freeze_secs: float = FREEZE_SECS, thaw_secs: float = THAW_SECS):
        self.freeze_secs = freeze_secs
        self.thaw_secs = thaw_secs
        self._lock = threading.Lock()
        self._frozen_at: float | None = None
        self._thawed_at: float | None = None
        #: how many times it froze, how many whole collections it ran, and what they freed
        self.freezes = 0
        self.thaws = 0
        self.freed = 0

    def tend(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._thawed_at is None:
                self._thawed_at = now
            if now - self._thawed_at >= self.thaw_secs:
                self._thawed_at = now
                gc.unfreeze()
                freed = gc.collect()
                self.thaws += 1
                self.freed += freed
                log.debug("garbage collected whole: %d objects freed", freed)
                self._freeze(now)
            elif self._frozen_at is None or now - self._frozen_at >= self.freeze_secs:
                self._freeze(now)

    def _freeze(self, now: float) -> None:
        gc.freeze()
        self.freezes += 1
        self._frozen_at = now


#: the process's one tender (every source's builder tends the same heap)
TENDER = Tender()
