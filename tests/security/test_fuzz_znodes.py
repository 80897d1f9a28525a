"""Hostile data in every kind of node: arbitrary bytes, JSON of the wrong shape, records
whose values are legal but absurd, odd child names. Written straight into a real ZooKeeper,
read through StormClusterState and the mirror, rendered on every page and API endpoint.

The pages must never fail: no 500, no trace, every unreadable node marked, every error
text shown as text and given exactly by the API, and nothing outside the root read,
watched or written.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clusterstate import mk_distributed_cluster_state, mk_storm_cluster_state
from clusterstate.errors import UnreadableNodeError
from clusterstate.paths import SUBTREES, is_valid_id
from clusterstate.records import (
    Assignment,
    StormBase,
    SupervisorInfo,
    TaskHeartbeat,
    TaskInfo,
    decode,
)
from stormui import cluster
from tests.helpers import wait_for
from tests.security.conftest import assert_no_trace, assert_watches_inside

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(240)]

# each example writes, syncs and renders a whole cluster: few, unless asked for more
FUZZ = settings(
    max_examples=int(os.environ.get("STORMUI_FUZZ_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

NOW = int(time.time())
WINDOWS = ("600", "10800", "86400", "all-time")
API_WINDOWS = ("600", "10800", "86400", "all-time", ":all-time")


# -- strategies ------------------------------------------------------------------------------


# what ZooKeeper itself refuses in a node name (PathUtils.validatePath): controls,
# surrogates, private use, U+FFF0 and up; and the separator
ZK_CHARS = st.characters(
    max_codepoint=0xFFEF, exclude_categories=("Cc", "Cs", "Co"), exclude_characters="/"
)
HOSTILE_IDS = [
    "<script>window.__xss=1<\\script>",
    '"><img src=x onerror=alert(1)>',
    "a b?c#d%2Fe&f=g",
    "‮rtl-override‬",
    "ストーム-1-1",
    "x" * 255,
    "-",
]


def node_names(min_size=1, max_size=30):
    return st.text(ZK_CHARS, min_size=min_size, max_size=max_size).filter(
        lambda s: s not in (".", "..")
    )


# ids: hostile but valid, arbitrary, and too long to be an id (ZooKeeper takes them)
ids = st.one_of(st.sampled_from(HOSTILE_IDS), node_names(), node_names(256, 300))
big_ints = st.one_of(
    st.integers(min_value=NOW - 100, max_value=NOW + 5),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**300]),
)
numbers = st.one_of(big_ints, st.floats(), st.sampled_from([1e308, -1e308, 5e-324]))
texts = st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
task_keys = st.one_of(st.sampled_from(["1", "2", "3"]), st.text(max_size=6))


def window_map(values):
    return st.dictionaries(st.sampled_from(WINDOWS), values, max_size=4)


def stats_dicts():
    per_stream = st.dictionaries(st.text(max_size=6), numbers, max_size=3)
    per_input = st.dictionaries(st.text(max_size=6), per_stream, max_size=2)

    def of(kind):
        nested = per_stream if kind == "spout" else per_input
        latency = "complete_latencies" if kind == "spout" else "process_latencies"
        return st.fixed_dictionaries(
            {"type": st.just(kind)},
            optional={
                "rate": numbers,
                "emitted": window_map(per_stream),
                "transferred": window_map(per_stream),
                "acked": window_map(nested),
                "failed": window_map(nested),
                latency: window_map(nested),
            },
        )

    return st.sampled_from(["spout", "bolt"]).flatmap(of)


RECORDS = {
    "storm": st.fixed_dictionaries({"storm_name": texts, "launch_time_secs": big_ints}),
    "assignment": st.fixed_dictionaries(
        {
            "master_code_dir": texts,
            "node_host": st.dictionaries(ids, texts, max_size=3),
            "task_node_port": st.dictionaries(
                task_keys, st.tuples(ids, big_ints).map(list), max_size=3
            ),
            "task_start_time_secs": st.dictionaries(task_keys, big_ints, max_size=3),
        }
    ),
    "task": st.fixed_dictionaries(
        {"component_id": st.one_of(ids, texts)},
        optional={"component_type": st.sampled_from(["spout", "bolt"])},
    ),
    "supervisor": st.fixed_dictionaries(
        {
            "time_secs": big_ints,
            "hostname": texts,
            "worker_ports": st.lists(big_ints, max_size=4),
            "uptime_secs": big_ints,
        }
    ),
    "beat": st.fixed_dictionaries(
        {"time_secs": big_ints, "uptime_secs": big_ints, "stats": st.none() | stats_dicts()}
    ),
}
RECORD_CLASSES = {
    "storm": StormBase,
    "assignment": Assignment,
    "task": TaskInfo,
    "supervisor": SupervisorInfo,
    "beat": TaskHeartbeat,
}


def _mutated(record: dict):
    # one field of a fitting record replaced by any JSON value
    return st.tuples(st.sampled_from(sorted(record)), json_values).map(
        lambda kv: {**record, kv[0]: kv[1]}
    )


def payloads(kind: str):
    """What a node of ``kind`` holds: fitting, absurd, JSON of another shape, bytes."""
    record = RECORDS[kind]
    return st.one_of(
        record.map(_json_bytes),
        record.flatmap(_mutated).map(_json_bytes),
        json_values.map(_json_bytes),
        st.binary(max_size=48),
        st.integers(1_000, 200_000).map(lambda n: b"[" * n + b"]" * n),  # deeper than json goes
    )


def _json_bytes(value) -> bytes:
    # Python writes NaN and Infinity, which its own reader accepts: a hostile writer may too
    return json.dumps(value).encode()


error_names = st.one_of(
    st.builds(lambda t, s: f"{t}-{s:010d}", st.integers(0, 10**12 - 1), st.integers(0, 10**10)),
    st.integers(0, 10**15).map(str),
    node_names(max_size=14),
)
error_texts = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=200),
    st.binary(max_size=100),
    st.sampled_from(["<script>window.__xss=1</script>", "\x00\u202e\r\n\t", "a\n" * 500]),
)
task_names = st.one_of(
    st.sampled_from(["1", "2", "3", "abc", "-1", "01", "1.5", "99999999999999999999"]),
    node_names(max_size=8),
)


@st.composite
def storms(draw):
    storm_id = draw(ids)
    tasks = draw(st.lists(task_names, min_size=1, max_size=3, unique=True))
    return {
        "id": storm_id,
        "base": draw(st.none() | payloads("storm")),
        "assignment": draw(st.none() | payloads("assignment")),
        "tasks": {t: draw(st.none() | payloads("task")) for t in tasks},
        "beats": {t: draw(st.none() | payloads("beat")) for t in tasks},
        "errors": {
            t: draw(st.dictionaries(error_names, error_texts.map(_text_bytes), max_size=3))
            for t in tasks
        },
    }


def _text_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


clusters = st.fixed_dictionaries(
    {
        "storms": st.lists(storms(), min_size=1, max_size=2, unique_by=lambda s: s["id"]),
        "supervisors": st.dictionaries(ids, payloads("supervisor"), max_size=2),
    }
)


# -- writing and reading -----------------------------------------------------------------------


def write(state, spec) -> None:
    for s in spec["storms"]:
        sid = s["id"]
        if s["base"] is not None:
            state.set_data(f"/storms/{sid}", s["base"])
        if s["assignment"] is not None:
            state.set_data(f"/assignments/{sid}", s["assignment"])
        for t, data in s["tasks"].items():
            if data is not None:
                state.set_data(f"/tasks/{sid}/{t}", data)
        for t, data in s["beats"].items():
            if data is not None:
                state.set_data(f"/taskbeats/{sid}/{t}", data)
        for t, errors in s["errors"].items():
            for name, data in errors.items():
                state.set_data(f"/taskerrors/{sid}/{t}/{name}", data)
    for sup, data in spec["supervisors"].items():
        state.set_data(f"/supervisors/{sup}", data)


#: how long a wait on the dashboard may take before the test calls it stuck (seconds): only
#: something truly stuck takes this long, however loaded the machine
STUCK_SECS = 120


def clear(state, source) -> None:
    """Delete the whole cluster, and wait until the dashboard's mirror has seen it go.

    Examples reuse paths: the same storm, task and error node name (an error's name is
    its second and a sequence that restarts in a new folder). The mirror reads an error
    node once, by name; a folder deleted and made again before the mirror relists it
    would look unchanged to it, and keep the last example's text. So the next example
    writes only once the mirror holds nothing of this one.
    """
    for subtree in SUBTREES:
        state.delete_node(subtree)
    mirror = source.mirror
    if mirror is None:
        return
    wait_for(
        lambda: (
            not any(
                (
                    mirror.active_storms(),
                    mirror.assignments(),
                    mirror.supervisors(),
                    mirror.task_storms(),
                    mirror.heartbeat_storms(),
                    mirror.task_error_storms(),
                )
            )
        ),
        timeout=STUCK_SECS,
        interval=0.02,
        message="the mirror never saw the cluster deleted",
    )


def unreadable(cls, data) -> bool:
    if data is None:
        return False
    try:
        decode(cls, data, "/x")
    except UnreadableNodeError:
        return True
    return False


def _task_name(name: str) -> int | None:
    # a task's node is named by its id in decimal, nothing else
    return int(name) if name.isascii() and name.isdigit() and str(int(name)) == name else None


def fingerprint(view) -> tuple:
    return (
        {
            sid: (
                s.status,
                s.unreadable,
                s.name,
                tuple(
                    (
                        t.task_id,
                        t.component_id,
                        t.unreadable,
                        t.heartbeat_time_secs,
                        tuple(e.error for e in t.errors),
                    )
                    for t in s.tasks.values()
                ),
            )
            for sid, s in view.storms.items()
        },
        {sid: (s.unreadable, s.host, s.present) for sid, s in view.supervisors.items()},
    )


def direct_view(source):
    return cluster.build_cluster_view(
        source.storm_state,
        now=time.time(),
        connected=True,
        synced_at=None,
        task_timeout=30,
        supervisor_timeout=60,
    )


def settle(source):
    """Wait until what the pages read holds what ZooKeeper holds; return that view."""
    if source.mirror is None:
        return source.cluster_view()

    def same():
        view = source.cluster_view()
        return view if fingerprint(view) == fingerprint(direct_view(source)) else None

    return wait_for(same, timeout=STUCK_SECS, interval=0.05, message="the mirror never caught up")


class TextOf(HTMLParser):
    """The text inside every element with a given class, as a browser would show it."""

    def __init__(self, css_class: str):
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 1
            self.found[-1] += f"<{tag}>"  # an element inside error text is an injection
        elif self.css_class in (dict(attrs).get("class") or "").split():
            self.depth = 1
            self.found.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.found[-1] += data


def texts_of(body: str, css_class: str) -> list[str]:
    parser = TextOf(css_class)
    parser.feed(body)
    parser.close()
    return parser.found


def strict_json(response):
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]

    def refuse(name):
        raise AssertionError(f"{response.wsgi_request.path}: {name} is not JSON")

    return json.loads(response.content, parse_constant=refuse)


def get(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code, response.content[:500])
    assert_no_trace(response)
    return response


def render_everything(client, view) -> None:
    """Every page and API endpoint that the view has something for: all answer, none fails."""
    for url in ("/", "/supervisors/", "/errors/", "/errors/?q=%3Cscript%3E"):
        get(client, url)
    for url in ("cluster/summary", "supervisor/summary", "topology/summary", "errors"):
        strict_json(get(client, "/api/v1/" + url if url != "errors" else "/api/errors"))
    for sid, storm in view.storms.items():
        s = quote(sid, safe="")
        get(client, f"/storms/{s}/")
        get(client, f"/storms/{s}/?window=600")
        get(client, f"/errors/?storm={s}")
        for window in API_WINDOWS:
            topology = strict_json(get(client, f"/api/v1/topology/{s}?window={quote(window)}"))
            assert topology["id"] == sid
        for cid in storm.components:
            c = quote(cid, safe="")
            status = 200 if is_valid_id(cid) else 404
            get(client, f"/storms/{s}/components/{c}/", status)
            strict_json(get(client, f"/api/v1/topology/{s}/component/{c}", status))
        for t in storm.tasks:
            get(client, f"/storms/{s}/tasks/{t}/")
    for sup in view.supervisors:
        status = 200 if is_valid_id(sup) else 404
        get(client, f"/supervisors/{quote(sup, safe='')}/", status)


@pytest.mark.parametrize("stormui_mirror", [True, False], ids=["mirror", "direct"])
@FUZZ
@given(spec=clusters)
def test_hostile_nodes_never_break_a_page(dashboard, zk_conf, outside, stormui_mirror, spec):
    source = dashboard
    root = zk_conf["storm.zookeeper.root"]
    writer = mk_distributed_cluster_state(zk_conf)
    try:
        clear(writer, source)
        write(writer, spec)
        view = settle(source)
    finally:
        writer.close()
    client = Client()
    render_everything(client, view)

    for s in spec["storms"]:
        sid = s["id"]
        listed = sid in view.storms
        if not is_valid_id(sid):
            assert not listed  # never read, never turned into another path
            continue
        if s["base"] is None and s["assignment"] is None:
            continue
        assert listed, sid
        storm = view.storms[sid]
        bad_base = unreadable(StormBase, s["base"])
        bad_assignment = unreadable(Assignment, s["assignment"])
        assert storm.unreadable == (bad_base or bad_assignment)
        page = get(client, f"/storms/{quote(sid, safe='')}/").content.decode()
        api = strict_json(get(client, f"/api/v1/topology/{quote(sid, safe='')}"))
        if storm.unreadable:
            assert 'id="unreadable-notice"' in page
            assert api["unreadable"] is True
        for t, data in s["tasks"].items():
            if _task_name(t) in storm.tasks and unreadable(TaskInfo, data):
                task = storm.tasks[int(t)]
                assert f"/tasks/{sid}/{int(t)}" in task.unreadable
                body = get(client, f"/storms/{quote(sid, safe='')}/tasks/{int(t)}/").content
                assert b'id="unreadable-notice"' in body
                assert html.escape(f"/tasks/{sid}/{int(t)}").encode() in body
    sup_page = get(client, "/supervisors/").content.decode()
    for sup, data in spec["supervisors"].items():
        if is_valid_id(sup) and unreadable(SupervisorInfo, data):
            assert view.supervisors[sup].unreadable
            row = f'data-supervisor-id="{html.escape(sup)}" class="'
            assert row in sup_page
            assert sup_page.split(row, 1)[1].split("</tr>", 1)[0].count("badge-unreadable") == 1

    outside.assert_unchanged()
    assert_watches_inside(source.state, root)


# -- error text -------------------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.sampled_from(
        [
            "<script>window.__xss=1</script>",
            '<img src=x onerror="window.__xss=2">',
            "\x00NUL\x00 and \u202eRTL\u202c \u200f marks",
            "]]></pre><script>alert(1)</script>",
            "&amp; &lt; already escaped",
            "{{ request }} {% now 'Y' %}",
        ]
    ),
    st.integers(10_000, 200_000).map(lambda n: "<b>" + "x" * n + "</b>"),  # one huge line
)

#: a whole tag: text holding one must never be in the page raw (a lone "<" is in any page)
TAG = re.compile(r"<[A-Za-z!/?][^<>]*>")
ERROR_STORM = "errs-1-1"
ERROR_TASK = 1
ERROR_COMPONENT = "<spout & co>"


@FUZZ
@given(text=hostile_text)
def test_error_text_is_shown_as_text_and_given_exactly(dashboard, zk_conf, outside, text):
    writer_state = mk_distributed_cluster_state(zk_conf)
    writer = mk_storm_cluster_state(writer_state)
    try:
        clear(writer_state, dashboard)
        writer.activate_storm(ERROR_STORM, StormBase("errs", NOW))
        writer.set_task(ERROR_STORM, ERROR_TASK, TaskInfo(ERROR_COMPONENT, "spout"))
        writer.set_assignment(
            ERROR_STORM,
            Assignment("/code", {"sup": "host"}, {ERROR_TASK: ["sup", 6700]}, {ERROR_TASK: NOW}),
        )
        writer.report_task_error(ERROR_STORM, ERROR_TASK, text)
        wait_for(
            lambda: any(
                e.error == text
                for e in getattr(dashboard.cluster_view().storms.get(ERROR_STORM), "errors", ())
            ),
            timeout=STUCK_SECS,
            interval=0.05,
            message="the dashboard never showed the error",
        )
    finally:
        writer.disconnect()
        writer_state.close()
    client = Client()
    component = quote(ERROR_COMPONENT, safe="")
    shown = (
        f"/storms/{ERROR_STORM}/tasks/{ERROR_TASK}/",
        f"/storms/{ERROR_STORM}/components/{component}/",
        "/errors/",
    )
    for url in shown:
        body = get(client, url).content.decode("utf-8")
        assert texts_of(body, "error-text") == [text], url
        if TAG.search(text):
            assert text not in body  # never written out raw
    api = strict_json(get(client, f"/api/v1/topology/{ERROR_STORM}/component/{component}"))
    assert [e["error"] for e in api["componentErrors"]] == [text]
    assert strict_json(get(client, "/api/errors"))["errors"][0]["error"] == text
    topology = strict_json(get(client, f"/api/v1/topology/{ERROR_STORM}"))
    assert topology["spouts"][0]["lastError"] == text
    outside.assert_unchanged()
