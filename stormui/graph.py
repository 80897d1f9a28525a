"""A storm as a directed graph, drawn from its heartbeats alone (no Nimbus, no topology file).

Nodes are its components, spouts first; edges are every (input component, stream) that a
bolt's stats name: a bolt's ``acked``, ``failed`` and ``process_latencies`` are keyed by
input component, then stream (``docs/contract/cluster-state.md``, Stats). The structure is
the union over every window, so it does not change with the window shown; the figures are
the chosen window's. Deriving (:func:`derive_graph`) is pure; laying out (:func:`layout`)
asks Graphviz.

Why Graphviz's ``dot`` rather than a pure-Python layered layout: measured on a storm of 100
components and 171 edges (``bench/graph_layout.py``, ``docs/benchmarks.md``), ``dot -Tplain``
took 29 to 47 ms a layout, process start included, and grandalf's Sugiyama layout 54 to 92
ms, before routing a single edge (a shared 2-core machine, under load).
``dot`` also routes the edges (splines around the nodes, one per stream between the same two
components, self-loops and cycles included) and crosses fewer of them, where grandalf leaves
the routing, loops and parallel edges to us. It costs a Debian package (``graphviz``,
installed by ``scripts/bootstrap.sh``); without it the page shows the graph as text.
A layout depends on the structure alone, so it is cached by structure: a storm is laid out
again only when a component or an edge comes or goes, not on every heartbeat.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from html import escape

from django.template.defaultfilters import pluralize
from django.utils.safestring import mark_safe

from .charts import rate
from .cluster import UNKNOWN, ErrorView, StormView
from .rates import NO_RATES, Rates
from .templatetags.dashboard import count, dom_id, first_line, href, ms

log = logging.getLogger(__name__)

#: an error younger than this makes its node stand out (as the tables highlight it)
RECENT_ERROR_SECS = 30 * 60
#: a layout longer than this is given up (the page then shows the graph as text)
DOT_TIMEOUT_SECS = 10.0
#: layouts kept, by structure
LAYOUT_CACHE_SIZE = 256

# a node's box, in points (dot's unit): room for a 24-character id and two lines of figures
NODE_W = 160.0
NODE_H = 54.0
MARGIN = 14.0
LABEL_CHARS = 24

_KINDS_ORDER = {"spout": 0, "bolt": 1}


@dataclass(frozen=True)
class GraphNode:
    id: str
    type: str  # "spout", "bolt" or "unknown"
    tasks: int
    tasks_alive: int
    emitted: int
    transferred: int
    acked: int
    failed: int
    latency_ms: float | None  # complete latency (spouts), process latency (bolts)
    last_error: ErrorView | None
    recent_error: bool  # its last error is younger than RECENT_ERROR_SECS
    missing: bool = False  # named as an input by a bolt's stats, but it has no tasks
    rates: Rates = NO_RATES  # its alive tasks' tuples per second

    @property
    def dead(self) -> int:
        return self.tasks - self.tasks_alive


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    stream: str
    acked: int
    failed: int
    process_latency_ms: float | None  # weighted by acked, as the tables weigh it
    # some count or latency in its stats could not be read (negative, fractional, not a number)
    unreadable: bool = False
    acked_rate: float | None = None  # acked per second by its target's alive tasks

    @property
    def system(self) -> bool:
        return self.stream.startswith("__")

    @property
    def self_loop(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True)
class Graph:
    storm_id: str
    window: str
    nodes: tuple[GraphNode, ...]  # spouts, then bolts, then the rest, each by id
    edges: tuple[GraphEdge, ...]  # by (source, target, stream)

    @property
    def structure(self) -> tuple:
        """What the layout depends on: the nodes and the edges, without figures."""
        return (
            tuple(n.id for n in self.nodes),
            tuple((e.source, e.target, e.stream) for e in self.edges),
        )


# -- deriving ------------------------------------------------------------------


def _count(value) -> int | None:
    """A count as an integer; None for anything that is not a whole number >= 0."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


