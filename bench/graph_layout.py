"""The storm graph at 100 components: Graphviz's ``dot`` against grandalf, and the region.

    .venv/bin/python -m bench.graph_layout [--components 100] [--runs 20]

A storm of ``--components`` components (a tenth of them spouts), each bolt reading one to
three earlier components on one of two streams, two tasks each, is derived in memory (no
ZooKeeper). Timed, the median of ``--runs``:

- ``dot -Tplain`` laying it out, process start included (:func:`stormui.graph._dot_layout`);
- grandalf's Sugiyama layout of the same nodes (one per pair of components; it routes no
  edge), when grandalf is installed (``pip install grandalf==0.8``: not a dependency);
- the storm page's graph region: the first time (derived, laid out, drawn); for a new view
  of the same storm after every task beat (the layout cached, the rest made again); and for
  the same view again (cached whole: the page and its live updates share it).

Target (issue 11): a 100-component graph renders in <= 50 ms once, then is cached per view.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time


def synthetic_storm(components: int, seed: int = 1):
    from clusterstate.records import WINDOWS, TaskHeartbeat, TaskInfo
    from stormui.cluster import StormRecords, TaskRecords, derive_storm

    rng = random.Random(seed)
    spouts = max(components // 10, 1)
    now = int(time.time())
    rows = []
    task = 1
    for i in range(components):
        cid = f"component-{i:03d}"
        if i < spouts:
            kind = "spout"
            stats = {"type": "spout"}
            for key in ("emitted", "transferred", "acked", "failed"):
                stats[key] = {w: {"default": 1000 * (i + 1)} for w in WINDOWS}
        else:
            kind = "bolt"
            inputs = {
                (f"component-{rng.randrange(i):03d}", rng.choice(("default", "other")))
                for _ in range(rng.randint(1, 3))
            }
            per_input: dict = {}
            for source, stream in inputs:
                per_input.setdefault(source, {})[stream] = 100 * i
            stats = {"type": "bolt", "emitted": {w: {"default": 10 * i} for w in WINDOWS}}
            for key in ("acked", "failed", "process_latencies"):
                stats[key] = {w: per_input for w in WINDOWS}
        for _ in range(2):
            beat = TaskHeartbeat(now, 100, stats)
            rows.append(TaskRecords(task, TaskInfo(cid, kind), beat, ()))
            task += 1
    records = StormRecords("bench-1-1", None, None, tuple(rows))
    return derive_storm(records, now=now, task_timeout=60)


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _grandalf(graph) -> None:
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    class Box:
        w, h = 160, 54

    vertices = {n.id: Vertex(n.id) for n in graph.nodes}
    for v in vertices.values():
        v.view = Box()
    pairs = {(e.source, e.target) for e in graph.edges if e.source != e.target}
    g = Graph(list(vertices.values()), [Edge(vertices[s], vertices[t]) for s, t in pairs])
    for part in g.C:
        layout = SugiyamaLayout(part)
        layout.init_all()
        layout.draw()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stormui.settings")
    import django

    django.setup()
    from django.template.loader import render_to_string

    from stormui import graph, pages

    storm = synthetic_storm(args.components)
    g = graph.derive_graph(storm, "all-time", storm.as_of)
    print(f"{len(g.nodes)} components, {len(g.edges)} edges")
    nodes, edges = g.structure
    dot_ms = _median_ms(lambda: graph._dot_layout(nodes, edges), args.runs)
    print(f"dot -Tplain layout: {dot_ms:.1f} ms")
    try:
        print(f"grandalf Sugiyama layout: {_median_ms(lambda: _grandalf(g), args.runs):.1f} ms")
    except ImportError:
        print("grandalf Sugiyama layout: not installed")

    def region():
        ctx = pages.storm_context(storm, pages.status(storm.as_of, True, None), "all-time")
        return render_to_string(pages.template("storm_graph"), ctx)

    def first():
        graph._layouts.clear()
        graph._drawings.clear()
        graph._inputs_cache.clear()
        region()

    def new_view():
        # every task beat since: the structure (so the layout) is the same, the figures not
        graph._drawings.clear()
        graph._inputs_cache.clear()
        region()

    print(f"graph region, first time (layout included): {_median_ms(first, args.runs):.1f} ms")
    print(f"graph region, a new view of the same storm: {_median_ms(new_view, args.runs):.1f} ms")
    print(f"graph region, the same view again: {_median_ms(region, args.runs):.2f} ms")
    print(f"region size: {len(region()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
