"""What is built from a view, once per view (stormui.live.PerView): a plain threaded test, apart
from test_live.py's asyncio tests."""

from __future__ import annotations

import threading

from stormui import live


def test_per_view_builds_once_per_view_however_many_threads_ask():
    cache = live.PerView(bound=2)
    started, release = threading.Event(), threading.Event()
    builds = []

    def build():
        builds.append(1)
        started.set()
        release.wait(30)
        return len(builds)

    view = object()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", view, build)))
        for _ in range(4)
    ]
    threads[0].start()
    assert started.wait(30)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(30)
    # the others, asking while it was built or after, got that build
    assert results == [1, 1, 1, 1] and len(builds) == 1
    # a new view is built again; past the bound, old keys go
    assert cache.get("k", object(), build) == 2
    for key in ("a", "b", "c"):
        cache.get(key, view, lambda key=key: key)
    assert "k" not in cache._built