def _latency(value) -> float | None:
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _by_input(stats: dict, key: str, window: str | None) -> dict:
    """``stats[key][window]`` as {input component: {stream: value}}, skipping what is not one;
    with ``window`` None, every window's, merged (for the names alone)."""
    windows = stats.get(key)
    if not isinstance(windows, dict):
        return {}
    chosen = windows.values() if window is None else [windows.get(window)]
    out: dict = {}
    for per_input in chosen:
        if not isinstance(per_input, dict):
            continue  # a missing window: nothing in it
        for component, per_stream in per_input.items():
            if isinstance(component, str) and isinstance(per_stream, dict):
                for stream, value in per_stream.items():
                    if isinstance(stream, str):
                        out.setdefault(component, {})[stream] = value
    return out


def _task_inputs(stats: dict, window: str) -> tuple[frozenset, dict]:
    """A bolt task's inputs: every (input component, stream) its stats name in any window,
    and for ``window`` each one's [acked, failed, latency * acked, acked with a latency,
    unreadable]."""
    names = set()
    for key in ("acked", "failed", "process_latencies"):
        for source, per_stream in _by_input(stats, key, None).items():
            names.update((source, stream) for stream in per_stream)
    acked = _by_input(stats, "acked", window)
    failed = _by_input(stats, "failed", window)
    latencies = _by_input(stats, "process_latencies", window)
    figures = {}
    for source in acked.keys() | failed.keys() | latencies.keys():
        a_s, f_s, l_s = acked.get(source, {}), failed.get(source, {}), latencies.get(source, {})
        for stream in a_s.keys() | f_s.keys() | l_s.keys():
            n_acked = _count(a_s.get(stream, 0))
            n_failed = _count(f_s.get(stream, 0))
            latency = _latency(l_s[stream]) if stream in l_s else None
            unreadable = n_acked is None or n_failed is None or (stream in l_s and latency is None)
            weight = n_acked if latency is not None and n_acked else 0
            figures[(source, stream)] = (
                n_acked or 0,
                n_failed or 0,
                latency * weight if weight else 0.0,
                weight,
                unreadable,
            )
    return frozenset(names), figures


# The mirror hands out the same stats object until the task beats again (as for
# cluster._sums_cache): a task's inputs are worked out once per heartbeat and window.
# Entries hold their stats object, so its id cannot be reused while cached.
_inputs_cache: dict = {}
INPUTS_CACHE_SIZE = 50_000


def _cached_inputs(stats: dict, window: str) -> tuple[frozenset, dict]:
    key = (id(stats), window)
    hit = _inputs_cache.get(key)
    if hit is not None and hit[0] is stats:
        return hit[1]
    found = _task_inputs(stats, window)
    if len(_inputs_cache) >= INPUTS_CACHE_SIZE:
        _inputs_cache.clear()  # tasks that beat since: they go with the rest
    _inputs_cache[key] = (stats, found)
    return found


def derive_graph(storm: StormView, window: str, now: float) -> Graph:
    """The storm's graph for ``window``, from its tasks' heartbeats (reads nothing).

    A bolt task without a component (its info is missing) names no edge: it has no node to
    point at. An input naming a component with no tasks gets a node of its own, marked
    ``missing``. A count that is not a whole number >= 0 is left out of the sums and marks
    its edge ``unreadable``.
    """
    names: set[tuple[str, str, str]] = set()
    sums: dict[tuple[str, str, str], list] = {}  # acked, failed, latency * acked, weight
    bad: set[tuple[str, str, str]] = set()
    for task in storm.tasks.values():
        stats = task.stats
        target = task.component_id
        if target is None or type(stats) is not dict or stats.get("type") != "bolt":
            continue
        task_names, figures = _cached_inputs(stats, window)
        names.update((source, target, stream) for source, stream in task_names)
        for (source, stream), (n_acked, n_failed, lat_sum, weight, unreadable) in figures.items():
            edge = (source, target, stream)
            row = sums.get(edge)
            if row is None:
                sums[edge] = [n_acked, n_failed, lat_sum, weight]
            else:
                row[0] += n_acked
                row[1] += n_failed
                row[2] += lat_sum
                row[3] += weight
            if unreadable:
                bad.add(edge)
    edges = []
    for edge in sorted(names):
        acked, failed, lat_sum, weight = sums.get(edge, (0, 0, 0.0, 0))
        edges.append(
            GraphEdge(
                *edge,
                acked=acked,
                failed=failed,
                process_latency_ms=lat_sum / weight if weight else None,
                unreadable=edge in bad,
                acked_rate=storm.input_rates.get(edge),
            )
        )

    nodes = []
    for comp in storm.components.values():
        w = comp.window_stats.get(window)
        e = comp.last_error
        nodes.append(
            GraphNode(
                id=comp.component_id,
                type=comp.component_type,
                tasks=len(comp.task_ids),
                tasks_alive=comp.tasks_alive,
                emitted=w.emitted if w else 0,
                transferred=w.transferred if w else 0,
                acked=w.acked if w else 0,
                failed=w.failed if w else 0,
                latency_ms=w.latency_ms if w else None,
                last_error=e,
                recent_error=e is not None and now - e.time_secs < RECENT_ERROR_SECS,
                rates=comp.rates,
            )
        )
    for cid in sorted({e.source for e in edges} - storm.components.keys()):
        nodes.append(GraphNode(cid, UNKNOWN, 0, 0, 0, 0, 0, 0, None, None, False, missing=True))
    nodes.sort(key=lambda n: (_KINDS_ORDER.get(n.type, 2), n.missing, n.id))
    return Graph(storm.id, window, tuple(nodes), tuple(edges))


# -- laying out ----------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    nodes: dict[str, tuple[float, float]]  # a node's top-left corner, by id
    edges: dict[tuple[str, str, str], tuple[str, float, float]]  # SVG path, label x, y


def _dot_source(nodes: tuple, edges: tuple) -> str:
    # ids go to dot as n0, n1...: no component id is ever quoted into its language
    index = {cid: i for i, cid in enumerate(nodes)}
    lines = [
        "digraph storm {",
        "rankdir=LR; ranksep=1.5; nodesep=0.35;",
        f'node [shape=box fixedsize=true label="" '
        f"width={NODE_W / 72:.4f} height={NODE_H / 72:.4f}];",
    ]
    lines.extend(f"n{i};" for i in range(len(nodes)))
    # spouts first: the caller lists them first; dot keeps them on the left
    lines.extend(f"n{index[s]} -> n{index[t]};" for s, t, _ in edges)
    lines.append("}")
    return "\n".join(lines)


def _bezier_mid(points: list) -> tuple[float, float]:
    """The middle of a cubic B-spline given as dot's control points (1 + 3k of them)."""
    segments = max((len(points) - 1) // 3, 1)
    i = 3 * (segments // 2) if segments > 1 else 0
    if i + 3 >= len(points):
        return points[len(points) // 2]
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[i : i + 4]
    return (
        (x0 + 3 * x1 + 3 * x2 + x3) / 8,
        (y0 + 3 * y1 + 3 * y2 + y3) / 8,
    )


def _parse_plain(text: str, nodes: tuple, edges: tuple) -> Layout:
    """A layout from ``dot -Tplain``'s output (inches, y up), in points with y down."""
    width = height = 0.0
    node_at: dict[str, tuple[float, float]] = {}
    # dot lists a pair's edges in the order given; so the streams between two nodes match up
    pending: dict[tuple[str, str], list] = {}
    for s, t, stream in edges:
        pending.setdefault((s, t), []).append(stream)
    edge_at: dict = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "graph":
            width, height = float(parts[2]) * 72, float(parts[3]) * 72
        elif parts[0] == "node":
            x, y = float(parts[2]) * 72, float(parts[3]) * 72
            node_at[nodes[int(parts[1][1:])]] = (
                MARGIN + x - NODE_W / 2,
                MARGIN + height - y - NODE_H / 2,
            )
        elif parts[0] == "edge":
            s, t = nodes[int(parts[1][1:])], nodes[int(parts[2][1:])]
            n = int(parts[3])
            xs, ys = parts[4 : 4 + 2 * n : 2], parts[5 : 5 + 2 * n : 2]
            points = [
                (MARGIN + float(x) * 72, MARGIN + height - float(y) * 72)
                for x, y in zip(xs, ys, strict=True)
            ]
            streams = pending.get((s, t))
            if not streams or not points:
                continue
            d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
            for k in range(1, len(points) - 2, 3):
                d += "C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in points[k : k + 3])
            lx, ly = _bezier_mid(points)
            edge_at[(s, t, streams.pop(0))] = (d, lx, ly)
    return Layout(width + 2 * MARGIN, height + 2 * MARGIN, node_at, edge_at)


def _dot_layout(nodes: tuple, edges: tuple) -> Layout | None:
    dot = shutil.which("dot")
    if dot is None:
        log.warning("Graphviz's dot is not installed: storm graphs are shown as text")
        return None
    try:
        result = subprocess.run(
            [dot, "-Tplain"],
            input=_dot_source(nodes, edges),
            capture_output=True,
            text=True,
            timeout=DOT_TIMEOUT_SECS,
            check=True,
        )
        return _parse_plain(result.stdout, nodes, edges)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        log.warning("laying out a storm graph failed", exc_info=True)
        return None


_layouts: OrderedDict = OrderedDict()
_layouts_lock = threading.Lock()


def layout(graph: Graph) -> Layout | None:
    """The graph laid out by ``dot``, cached by structure; None when it cannot be."""
    key = graph.structure
    with _layouts_lock:
        if key in _layouts:
            _layouts.move_to_end(key)
            return _layouts[key]
    result = _dot_layout(*key)
    with _layouts_lock:
        _layouts[key] = result
        while len(_layouts) > LAYOUT_CACHE_SIZE:
            _layouts.popitem(last=False)
    return result


# -- drawing ---------------------------------------------------------------------


def compact(n: int) -> str:
    """A count in a few characters: 987, 12.3k, 4.5M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


def short(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


_drawings: dict = {}
_drawings_lock = threading.Lock()
DRAWINGS_CACHE_SIZE = 512


def storm_drawing(storm: StormView, window: str, window_label: str) -> dict:
    """The storm page's graph region's parts, made once per storm view and window: a view
    is never changed, so the page and every live update of it share one drawing."""
    key = (storm.id, window)
    with _drawings_lock:
        hit = _drawings.get(key)
    if hit is not None and hit[0] is storm:
        return hit[1]
    made = drawing(derive_graph(storm, window, storm.as_of), storm.name, window_label)
    with _drawings_lock:
        if len(_drawings) >= DRAWINGS_CACHE_SIZE:
            _drawings.clear()
        _drawings[key] = (storm, made)
    return made


def drawing(graph: Graph, storm_name: str, window_label: str) -> dict:
    """The graph region's parts: the SVG (None when there is no layout: no Graphviz, or it
    failed) and the graph as text (each node with its inputs), both escaped markup."""
    laid = layout(graph) if graph.nodes else None
    drawn = svg(graph, laid, storm_name, window_label) if laid is not None else None
    return {"graph": graph, "svg": drawn, "text": text(graph, links=drawn is None)}


def text(graph: Graph, links: bool = True) -> str:
    """The graph's text alternative: a list item per node, saying its state and its inputs.

    With ``links`` False (the SVG is drawn, its nodes link to the components, and the text is
    for screen readers alone) the components are named, not linked: a keyboard user reaches
    each component once, not once in the picture and again, unseen, in the list.
    """
    inputs: dict[str, list] = {}
    for e in graph.edges:
        inputs.setdefault(e.target, []).append(e)
    storm_id = graph.storm_id
    items = []
    for n in graph.nodes:
        if n.missing:
            line = f"{escape(n.id)} (named as an input, no tasks)"
        else:
            name = escape(n.id)
            if links:
                name = f'<a href="{_component_href(storm_id, n.id)}">{name}</a>'
            line = (
                f"{name} ({n.type}):"
                f" {n.tasks_alive} of {n.tasks} tasks alive, {count(n.emitted)} emitted"
            )
            if n.recent_error:
                line += ", an error in the last 30 minutes"
        streams = [
            f"{escape(e.source)} on {escape(e.stream)} ({count(e.acked)} acked,"
            f" {count(e.failed)} failed"
            f"{f', {rate(e.acked_rate)} acked per second' if e.acked_rate is not None else ''}"
            f"{', some counts unreadable' if e.unreadable else ''})"
            for e in inputs.get(n.id, ())
        ]
        if streams:
            line += "; inputs: " + ", ".join(streams)
        items.append(f'<li id="{dom_id("gt", n.id)}">{line}.</li>')
    return mark_safe("\n".join(items))  # every text and id above is escaped


@lru_cache(maxsize=4096)
def _component_href(storm_id: str, component_id: str) -> str:
    # reversing a URL is the slowest step of a drawing; the same ids come back every view
    return escape(href("component", storm_id, component_id))


def svg(graph: Graph, laid: Layout, storm_name: str, window_label: str) -> str:
    """The graph as SVG markup, every text and id escaped; coloured by CSS classes alone.

    Built here rather than in a template: a template takes some 60 ms for 100 components
    and 171 edges, and this a few.
    """
    storm_id = graph.storm_id
    w, h = f"{laid.width:.0f}", f"{laid.height:.0f}"
    n_nodes, n_edges = len(graph.nodes), len(graph.edges)
    out = [
        f'<svg class="storm-graph" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"'
        f' viewBox="0 0 {w} {h}" role="group" aria-labelledby="storm-graph-title"'
        ' aria-describedby="storm-graph-desc">',
        f'<title id="storm-graph-title">The storm {escape(storm_name)} as a graph</title>',
        f'<desc id="storm-graph-desc">{n_nodes} component{pluralize(n_nodes)} and {n_edges}'
        f" stream{pluralize(n_edges)} between them ({escape(window_label)}),"
        " listed as text after the graph.</desc>",
        '<defs><marker id="storm-graph-arrow" viewBox="0 0 10 10" refX="9" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto">'
        '<path class="graph-arrow" d="M0,0L10,5L0,10z"/></marker></defs>',
    ]
    for e in graph.edges:
        at = laid.edges.get((e.source, e.target, e.stream))
        if at is None:
            continue  # dot drew no line for it: it is still in the text
        d, lx, ly = at
        classes = "graph-edge"
        classes += " system" if e.system else ""
        classes += " unreadable" if e.unreadable else ""
        title = (
            f"{e.source} → {e.target}, stream {e.stream}: {count(e.acked)} acked,"
            f" {count(e.failed)} failed, process latency {ms(e.process_latency_ms)} ms,"
            f" {rate(e.acked_rate)} acked per second"
            + (" (some counts unreadable)" if e.unreadable else "")
        )
        # the edge says its acked rate once two heartbeats gave one; its count until then
        figure = f"{rate(e.acked_rate)}/s" if e.acked_rate is not None else compact(e.acked)
        label = f"{short(e.stream, 12)} · {figure}" + (" ?" if e.unreadable else "")
        out.append(
            f'<g class="{classes}" id="{dom_id("ge", e.source, e.target, e.stream)}">'
            f"<title>{escape(title)}</title>"
            f'<path d="{d}" marker-end="url(#storm-graph-arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly - 3:.1f}">{escape(label)}</text></g>'
        )
    for n in graph.nodes:
        x, y = laid.nodes.get(n.id, (MARGIN, MARGIN))
        classes = f"graph-node {n.type}"
        classes += " missing" if n.missing else ""
        classes += " dead" if n.dead else ""
        classes += " recent" if n.recent_error else ""
        figures, trouble = _figures(n), _trouble(n)
        title = f"{n.id} ({n.type}): {figures}" + (f"; {trouble}" if trouble else "")
        if not n.missing:
            r = n.rates
            title += (
                f"; per second: {rate(r.emitted)} emitted, {rate(r.acked)} acked,"
                f" {rate(r.failed)} failed"
            )
        if n.last_error is not None:
            title += f"; last error: {first_line(n.last_error.error)}"
        tx = f"{x + 8:.1f}"
        body = (
            f"<title>{escape(title)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W:.0f}" height="{NODE_H:.0f}" rx="4"/>'
            f'<text x="{tx}" y="{y + 17:.1f}" class="graph-id">{escape(short(n.id))}</text>'
            f'<text x="{tx}" y="{y + 32:.1f}">{escape(figures)}</text>'
        )
        if trouble:
            body += (
                f'<text x="{tx}" y="{y + 46:.1f}" class="graph-trouble">{escape(trouble)}</text>'
            )
        if not n.missing:
            body = f'<a href="{_component_href(storm_id, n.id)}">{body}</a>'
        out.append(f'<g class="{classes}" id="{dom_id("gn", n.id)}">{body}</g>')
    out.append("</svg>")
    return mark_safe("\n".join(out))  # every text and id above is escaped


def _figures(n: GraphNode) -> str:
    if n.missing:
        return "no tasks"
    return f"{n.tasks_alive}/{n.tasks} alive · {compact(n.emitted)} emitted"


def _trouble(n: GraphNode) -> str:
    """The node's trouble in words (its colour never says it alone)."""
    words = []
    if n.missing:
        words.append("named as an input only")
    elif n.dead:
        words.append(f"{n.dead} dead")
    if n.recent_error:
        words.append("recent error")
    return " · ".join(words)
